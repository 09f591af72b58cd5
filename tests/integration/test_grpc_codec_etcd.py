"""The protobuf codec against a real etcd 3.4 over gRPC, cross-checked with its gateway.

Until etcdwamp's own HTTP/2 transport carries them, the codec's bytes travel over
grpcio's channel (installed with grpcio-tools, the ``grpc`` extra) as opaque
messages: the codec encodes the request and decodes the answer, grpcio only frames
them. Reads at one revision give the same result objects on both encodings.
"""

from __future__ import annotations

import json
import queue
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest

from etcdwamp.grpc import codec
from etcdwamp.testing import EtcdCluster
from etcdwamp.wire import (
    CompVersion,
    KeySet,
    OpGet,
    OpSet,
    Transaction,
    hash_kv_request,
    lease_grant_request,
    lease_ttl_request,
    put_request,
    range_request,
    status_request,
    txn_request,
)
from etcdwamp.wire.auth import auth_status_request
from etcdwamp.wire.concurrency import lease_keepalive_request
from etcdwamp.wire.requests import Request
from etcdwamp.wire.results import PutResult
from etcdwamp.wire.watch import EventType, watch_cancel_body, watch_create_body

TIMEOUT = 10.0


@pytest.fixture
def channel(etcd: EtcdCluster) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(urlsplit(etcd.url).netloc) as ch:
        yield ch


def call(channel: grpc.Channel, request: Request[Any]) -> Any:
    """``request`` over gRPC: the codec's bytes out, the codec's result back."""
    method = codec.method(request.path)
    payload = codec.encode(request)
    if method.server_streaming:  # keep-alive: one request, its first answer
        stream = channel.stream_stream(method.name)(iter([payload]), timeout=TIMEOUT)
        answer = next(stream)
        stream.cancel()
    else:
        answer = channel.unary_unary(method.name)(payload, timeout=TIMEOUT)
    return codec.decode(request, answer)


def gateway(etcd: EtcdCluster, request: Request[Any]) -> Any:
    """``request`` over etcd's JSON gateway, parsed by the wire layer."""
    post = urllib.request.Request(f"{etcd.url}/v3{request.path}",
                                  data=json.dumps(request.body).encode(),
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(post, timeout=TIMEOUT) as answer:
        return request.parse(json.loads(answer.read()))


def test_range_at_one_revision_is_the_same_on_both_encodings(
        etcd: EtcdCluster, channel: grpc.Channel, prefix: bytes) -> None:
    for i in range(5):
        call(channel, put_request(prefix + b"%d" % i, b"v%d" % i * 10, prev_kv=True))
    revision = call(channel, put_request(prefix + b"empty", b"")).revision
    for options in ({}, {"limit": 2}, {"keys_only": True}, {"count_only": True},
                    {"sort_order": "DESCEND", "sort_target": "MOD"}):
        request = range_request(KeySet(prefix, prefix=True), revision=revision, **options)
        over_grpc = call(channel, request)
        assert over_grpc == gateway(etcd, request), options
    everything = call(channel, range_request(KeySet(prefix, prefix=True), revision=revision))
    assert [kv.key for kv in everything.kvs] == [prefix + b"%d" % i for i in range(5)] + \
        [prefix + b"empty"]
    assert everything.kvs[-1].value == b"" and everything.kvs[1].value == b"v1" * 10


def test_put_with_prev_kv_and_a_transaction(channel: grpc.Channel, prefix: bytes) -> None:
    first = call(channel, put_request(prefix + b"k", b"one"))
    second = call(channel, put_request(prefix + b"k", b"two", prev_kv=True))
    assert second.prev_kv is not None and second.prev_kv.value == b"one"
    assert second.prev_kv.mod_revision == first.revision
    txn = Transaction(compare=[CompVersion(prefix + b"k", "==", 2)],
                      success=[OpSet(prefix + b"t", b"x"), OpSet(prefix + b"k", b"three")],
                      failure=[OpGet(prefix + b"t"), OpGet(prefix + b"k")])
    done = call(channel, txn_request(txn))
    assert done.succeeded
    assert [type(r) for r in done.responses] == [PutResult, PutResult]
    assert {r.revision for r in done.responses} == {done.revision}
    again = call(channel, txn_request(txn))
    assert not again.succeeded
    got_t, got_k = again.responses
    assert got_t.kvs[0].value == b"x" and got_t.kvs[0].mod_revision == done.revision
    assert (got_k.kvs[0].value, got_k.kvs[0].version) == (b"three", 3)


def test_status_and_leases(etcd: EtcdCluster, channel: grpc.Channel, prefix: bytes) -> None:
    status = call(channel, status_request())
    assert status.version.startswith("3.4.") and status.leader == status.header.member_id
    assert status.version == gateway(etcd, status_request()).version
    lease = call(channel, lease_grant_request(60))
    assert lease.ttl == 60 and lease.id > 0
    call(channel, put_request(prefix + b"leased", b"v", lease=lease.id))
    kept = call(channel, lease_keepalive_request(lease.id))
    assert (kept.id, kept.ttl) == (lease.id, 60)
    info = call(channel, lease_ttl_request(lease.id, keys=True))
    assert info.keys == (prefix + b"leased",) and info.granted_ttl == 60
    other = gateway(etcd, lease_ttl_request(lease.id, keys=True))
    assert (other.id, other.granted_ttl, other.keys) == (info.id, info.granted_ttl, info.keys)


def test_what_3_4_serves_over_grpc_but_not_its_gateway(
        etcd: EtcdCluster, channel: grpc.Channel) -> None:
    """HashKV is a 404 on 3.4's gateway but answers over gRPC; AuthStatus (3.5+) is
    Unimplemented."""
    assert call(channel, hash_kv_request()).hash > 0
    with pytest.raises(grpc.RpcError) as refused:
        call(channel, auth_status_request())
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_watch_stream_over_grpc(channel: grpc.Channel, prefix: bytes) -> None:
    outgoing: queue.Queue[bytes | None] = queue.Queue()
    outgoing.put(codec.encode_watch(watch_create_body(KeySet(prefix, prefix=True),
                                                      prev_kv=True)))
    stream = channel.stream_stream(codec.method("/watch").name)(
        iter(outgoing.get, None), timeout=TIMEOUT)
    try:
        created = codec.decode_watch(next(stream))
        assert created.created and not created.events
        first = call(channel, put_request(prefix + b"a", b"1"))
        call(channel, put_request(prefix + b"a", b"2"))
        events = []
        while len(events) < 2:
            events.extend(codec.decode_watch(next(stream)).events)
        put1, put2 = events
        assert (put1.type, put1.kv.value, put1.revision, put1.prev_kv) == \
            (EventType.PUT, b"1", first.revision, None)
        assert put2.prev_kv is not None and put2.prev_kv.value == b"1"
        outgoing.put(codec.encode_watch(watch_cancel_body(created.watch_id)))
        canceled = codec.decode_watch(next(stream))
        assert canceled.canceled and canceled.watch_id == created.watch_id
    finally:
        outgoing.put(None)  # ends the request iterator grpcio reads from its own thread
        stream.cancel()
