"""Coalescing over a scripted HTTP layer and ``task.Clock``: batch planning,
one transaction per turn, transport failures and cancellation inside a batch."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from twisted.internet import error as ierror
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.client import ResponseDone

from etcdwamp import errors as e
from etcdwamp.coalesce import Coalescer
from etcdwamp.transport import Transport, TwistedHTTP
from etcdwamp.wire import (
    DEFAULT_MAX_REQUEST_BYTES,
    PutResult,
    RangeResult,
    delete_request,
    put_request,
    range_request,
)
from etcdwamp.wire.batch import batch_request, batchable, plan_batches

HEADER = {"cluster_id": "1", "member_id": "2", "revision": "42", "raft_term": "3"}
ENDPOINT = "http://etcd.test:2379"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- planning (pure) ----------------------------------------------------------------


def test_plan_keeps_order_and_never_puts_a_key_twice_in_one_group() -> None:
    requests = [put_request(b"a", b"1"), put_request(b"b", b"1"), range_request(b"a"),
                delete_request(b"c"), put_request(b"b", b"2")]
    assert plan_batches(requests, max_ops=128, max_bytes=10_000) == [[0, 1], [2, 3, 4]]


def test_plan_splits_at_max_ops_and_max_bytes() -> None:
    puts = [put_request(b"k%d" % i, b"v") for i in range(5)]
    assert plan_batches(puts, max_ops=2, max_bytes=10_000) == [[0, 1], [2, 3], [4]]
    big = [put_request(b"k%d" % i, b"x" * 400) for i in range(3)]
    # Each is about 470 bytes with overhead: two fit in 1,100, three do not.
    assert plan_batches(big, max_ops=128, max_bytes=1_100) == [[0, 1], [2]]


def test_plan_limits_are_inclusive() -> None:
    """A group may hold exactly ``max_ops`` ops and exactly ``max_bytes`` bytes."""
    puts = [put_request(b"k%d" % i, b"x" * 400) for i in range(3)]
    assert [r.size for r in puts] == [466] * 3  # 2 + 400 + 64 bytes of framing
    # A txn's own framing (64) and two puts: 996 bytes.
    assert plan_batches(puts, max_ops=128, max_bytes=996) == [[0, 1], [2]]
    assert plan_batches(puts, max_ops=128, max_bytes=995) == [[0], [1], [2]]
    assert plan_batches(puts, max_ops=1, max_bytes=10_000) == [[0], [1], [2]]
    assert plan_batches(puts, max_ops=3, max_bytes=10_000) == [[0, 1, 2]]
    with pytest.raises(ValueError, match=r"^max_ops must be at least 1$"):
        plan_batches(puts, max_ops=0, max_bytes=10_000)
    assert plan_batches([], max_ops=1, max_bytes=10_000) == []


def test_a_request_too_large_for_a_batch_gets_a_group_of_its_own() -> None:
    small, big = put_request(b"s", b"v"), put_request(b"b", b"x" * 500)
    assert plan_batches([big, small], max_ops=128, max_bytes=300) == [[0], [1]]
    assert plan_batches([small, big, small], max_ops=128, max_bytes=300) == [[0], [1], [2]]


def test_a_batch_answer_that_does_not_match_its_ops_is_a_protocol_error() -> None:
    request = batch_request([put_request(b"a", b"1"), range_request(b"b")])
    swapped = {"header": HEADER, "succeeded": True, "responses": [
        {"response_range": {"header": {"revision": "42"}}},
        {"response_put": {"header": {"revision": "42"}}}]}
    with pytest.raises(e.ProtocolError) as mismatch:
        request.parse(swapped)
    assert str(mismatch.value) == ("a batch of 2 ops got 2 answers that do not match it: "
                                   "['RangeResult', 'PutResult']")
    assert request.size == 64 + put_request(b"a", b"1").size + range_request(b"b").size


def test_only_single_key_put_delete_get_are_batchable() -> None:
    from etcdwamp import KeySet
    from etcdwamp.wire import status_request

    assert batchable(put_request(b"k", b"v"))
    assert batchable(delete_request(b"k"))
    assert batchable(range_request(b"k", count_only=True))
    assert not batchable(range_request(KeySet(b"p/", prefix=True)))
    assert not batchable(status_request())
    with pytest.raises(ValueError, match="cannot be batched"):
        plan_batches([status_request()], max_ops=2, max_bytes=1000)


def test_batch_request_is_one_txn_and_parses_into_each_callers_result() -> None:
    request = batch_request([put_request(b"a", b"1", prev_kv=True), range_request(b"b")])
    assert request.path == "/kv/txn" and not request.idempotent
    assert request.body == {"success": [
        {"request_put": {"key": b64(b"a"), "value": b64(b"1"), "prev_kv": True}},
        {"request_range": {"key": b64(b"b")}}]}
    answer = {"header": HEADER, "succeeded": True, "responses": [
        {"response_put": {"header": {"revision": "42"},
                          "prev_kv": {"key": b64(b"a"), "value": b64(b"0"),
                                      "mod_revision": "7", "version": "1"}}},
        {"response_range": {"header": {"revision": "42"}, "count": "0"}}]}
    put, got = request.parse(answer)
    assert isinstance(put, PutResult) and put.prev_kv is not None
    assert put.prev_kv.value == b"0" and put.revision == 42
    assert isinstance(got, RangeResult) and got.kvs == () and got.revision == 42
    assert batch_request([range_request(b"a"), range_request(b"b")]).idempotent
    with pytest.raises(e.ProtocolError):
        request.parse({"header": HEADER, "succeeded": True, "responses": []})


# -- the coalescer over a scripted HTTP layer ---------------------------------------------


class Transported:
    """The connection a response body arrives on; records being dropped."""

    def __init__(self) -> None:
        self.stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class Response:
    def __init__(self, code: int, body: bytes) -> None:
        self.code = code
        self.body = body
        self.transport = Transported()

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(self.transport)
        protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


class Post:
    def __init__(self, path: str, body: dict[str, Any]) -> None:
        self.path = path
        self.body = body
        self.cancelled = False
        self.d: Deferred[Any] = Deferred(self._cancel)

    def _cancel(self, d: Deferred[Any]) -> None:
        self.cancelled = True
        # What the Agent does with an aborted request.
        d.errback(ResponseNeverReceived([Failure(CancelledError())]))

    def answer(self, code: int, obj: Any) -> None:
        self.d.callback(Response(code, json.dumps(obj).encode()))


class ScriptedHTTP(TwistedHTTP):
    """Keeps every post pending until the test answers it."""

    def __init__(self) -> None:
        self.posts: list[Post] = []

    def post(self, endpoint: str, path: str, body: bytes, token: str | None, *,
             stream: bool = False) -> Deferred[Any]:
        post = Post(path, json.loads(body))
        self.posts.append(post)
        return post.d

    def close(self) -> Deferred[None]:
        return Deferred()


def rig() -> tuple[Coalescer, ScriptedHTTP, Clock]:
    clock = Clock()
    http = ScriptedHTTP()
    transport = Transport(http, clock, [ENDPOINT], timeout=10.0,
                          max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, api_prefix="/v3")
    return Coalescer(transport, max_bytes=DEFAULT_MAX_REQUEST_BYTES), http, clock


def put_answers(count: int) -> dict[str, Any]:
    return {"header": HEADER, "succeeded": True,
            "responses": [{"response_put": {"header": {"revision": "42"}}}] * count}


def outcome(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0].value if isinstance(box[0], Failure) else box[0]


def test_calls_of_one_turn_leave_as_one_txn_at_the_end_of_the_turn() -> None:
    coalescer, http, clock = rig()
    calls = [coalescer.submit(put_request(b"k%d" % i, b"v")) for i in range(3)]
    assert http.posts == []  # nothing leaves before the turn ends
    clock.advance(0)
    assert [p.path for p in http.posts] == ["/v3/kv/txn"]
    assert len(http.posts[0].body["success"]) == 3
    http.posts[0].answer(200, put_answers(3))
    assert [outcome(d).revision for d in calls] == [42, 42, 42]


def test_a_call_alone_in_its_turn_is_sent_as_itself() -> None:
    coalescer, http, clock = rig()
    d = coalescer.submit(put_request(b"k", b"v"))
    clock.advance(0)
    assert [p.path for p in http.posts] == ["/v3/kv/put"]
    http.posts[0].answer(200, {"header": HEADER})
    assert isinstance(outcome(d), PutResult)


@pytest.mark.parametrize(("failure", "expected"), [
    (ierror.ConnectionRefusedError(), e.ConnectFailed),
    (ResponseNeverReceived([Failure(ierror.ConnectionLost())]), e.ConnectionLost),
])
def test_transport_failure_of_a_batch_fails_every_caller_alike(
        failure: Exception, expected: type[Exception]) -> None:
    coalescer, http, clock = rig()
    calls = [coalescer.submit(put_request(b"k%d" % i, b"v")) for i in range(3)]
    clock.advance(0)
    http.posts[0].d.errback(failure)
    assert [type(outcome(d)) for d in calls] == [expected] * 3
    assert len(http.posts) == 1  # a write with an unknown outcome is not sent again


def test_timeout_of_a_batch_fails_every_caller_with_request_timeout() -> None:
    coalescer, http, clock = rig()
    calls = [coalescer.submit(put_request(b"k%d" % i, b"v")) for i in range(2)]
    clock.advance(0)
    clock.advance(10.0)
    assert http.posts[0].cancelled
    assert [type(outcome(d)) for d in calls] == [e.RequestTimeout] * 2


def test_rejected_batch_is_retried_op_by_op() -> None:
    coalescer, http, clock = rig()
    calls = [coalescer.submit(put_request(b"k%d" % i, b"v", lease=7 if i == 1 else 0))
             for i in range(3)]
    clock.advance(0)
    http.posts[0].answer(404, {"error": "etcdserver: requested lease not found", "code": 5,
                               "message": "etcdserver: requested lease not found"})
    assert [p.path for p in http.posts[1:]] == ["/v3/kv/put"] * 3
    for post in http.posts[1:]:
        if post.body.get("lease"):
            post.answer(404, {"error": "etcdserver: requested lease not found", "code": 5,
                              "message": "etcdserver: requested lease not found"})
        else:
            post.answer(200, {"header": HEADER})
    assert isinstance(outcome(calls[0]), PutResult)
    assert isinstance(outcome(calls[1]), e.LeaseNotFound)
    assert isinstance(outcome(calls[2]), PutResult)


def test_cancelling_one_caller_of_a_batch_in_flight_fails_it_at_once_only() -> None:
    """The cancelled caller gets CancelledError at once; the transaction is not
    aborted (the others still wait for it) and they get their results."""
    coalescer, http, clock = rig()
    calls = [coalescer.submit(put_request(b"k%d" % i, b"v")) for i in range(3)]
    clock.advance(0)
    calls[1].cancel()
    assert isinstance(outcome(calls[1]), CancelledError)
    assert not http.posts[0].cancelled
    http.posts[0].answer(200, put_answers(3))
    assert isinstance(outcome(calls[0]), PutResult)
    assert isinstance(outcome(calls[2]), PutResult)


def test_batch_is_aborted_once_every_caller_cancelled() -> None:
    coalescer, http, clock = rig()
    calls = [coalescer.submit(put_request(b"k%d" % i, b"v")) for i in range(2)]
    clock.advance(0)
    calls[0].cancel()
    assert not http.posts[0].cancelled
    calls[1].cancel()
    assert http.posts[0].cancelled
    assert [type(outcome(d)) for d in calls] == [CancelledError] * 2
    assert len(http.posts) == 1  # and nothing is sent again


def test_later_transactions_of_a_turn_wait_for_the_earlier_ones() -> None:
    """The same key twice: the second transaction leaves only after the first
    answered, so the calls apply in the order they were made."""
    coalescer, http, clock = rig()
    calls = [coalescer.submit(put_request(b"k", b"1")), coalescer.submit(put_request(b"j", b"1")),
             coalescer.submit(put_request(b"k", b"2"))]
    clock.advance(0)
    assert len(http.posts) == 1 and len(http.posts[0].body["success"]) == 2
    http.posts[0].answer(200, put_answers(2))
    assert [p.path for p in http.posts] == ["/v3/kv/txn", "/v3/kv/put"]
    http.posts[1].answer(200, {"header": {**HEADER, "revision": "43"}})
    assert [outcome(d).revision for d in calls] == [42, 42, 43]


def test_window_gathers_calls_of_several_turns() -> None:
    clock = Clock()
    http = ScriptedHTTP()
    transport = Transport(http, clock, [ENDPOINT], timeout=10.0,
                          max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, api_prefix="/v3")
    coalescer = Coalescer(transport, window=0.002, max_bytes=DEFAULT_MAX_REQUEST_BYTES)
    coalescer.submit(put_request(b"a", b"v"))
    clock.advance(0.001)
    coalescer.submit(put_request(b"b", b"v"))
    assert http.posts == []
    clock.advance(0.001)
    assert len(http.posts) == 1 and len(http.posts[0].body["success"]) == 2


@pytest.mark.parametrize(("options", "error"), [
    ({"coalesce": "yes"}, TypeError),
    ({"coalesce": True, "coalesce_window": "1ms"}, TypeError),
    ({"coalesce": True, "coalesce_window": -0.001}, ValueError),
])
def test_client_refuses_bad_coalescing_options(options: dict[str, Any],
                                               error: type[Exception]) -> None:
    from etcdwamp import Client

    with pytest.raises(error, match="coalesce"):
        Client(Clock(), url=ENDPOINT, http_client=ScriptedHTTP(), **options)


def test_client_with_coalesce_sends_concurrent_puts_as_one_txn() -> None:
    """The client wires put/get/delete of single keys through the coalescer
    (the writes in one transaction; the get, of another key, apart from them);
    a key-set delete is never coalesced."""
    from treq.testing import StubTreq
    from twisted.web.resource import Resource

    from etcdwamp import Client, KeySet

    paths: list[str] = []

    class Gateway(Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> bytes:
            paths.append(request.path.decode())
            body = json.loads(request.content.read())
            if request.path.endswith(b"/txn"):
                return json.dumps({"header": HEADER, "succeeded": True, "responses": [
                    {"response_" + next(iter(op))[len("request_"):]: {}}
                    for op in body["success"]]}).encode()
            return json.dumps({"header": HEADER}).encode()

    stub = StubTreq(Gateway())
    clock = Clock()
    client = Client(clock, url=ENDPOINT, http_client=stub, clock=clock, api_prefix="/v3",
                    coalesce=True)
    assert client.coalescing
    calls = [client.put(b"a", b"1"), client.get(b"b"), client.delete(b"c"),
             client.delete(KeySet(b"p/", prefix=True))]
    clock.advance(0)
    stub.flush()
    assert sorted(paths) == ["/v3/kv/deleterange", "/v3/kv/range", "/v3/kv/txn"]
    assert all(d.called for d in calls)
    assert [type(outcome(d)).__name__ for d in calls] == [
        "PutResult", "RangeResult", "DeleteResult", "DeleteResult"]
