"""The connection budget: slots per endpoint, one bounded FIFO queue, Busy beyond
it (etcdwamp/budget.py), on ``task.Clock``; then the transport's use of it over
a scripted HTTP layer: what waits, what is refused at once, what never waits."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest
from twisted.internet import error as ierror
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp.budget import ConnectionBudget
from etcdwamp.coalesce import Coalescer
from etcdwamp.transport import Transport, TwistedHTTP
from etcdwamp.wire import DEFAULT_MAX_REQUEST_BYTES, Request, put_request, range_request
from etcdwamp.wire.concurrency import lease_keepalive_request, lock_request

A, B = "http://a.test:2379", "http://b.test:2379"
HEADER = {"cluster_id": "1", "member_id": "2", "revision": "7", "raft_term": "3"}


def outcome(d: Deferred[Any]) -> Any:
    """What ``d`` fired with (a failure's exception); fails the test if pending."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0].value if isinstance(box[0], Failure) else box[0]


def pending(d: Deferred[Any]) -> bool:
    return not d.called


# -- the budget alone ------------------------------------------------------------------


def test_take_gives_max_connections_slots_per_endpoint_each_its_own() -> None:
    budget = ConnectionBudget(Clock(), max_connections=2, max_queued=4)
    assert [budget.take(A) for _ in range(3)] == [True, True, False]
    assert budget.take(B), "another endpoint has slots of its own"
    assert (budget.busy(A), budget.busy(B)) == (2, 1)
    budget.release(A)
    assert budget.busy(A) == 1 and budget.take(A)


def test_a_freed_slot_goes_to_the_oldest_waiter_of_that_endpoint() -> None:
    budget = ConnectionBudget(Clock(), max_connections=1, max_queued=4)
    assert budget.take(A) and budget.take(B)
    first, other, second = budget.wait(A, 10), budget.wait(B, 10), budget.wait(A, 10)
    assert budget.queued == 3
    budget.release(A)
    assert outcome(first) is None and pending(second) and pending(other)
    assert budget.busy(A) == 1, "the slot passed on without being freed"
    assert not budget.take(A), "a new call does not overtake the one still waiting"
    budget.release(A)
    assert outcome(second) is None and pending(other) and budget.queued == 1


def test_waiters_that_give_their_slot_back_at_once_do_not_deepen_the_stack() -> None:
    """5,000 waiters whose exchange fails synchronously each release their slot inside the
    release that woke them: every one is served, and the slot ends free, not leaked."""
    budget = ConnectionBudget(Clock(), max_connections=1, max_queued=5000)
    assert budget.take(A)
    served = []
    for i in range(5000):
        d = budget.wait(A, math.inf)
        d.addCallback(lambda _, i=i: (served.append(i), budget.release(A)))
    budget.release(A)
    assert served == list(range(5000))
    assert budget.busy(A) == 0 and budget.queued == 0 and budget.take(A)


def test_beyond_max_queued_a_call_is_refused_at_once_for_the_whole_client() -> None:
    budget = ConnectionBudget(Clock(), max_connections=1, max_queued=2)
    assert budget.take(A) and budget.take(B)
    budget.wait(A, 10)
    budget.wait(B, 10)
    with pytest.raises(e.Busy, match="max_queued") as refused:
        budget.wait(A, 10)
    assert isinstance(refused.value, e.EtcdError) and refused.value.endpoint == A
    assert budget.queued == 2, "the refused call was not queued"


def test_no_queue_at_all_with_max_queued_0() -> None:
    budget = ConnectionBudget(Clock(), max_connections=1, max_queued=0)
    assert budget.take(A)
    with pytest.raises(e.Busy):
        budget.wait(A, 10)


def test_a_waiter_fails_with_request_timeout_when_its_time_is_up_and_leaves_the_queue() -> None:
    clock = Clock()
    budget = ConnectionBudget(clock, max_connections=1, max_queued=2)
    assert budget.take(A)
    early, late = budget.wait(A, 2.0), budget.wait(A, 5.0)
    clock.advance(1.999)
    assert pending(early)
    clock.advance(0.001)
    failure = outcome(early)
    assert isinstance(failure, e.RequestTimeout) and "nothing was sent" in str(failure)
    assert budget.queued == 1
    budget.release(A)
    assert outcome(late) is None, "the slot skipped the waiter that gave up"
    assert clock.getDelayedCalls() == [], "the served waiter's timer is gone"


def test_cancelling_a_waiter_takes_it_out_of_the_queue_at_once() -> None:
    clock = Clock()
    budget = ConnectionBudget(clock, max_connections=1, max_queued=2)
    assert budget.take(A)
    cancelled, next_one = budget.wait(A, 5.0), budget.wait(A, 5.0)
    cancelled.cancel()
    assert isinstance(outcome(cancelled), CancelledError)
    assert budget.queued == 1 and len(clock.getDelayedCalls()) == 1
    budget.release(A)
    assert outcome(next_one) is None
    budget.release(A)
    assert budget.busy(A) == 0 and budget.take(A)


def test_an_infinite_wait_has_no_timer() -> None:
    clock = Clock()
    budget = ConnectionBudget(clock, max_connections=1, max_queued=1)
    assert budget.take(A)
    waiting = budget.wait(A, math.inf)
    assert clock.getDelayedCalls() == [] and pending(waiting)
    budget.release(A)
    assert outcome(waiting) is None


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"max_connections": 0}, ValueError), ({"max_queued": -1}, ValueError),
    ({"max_connections": 1.5}, TypeError), ({"max_queued": True}, TypeError)])
def test_bad_limits_are_refused(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match="max_"):
        ConnectionBudget(Clock(), **kwargs)


# -- the transport over it -----------------------------------------------------------------


class Exchange:
    def __init__(self, endpoint: str, path: str) -> None:
        self.endpoint = endpoint
        self.path = path
        self.d: Deferred[tuple[int, bytes]] = Deferred()

    def answer(self, obj: dict[str, Any]) -> None:
        self.d.callback((200, json.dumps(obj).encode()))


class ScriptedHTTP(TwistedHTTP):
    """Every exchange stays pending until the test settles it; endpoints in
    ``refusing`` refuse the connection at once."""

    def __init__(self, refusing: tuple[str, ...] = ()) -> None:
        self.sent: list[Exchange] = []
        self.refusing = refusing

    def exchange(self, endpoint: str, path: str, body: bytes,
                 token: str | None) -> Deferred[tuple[int, bytes]]:
        if endpoint in self.refusing:
            failed: Deferred[tuple[int, bytes]] = Deferred()
            failed.errback(ierror.ConnectionRefusedError())
            return failed
        self.sent.append(Exchange(endpoint, path))
        return self.sent[-1].d

    def close(self) -> Deferred[None]:
        return Deferred()


def rig(*, max_connections: int = 2, max_queued: int = 1, endpoints: tuple[str, ...] = (A,),
        refusing: tuple[str, ...] = ()) -> tuple[Transport, ScriptedHTTP, Clock]:
    clock = Clock()
    http = ScriptedHTTP(refusing)
    transport = Transport(http, clock, endpoints, timeout=10.0,
                          max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, api_prefix="/v3",
                          max_connections=max_connections, max_queued=max_queued)
    return transport, http, clock


def get(key: bytes = b"k") -> Request[Any]:
    return range_request(key)


def test_calls_beyond_max_connections_wait_and_beyond_max_queued_are_busy_unsent() -> None:
    transport, http, _ = rig(max_connections=2, max_queued=1)
    running = [transport.call(get()) for _ in range(2)]
    queued = transport.call(get())
    refused = transport.call(get())
    assert len(http.sent) == 2, "the queued call waits for a connection"
    assert isinstance(outcome(refused), e.Busy), "refused at once, not after a wait"
    assert len(http.sent) == 2, "the refused call sent nothing"
    http.sent[0].answer({"header": HEADER})
    assert outcome(running[0]).header.revision == 7
    assert len(http.sent) == 3 and pending(queued), "the freed connection carries the queued call"
    http.sent[2].answer({"header": HEADER})
    assert outcome(queued).header.revision == 7


def test_a_queued_call_counts_its_wait_against_its_own_timeout() -> None:
    transport, http, clock = rig(max_connections=1, max_queued=1)
    transport.timeout = 60.0  # the first call holds the connection past the second's deadline
    transport.call(get())
    transport.timeout = 10.0
    clock.advance(4)
    queued = transport.call(get())
    clock.advance(9.999)
    assert pending(queued)
    clock.advance(0.001)
    assert isinstance(outcome(queued), e.RequestTimeout)
    assert len(http.sent) == 1, "it was never sent"
    assert transport.budget.queued == 0


def test_cancelling_a_queued_call_fails_it_at_once_and_sends_nothing() -> None:
    transport, http, _ = rig(max_connections=1, max_queued=2)
    transport.call(get())
    cancelled, later = transport.call(get(b"gone")), transport.call(get(b"later"))
    cancelled.cancel()
    assert isinstance(outcome(cancelled), CancelledError)
    assert transport.budget.queued == 1
    http.sent[0].answer({"header": HEADER})
    assert len(http.sent) == 2 and pending(later), "the next waiter got the connection"


def test_failover_takes_a_slot_of_the_endpoint_it_moves_to() -> None:
    transport, http, _ = rig(max_connections=1, max_queued=0, endpoints=(A, B), refusing=(A,))
    moved = transport.call(get())
    assert [x.endpoint for x in http.sent] == [B]
    assert (transport.budget.busy(A), transport.budget.busy(B)) == (0, 1)
    # B's only slot is taken: the next call is refused there after A refused it.
    assert isinstance(outcome(transport.call(get())), e.Busy)
    http.sent[0].answer({"header": HEADER})
    assert outcome(moved).header.revision == 7 and transport.budget.busy(B) == 0


def test_keep_alives_and_blocking_calls_do_not_wait_behind_calls() -> None:
    transport, http, _ = rig(max_connections=1, max_queued=0)
    transport.call(get())
    assert isinstance(outcome(transport.call(get())), e.Busy), "the call budget is spent"
    transport.call(lease_keepalive_request(5), keepalive=True)
    # As Lock.acquire sends it: waiting as long as the lock is held elsewhere.
    transport.call(replace(lock_request(b"l", 5), timeout=math.inf))
    assert [x.path for x in http.sent] == ["/v3/kv/range", "/v3/lease/keepalive",
                                           "/v3/lock/lock"]
    assert transport.budget.busy(A) == 1 and transport.keepalive_budget.busy(A) == 1


def test_keep_alives_have_a_bounded_budget_of_their_own() -> None:
    transport, http, _ = rig(max_connections=1, max_queued=0)
    transport.call(lease_keepalive_request(5), keepalive=True)
    refused = transport.call(lease_keepalive_request(6), keepalive=True)
    assert isinstance(outcome(refused), e.Busy)
    assert transport.call(get()) is not None and len(http.sent) == 2, \
        "calls still have their own slot"


def test_a_coalesced_transaction_takes_one_slot_for_all_its_callers() -> None:
    transport, http, clock = rig(max_connections=1, max_queued=1)
    coalescer = Coalescer(transport, max_bytes=DEFAULT_MAX_REQUEST_BYTES)
    first = [coalescer.submit(put_request(b"a%d" % i, b"v")) for i in range(3)]
    clock.advance(0)
    second = [coalescer.submit(put_request(b"b%d" % i, b"v")) for i in range(3)]
    clock.advance(0)
    assert [x.path for x in http.sent] == ["/v3/kv/txn"], "the second txn waits for the slot"
    put = {"response_put": {"header": {"revision": "7"}}}
    http.sent[0].answer({"header": HEADER, "succeeded": True, "responses": [put] * 3})
    assert [outcome(d).revision for d in first] == [7, 7, 7]
    assert len(http.sent) == 2 and all(pending(d) for d in second)
