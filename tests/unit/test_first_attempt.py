"""A call's first attempt runs on callbacks (etcdwamp.attempt), then hands over to the
coroutine path: each rule of the client holds across that seam. Driven by a scripted
HTTP whose exchanges the test answers, and task.Clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import errors
from etcdwamp.metrics import ClientMetrics
from etcdwamp.transport import JSON_CODEC, Transport, TwistedHTTP
from etcdwamp.wire import (
    DEFAULT_MAX_REQUEST_BYTES,
    PutResult,
    RangeResult,
    put_request,
    range_request,
)

A, B = "http://a.test:2379", "http://b.test:2379"
HEADER = {"cluster_id": "1", "member_id": "2", "revision": "7", "raft_term": "3"}
PUT_ANSWER = json.dumps({"header": HEADER}).encode()
RANGE_ANSWER = json.dumps({"header": HEADER, "count": "0"}).encode()


class ScriptedHTTP(TwistedHTTP):
    """Every exchange waits for the test: ``sent`` holds (endpoint, path, Deferred)."""

    codec = JSON_CODEC

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Deferred[tuple[int, bytes]]]] = []
        self.cancelled: list[str] = []

    def exchange(self, endpoint: str, path: str, body: bytes,
                 token: str | None) -> Deferred[tuple[int, bytes]]:
        def cancel(_: Deferred[tuple[int, bytes]]) -> None:
            self.cancelled.append(endpoint)

        d: Deferred[tuple[int, bytes]] = Deferred(cancel)
        self.sent.append((endpoint, path, d))
        return d

    def map_error(self, endpoint: str, exc: Exception, *, timed_out: bool) -> Exception:
        if timed_out:
            return errors.RequestTimeout("no answer in time", endpoint=endpoint)
        return exc

    def close(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d


class Recorded(ClientMetrics):
    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []

    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
        self.attempts.append((endpoint, outcome))


def make(endpoints: tuple[str, ...] = (A, B)) -> tuple[Transport, ScriptedHTTP, Clock,
                                                          Recorded]:
    http, clock, metrics = ScriptedHTTP(), Clock(), Recorded()
    transport = Transport(http, clock, list(endpoints), timeout=10.0,
                          max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, api_prefix="/v3",
                          metrics=metrics, probe_interval=None)
    return transport, http, clock, metrics


def outcome(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the call has not ended"
    return box[0]


def test_an_answered_call_fires_with_its_result_and_frees_its_slot() -> None:
    transport, http, _clock, metrics = make()
    d = transport.call(put_request(b"k", b"v"))
    assert [(e, p) for e, p, _ in http.sent] == [(A, "/v3/kv/put")]
    assert transport.budget.busy(A) == 1
    http.sent[0][2].callback((200, PUT_ANSWER))
    assert isinstance(outcome(d), PutResult)
    assert transport.budget.busy(A) == 0
    assert metrics.attempts == [(A, "ok")]


def test_a_refused_connection_moves_the_call_to_the_next_endpoint() -> None:
    transport, http, _clock, metrics = make()
    d = transport.call(put_request(b"k", b"v"))
    http.sent[0][2].errback(errors.ConnectFailed("refused", endpoint=A))
    assert [e for e, _, _ in http.sent] == [A, B]
    http.sent[1][2].callback((200, PUT_ANSWER))
    assert isinstance(outcome(d), PutResult)
    assert transport.health.is_down(A)
    assert metrics.attempts == [(A, "connect_failed"), (B, "ok")]
    assert transport.budget.busy(A) == transport.budget.busy(B) == 0


def test_a_lost_connection_sends_a_read_once_more_on_the_same_endpoint() -> None:
    transport, http, _clock, metrics = make()
    d = transport.call(range_request(b"k"))
    http.sent[0][2].errback(errors.ConnectionLost("reset", endpoint=A))
    assert [e for e, _, _ in http.sent] == [A, A]
    assert transport.budget.busy(A) == 1  # the same slot, held for the second send
    http.sent[1][2].callback((200, RANGE_ANSWER))
    assert isinstance(outcome(d), RangeResult)
    assert metrics.attempts == [(A, "ok")]  # one attempt, sent twice


def test_a_lost_connection_fails_a_write_without_sending_it_again() -> None:
    transport, http, _clock, metrics = make()
    d = transport.call(put_request(b"k", b"v"))
    http.sent[0][2].errback(errors.ConnectionLost("reset", endpoint=A))
    assert len(http.sent) == 1
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(errors.ConnectionLost)
    assert transport.budget.busy(A) == 0
    assert metrics.attempts == [(A, "connection_lost")]


def test_a_read_that_times_out_demotes_its_member_and_moves_on() -> None:
    transport, http, clock, metrics = make()
    d = transport.call(range_request(b"k"))
    clock.advance(4.9)  # a share of 10 s over two endpoints: 5 s
    assert http.cancelled == []
    clock.advance(0.1)
    assert http.cancelled == [A]
    # (the aborted exchange failed with CancelledError, as Deferred.cancel does)
    assert [e for e, _, _ in http.sent] == [A, B]
    assert transport.health.reason(A) == "no answer in time"
    http.sent[1][2].callback((200, RANGE_ANSWER))
    assert isinstance(outcome(d), RangeResult)
    assert metrics.attempts == [(A, "timeout"), (B, "ok")]


def test_a_write_that_times_out_fails_with_request_timeout_after_all_its_time() -> None:
    transport, http, clock, _metrics = make()
    d = transport.call(put_request(b"k", b"v"))
    clock.advance(9.9)
    assert not d.called
    clock.advance(0.1)
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(errors.RequestTimeout)
    assert len(http.sent) == 1


def test_cancelling_fails_at_once_and_stops_the_exchange() -> None:
    transport, http, clock, metrics = make()
    d = transport.call(range_request(b"k"))
    d.cancel()
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(CancelledError)
    assert http.cancelled == [A]
    assert transport.budget.busy(A) == 0
    assert metrics.attempts == [(A, "cancelled")]
    clock.advance(60)  # no timer left to move it elsewhere
    assert len(http.sent) == 1
    assert not transport.health.is_down(A) and transport.health.reason(A) is None


def test_cancelling_after_the_hand_over_cancels_the_next_attempt() -> None:
    transport, http, _clock, _metrics = make()
    d = transport.call(range_request(b"k"))
    http.sent[0][2].errback(errors.ConnectFailed("refused", endpoint=A))
    assert [e for e, _, _ in http.sent] == [A, B]
    d.cancel()
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(CancelledError)
    assert http.cancelled == [B]


def test_a_call_that_must_wait_for_a_slot_takes_the_coroutine_path_in_order() -> None:
    transport, http, _clock, _metrics = make()
    transport.budget.max_connections = 1
    first = transport.call(put_request(b"1", b"v"))
    second = transport.call(put_request(b"2", b"v"))
    assert len(http.sent) == 1 and transport.budget.queued == 1
    http.sent[0][2].callback((200, PUT_ANSWER))
    assert isinstance(outcome(first), PutResult)
    assert len(http.sent) == 2  # the waiting call got the slot
    http.sent[1][2].callback((200, PUT_ANSWER))
    assert isinstance(outcome(second), PutResult)


@pytest.mark.parametrize("status, error", [(503, errors.NoLeader),
                                           (400, errors.InvalidArgument)])
def test_refusals_are_judged_as_on_the_coroutine_path(status: int,
                                                      error: type[Exception]) -> None:
    transport, http, _clock, _metrics = make()
    d = transport.call(put_request(b"k", b"v"))
    message = "etcdserver: no leader" if status == 503 else "etcdserver: bad"
    code = 14 if status == 503 else 3
    http.sent[0][2].callback(
        (status, json.dumps({"code": code, "message": message, "error": message}).encode()))
    if error is errors.NoLeader:
        # "no leader" is answered before anything is proposed: even a write moves on
        assert [e for e, _, _ in http.sent] == [A, B]
        http.sent[1][2].callback((200, PUT_ANSWER))
        assert isinstance(outcome(d), PutResult)
    else:
        failure = outcome(d)
        assert isinstance(failure, Failure) and failure.check(error)
        assert len(http.sent) == 1


def test_only_a_call_with_nothing_to_wait_for_starts_on_callbacks() -> None:
    from etcdwamp.attempt import first_attempt

    transport, http, clock, _metrics = make()
    deadline = clock.seconds() + 10
    assert first_attempt(transport, put_request(b"k", b"v"), deadline, transport.budget)
    transport.api_prefix = None
    assert first_attempt(transport, put_request(b"k", b"v"), deadline, None) is None
    transport.prefixes[A] = "/v3"
    transport.budget.max_connections = 1  # the slot of A is held by the first call
    assert first_attempt(transport, put_request(b"k", b"v"), deadline,
                         transport.budget) is None
    transport.max_request_bytes = 10
    assert first_attempt(transport, put_request(b"k", b"v" * 20), deadline, None) is None
    assert first_attempt(transport, put_request(b"k", b"v"), clock.seconds(), None) is None
    assert len(http.sent) == 1


def test_a_read_resent_after_an_immediate_loss_has_one_timer() -> None:
    transport, http, clock, _metrics = make()
    lost: list[bool] = [True]

    def exchange(endpoint: str, path: str, body: bytes,
                 token: str | None) -> Deferred[tuple[int, bytes]]:
        d: Deferred[tuple[int, bytes]] = Deferred()
        http.sent.append((endpoint, path, d))
        if lost and lost.pop():
            d.errback(errors.ConnectionLost("reset", endpoint=A))  # before it returns
        return d

    http.exchange = exchange  # type: ignore[method-assign]
    d = transport.call(range_request(b"k"))
    assert [e for e, _, _ in http.sent] == [A, A]
    assert len(clock.getDelayedCalls()) == 1
    http.sent[1][2].callback((200, RANGE_ANSWER))
    assert isinstance(outcome(d), RangeResult)
    assert clock.getDelayedCalls() == []


def test_a_call_in_flight_finishes_where_it_is_when_the_endpoints_change() -> None:
    transport, http, _clock, metrics = make()
    c = "http://c.test:2379"
    d = transport.call(range_request(b"k"))
    transport.set_endpoints([c, B, A])  # as refresh_endpoints may reorder and add them
    http.sent[0][2].callback((200, RANGE_ANSWER))
    assert isinstance(outcome(d), RangeResult)
    assert metrics.attempts == [(A, "ok")]
    assert transport.budget.busy(A) == transport.budget.busy(c) == 0


def test_a_call_handed_over_tries_the_endpoints_it_started_with() -> None:
    transport, http, _clock, _metrics = make()
    d = transport.call(range_request(b"k"))
    transport.set_endpoints([A])  # B removed while the first attempt is in flight
    http.sent[0][2].errback(errors.ConnectFailed("refused", endpoint=A))
    assert [e for e, _, _ in http.sent] == [A, B]
    http.sent[1][2].callback((200, RANGE_ANSWER))
    assert isinstance(outcome(d), RangeResult)


def test_an_http_that_raises_instead_of_failing_fails_the_call_and_frees_the_slot() -> None:
    transport, http, _clock, metrics = make()

    def exchange(endpoint: str, path: str, body: bytes,
                 token: str | None) -> Deferred[tuple[int, bytes]]:
        raise ValueError("no such method")

    http.exchange = exchange  # type: ignore[method-assign]
    d = transport.call(put_request(b"k", b"v"))  # does not raise: its Deferred fails
    failure = outcome(d)
    assert isinstance(failure, Failure) and failure.check(ValueError)
    assert transport.budget.busy(A) == 0
    assert metrics.attempts == [(A, "error")]


class Raising(Recorded):
    def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("the sink broke")


def test_a_metrics_sink_that_raises_fails_the_call_instead_of_hanging_it() -> None:
    http, clock = ScriptedHTTP(), Clock()
    transport = Transport(http, clock, [A, B], timeout=10.0,
                          max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, api_prefix="/v3",
                          metrics=Raising(), probe_interval=None)
    for settle in ("answer", "lose", "cancel"):
        d = transport.call(put_request(b"k", b"v"))
        exchange = http.sent[-1][2]
        if settle == "answer":
            exchange.callback((200, PUT_ANSWER))
        elif settle == "lose":
            exchange.errback(errors.ConnectionLost("reset", endpoint=A))
        else:
            d.cancel()
        failure = outcome(d)
        assert isinstance(failure, Failure) and failure.check(RuntimeError), settle
        assert transport.budget.busy(A) == 0


def test_the_attempts_after_a_timeout_run_in_the_callers_context() -> None:
    import contextvars

    request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
        "request_id", default=None)
    seen: list[tuple[str, str | None]] = []

    class Seeing(Recorded):
        def request_done(self, endpoint: str, outcome: str, seconds: float) -> None:
            seen.append((endpoint, request_id.get()))

    http, clock = ScriptedHTTP(), Clock()
    transport = Transport(http, clock, [A, B], timeout=10.0,
                          max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, api_prefix="/v3",
                          metrics=Seeing(), probe_interval=None)

    def start() -> Deferred[Any]:
        request_id.set("request-42")
        return transport.call(range_request(b"k"))

    d = contextvars.copy_context().run(start)
    clock.advance(5)  # A's share runs out: the timer moves the call on to B
    assert [e for e, _, _ in http.sent] == [A, B]
    http.sent[1][2].callback((200, RANGE_ANSWER))
    assert isinstance(outcome(d), RangeResult)
    assert seen == [(A, "request-42"), (B, "request-42")]
