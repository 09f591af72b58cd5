"""The shared Watch stream before its connection is open: the creates of the watches
attached meanwhile wait and go out together once it is; a watch that leaves before
sends nothing; a connection that fails ends every waiting watch with its failure."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from etcdwamp import errors
from etcdwamp.grpc import pb
from etcdwamp.grpc.watchmux import WatchMux, WatchView
from etcdwamp.wire.watch import watch_create_body


class FakeStream:
    def __init__(self, first: bytes | None) -> None:
        self.sent = [] if first is None else [first]
        self.finished: Deferred[None] = Deferred()
        self.cancelled = False

    def send(self, message: bytes) -> None:
        self.sent.append(message)

    def cancel(self) -> None:
        self.cancelled = True


class FakeConnection:
    """What the mux uses of a GrpcConnection: opening a stream."""

    def __init__(self) -> None:
        self.streams: list[FakeStream] = []

    def stream(self, method: bytes, on_message: Any, metadata: Any,
               first: bytes | None = None) -> FakeStream:
        self.streams.append(FakeStream(first))
        return self.streams[-1]


class Recorder(Protocol):
    def __init__(self) -> None:
        self.lost: list[Failure] = []

    def connectionLost(self, reason: Failure | None = None) -> None:
        assert reason is not None
        self.lost.append(reason)


def view_of(mux: WatchMux, key: bytes) -> tuple[WatchView, Recorder]:
    view = WatchView(mux, [watch_create_body(key)])
    protocol = Recorder()
    view.deliverBody(protocol)
    return view, protocol


def creates_sent(stream: FakeStream) -> list[tuple[bytes, int]]:
    out = []
    for message in stream.sent:
        request = pb.rpc_pb2.WatchRequest.FromString(message)
        assert request.HasField("create_request")
        out.append((request.create_request.key, request.create_request.watch_id))
    return out


def test_creates_wait_for_the_connection_and_go_out_together() -> None:
    ended: list[WatchMux] = []
    mux = WatchMux(None, [], ended.append)
    views = [view_of(mux, b"k%d" % i) for i in range(3)]
    views[1][0].stopProducing()  # leaves before the connection is open
    conn = FakeConnection()
    mux.connected(conn)  # type: ignore[arg-type]
    [stream] = conn.streams
    assert creates_sent(stream) == [(b"k0", 1), (b"k2", 3)]
    assert mux.watchers == 2 and not ended
    assert len(views[1][1].lost) == 1 and not views[0][1].lost


def test_a_failed_connection_ends_every_waiting_watch_with_its_failure() -> None:
    ended: list[WatchMux] = []
    mux = WatchMux(None, [], ended.append)
    views = [view_of(mux, b"k%d" % i) for i in range(2)]
    failure = Failure(errors.ConnectFailed("cannot connect", endpoint="x"))
    mux.connect_failed(failure)
    assert ended == [mux] and mux.ended and mux.watchers == 0
    assert [protocol.lost for _, protocol in views] == [[failure], [failure]]


def test_when_every_watch_left_before_the_connection_nothing_is_sent() -> None:
    ended: list[WatchMux] = []
    mux = WatchMux(None, [], ended.append)
    view, _ = view_of(mux, b"k")
    view.stopProducing()
    assert ended == [mux]
    conn = FakeConnection()
    mux.connected(conn)  # type: ignore[arg-type]
    assert conn.streams == []
