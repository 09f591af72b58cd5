"""The client over an in-memory HTTP server (treq's StubTreq): no etcd, no network.

These check what the client sends and how it treats answers; the integration
tests check the same methods against a real etcd.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from etcdwamp import CompModified, KeySet, OpSet, Transaction
from etcdwamp import errors as e
from etcdwamp.client import Client

HEADER = {"cluster_id": "1", "member_id": "2", "revision": "42", "raft_term": "3"}

Handler = Callable[[str, dict[str, Any]], tuple[int, Any]]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Gateway(Resource):
    """Records every request; answers through ``handler(path, body)``."""

    isLeaf = True

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def render_POST(self, request: Request) -> bytes | int:
        path = request.path.decode()
        body = json.loads(request.content.read() or b"{}")
        self.calls.append((path, body))
        status, answer = self.handler(path, body)
        if status == 0:  # never answer
            return NOT_DONE_YET
        request.setResponseCode(status)
        if isinstance(answer, bytes):
            return answer
        return json.dumps(answer).encode()


def ok_handler(path: str, body: dict[str, Any]) -> tuple[int, Any]:
    if path.endswith("/kv/range"):
        return 200, {"header": HEADER}
    return 200, {"header": HEADER}


def run(stub: StubTreq, d: Deferred[Any]) -> Any:
    """Pump the in-memory connection until ``d`` fires; return its result or raise."""
    stub.flush()
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the request did not complete"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def make(handler: Handler = ok_handler, **kwargs: Any) -> tuple[Client, StubTreq, Gateway]:
    gateway = Gateway(handler)
    stub = StubTreq(gateway)
    client = Client(Clock(), url="http://etcd.test:2379", http_client=stub, **kwargs)
    return client, stub, gateway


def test_detects_v3_and_sends_to_it() -> None:
    client, stub, gw = make()
    run(stub, client.put(b"k", b"v"))
    assert [p for p, _ in gw.calls] == ["/v3/maintenance/status", "/v3/kv/put"]
    run(stub, client.put(b"k", b"v"))
    assert gw.calls[-1][0] == "/v3/kv/put"  # detection happens once


def test_falls_back_to_v3beta_for_etcd_3_3() -> None:
    def etcd33(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path.startswith("/v3/"):
            return 404, b"404 page not found\n"
        return 200, {"header": HEADER}

    client, stub, gw = make(etcd33)
    run(stub, client.get(b"k"))
    assert [p for p, _ in gw.calls] == [
        "/v3/maintenance/status", "/v3beta/maintenance/status", "/v3beta/kv/range",
    ]


def test_every_range_option_is_sent() -> None:
    client, stub, gw = make(api_prefix="/v3")
    run(stub, client.get(KeySet(b"a", range_end=b"b"), limit=5, revision=7,
                         sort_order="descend", sort_target="mod", serializable=True,
                         keys_only=True, count_only=True, min_mod_revision=1,
                         max_mod_revision=2, min_create_revision=3, max_create_revision=4))
    assert gw.calls == [("/v3/kv/range", {
        "key": b64(b"a"), "range_end": b64(b"b"), "limit": "5", "revision": "7",
        "sort_order": "DESCEND", "sort_target": "MOD", "serializable": True,
        "keys_only": True, "count_only": True, "min_mod_revision": "1",
        "max_mod_revision": "2", "min_create_revision": "3", "max_create_revision": "4",
    })]


def test_every_put_and_delete_option_is_sent() -> None:
    client, stub, gw = make(api_prefix="/v3")
    run(stub, client.put(b"k", b"v", lease=2**62, prev_kv=True))
    run(stub, client.put(b"k", b"", ignore_value=True, ignore_lease=True))
    run(stub, client.delete(KeySet(b"p", prefix=True), prev_kv=True))
    run(stub, client.compact(9, physical=True))
    assert gw.calls == [
        ("/v3/kv/put", {"key": b64(b"k"), "value": b64(b"v"), "lease": str(2**62),
                        "prev_kv": True}),
        ("/v3/kv/put", {"key": b64(b"k"), "ignore_value": True, "ignore_lease": True}),
        ("/v3/kv/deleterange", {"key": b64(b"p"), "range_end": b64(b"q"), "prev_kv": True}),
        ("/v3/kv/compaction", {"revision": "9", "physical": True}),
    ]


def test_txn_body() -> None:
    client, stub, gw = make(api_prefix="/v3")
    run(stub, client.txn(Transaction(compare=[CompModified(b"k", "<", 5)],
                                     success=[OpSet(b"k", b"v")])))
    assert gw.calls == [("/v3/kv/txn", {
        "compare": [{"result": "LESS", "target": "MOD", "key": b64(b"k"),
                     "mod_revision": "5"}],
        "success": [{"request_put": {"key": b64(b"k"), "value": b64(b"v")}}],
    })]


@pytest.mark.parametrize("body", [
    {"error": "etcdserver: mvcc: required revision has been compacted",
     "code": 11, "message": "etcdserver: mvcc: required revision has been compacted"},
    {"code": 11, "message": "etcdserver: mvcc: required revision has been compacted",
     "details": []},
])
def test_both_error_shapes_become_typed_exceptions(body: dict[str, Any]) -> None:
    client, stub, _ = make(lambda p, b: (400, body), api_prefix="/v3")
    with pytest.raises(e.RevisionCompacted) as info:
        run(stub, client.get(b"k", revision=1))
    assert info.value.code == 11 and info.value.http_status == 400


def test_non_json_200_is_protocol_error() -> None:
    client, stub, _ = make(lambda p, b: (200, b"<html>proxy</html>"), api_prefix="/v3")
    with pytest.raises(e.ProtocolError):
        run(stub, client.status())


def test_garbage_field_is_protocol_error() -> None:
    answer = {"header": HEADER, "kvs": [{"key": "not base64!!"}]}
    client, stub, _ = make(lambda p, b: (200, answer), api_prefix="/v3")
    with pytest.raises(e.ProtocolError, match="base64"):
        run(stub, client.get(b"k"))


def test_timeout_raises_request_timeout_from_the_injected_clock() -> None:
    gateway = Gateway(lambda p, b: (0, None))
    stub = StubTreq(gateway)
    clock = Clock()
    client = Client(clock, url="http://etcd.test:2379", http_client=stub, timeout=3.0,
                    api_prefix="/v3")
    d = client.put(b"k", b"v")
    stub.flush()
    failures: list[Failure] = []
    d.addErrback(failures.append)
    clock.advance(2.9)
    assert not failures
    clock.advance(0.2)
    assert failures and failures[0].check(e.RequestTimeout)
    assert isinstance(failures[0].value, e.OutcomeUnknown)


def test_too_large_never_reaches_the_server() -> None:
    client, stub, gw = make(api_prefix="/v3", max_request_bytes=1000)
    with pytest.raises(e.RequestTooLarge, match="1000"):
        run(stub, client.put(b"k", b"x" * 1000))
    assert gw.calls == []


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="no etcd endpoint"):
        Client(Clock(), endpoints=[])  # Client(reactor) alone reads the environment now
    with pytest.raises(ValueError, match="http"):
        Client(Clock(), url="127.0.0.1:2379")
    with pytest.raises(ValueError, match="not both"):
        Client(Clock(), url="http://a", endpoints=["http://b"])
    with pytest.raises(ValueError, match="timeouts"):
        Client(Clock(), url="http://a", timeout=0)
