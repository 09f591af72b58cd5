"""The snapshot writer on its own: chunks go to the file as they arrive, and
etcd's trailing SHA-256 decides whether the stream is complete and intact."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import pytest
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed

from etcdwamp import errors as e
from etcdwamp.operations import _SnapshotWriter


def frames(*blobs: bytes) -> bytes:
    out = b""
    for i, blob in enumerate(blobs):
        remaining = sum(len(b) for b in blobs[i + 1:-1]) if i < len(blobs) - 1 else 0
        result = {"blob": base64.b64encode(blob).decode()}
        if remaining:
            result["remaining_bytes"] = str(remaining)
        out += json.dumps({"result": result}).encode() + b"\n"
    return out


def feed(stream: bytes, *, step: int = 5, end: Failure | None = None
         ) -> tuple[_SnapshotWriter, io.BytesIO, list[object]]:
    target = io.BytesIO()
    writer = _SnapshotWriter(target, None)
    outcome: list[object] = []
    writer.done.addBoth(outcome.append)
    for i in range(0, len(stream), step):
        writer.dataReceived(stream[i:i + step])
    writer.connectionLost(end or Failure(ResponseDone()))
    return writer, target, outcome


def test_complete_stream_is_written_with_its_checksum() -> None:
    data = [b"a" * 100, b"b" * 50]
    digest = hashlib.sha256(b"".join(data)).digest()
    writer, target, outcome = feed(frames(*data, digest))
    assert outcome == [digest]
    assert target.getvalue() == b"".join(data) + digest
    assert writer.written == 150 + 32


def test_damaged_data_fails_the_checksum() -> None:
    digest = hashlib.sha256(b"good").digest()
    _, _, outcome = feed(frames(b"bad!", digest))
    (failure,) = outcome
    assert isinstance(failure, Failure) and failure.check(e.ProtocolError)
    assert "checksum mismatch" in str(failure.value)


def test_a_stream_cut_short_is_an_error() -> None:
    _, _, outcome = feed(frames(b"x" * 64))  # no checksum frame
    (failure,) = outcome
    assert isinstance(failure, Failure) and failure.check(e.ProtocolError)
    _, _, outcome = feed(frames(b"x" * 64), end=Failure(ResponseFailed([])))
    (failure,) = outcome
    assert isinstance(failure, Failure) and failure.check(e.ConnectionLost)


def test_an_error_frame_ends_the_snapshot_typed() -> None:
    stream = frames(b"x" * 10) + b'{"error":{"grpc_code":14,"message":"etcdserver: x"}}\n'
    _, _, outcome = feed(stream)
    (failure,) = outcome
    assert isinstance(failure, Failure) and failure.check(e.Unavailable)


def test_progress_reports_bytes_written_and_remaining() -> None:
    data = [b"a" * 10, b"b" * 20]
    digest = hashlib.sha256(b"".join(data)).digest()
    seen: list[tuple[int, int]] = []
    writer = _SnapshotWriter(io.BytesIO(), lambda w, r: seen.append((w, r)))
    writer.dataReceived(frames(*data, digest))
    assert seen == [(10, 20), (30, 0), (62, 0)]


@pytest.mark.parametrize("step", [1, 3, 64])
def test_any_split_of_the_stream_gives_the_same_file(step: int) -> None:
    data = [bytes(range(256)) * 4, b"tail"]
    digest = hashlib.sha256(b"".join(data)).digest()
    _, target, outcome = feed(frames(*data, digest), step=step)
    assert outcome == [digest] and target.getvalue() == b"".join(data) + digest
