"""Dual: one Deferred awaited by Twisted's coroutine driver and by asyncio tasks.

The asyncio tests run as tasks on the loop under Twisted's asyncio reactor
(the suite's reactor); pytest-twisted waits for the Deferred around the task.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from asyncio_tasks import on_asyncio
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from etcdwamp._deferred import Dual, deferred, dual


def test_twisted_driver_awaits_a_pending_dual() -> None:
    """Under Deferred.fromCoroutine, awaiting a Dual waits for it like a Deferred."""
    source: Deferred[int] = Deferred()

    async def body() -> int:
        return await dual(source) + 1

    outcome = Deferred.fromCoroutine(body())
    assert not outcome.called
    source.callback(41)
    assert outcome.result == 42


def test_twisted_driver_sees_the_error_and_cancellation() -> None:
    """Errors arrive as exceptions; cancelling the outer Deferred cancels the source."""
    cancelled: list[bool] = []
    source: Deferred[int] = Deferred(lambda _: cancelled.append(True))

    async def body() -> int:
        return await dual(source)

    outcome = Deferred.fromCoroutine(body())
    outcome.cancel()
    assert cancelled == [True]
    failures: list[Any] = []
    outcome.addErrback(failures.append)
    assert failures[0].check(CancelledError)


@on_asyncio
async def test_asyncio_task_awaits_value_and_error() -> None:
    """An asyncio task gets the value, and an error as the same exception."""
    loop = asyncio.get_running_loop()
    ok: Deferred[str] = Deferred()
    loop.call_soon(ok.callback, "v")
    assert await dual(ok) == "v"
    bad: Deferred[str] = Deferred()
    loop.call_soon(bad.errback, KeyError("k"))
    with pytest.raises(KeyError):
        await dual(bad)


@on_asyncio
async def test_asyncio_cancel_cancels_the_deferred() -> None:
    """Cancelling the task waiting on a Dual cancels its Deferred at once and the
    task ends with asyncio.CancelledError."""
    cancelled: list[bool] = []
    source: Deferred[int] = Deferred(lambda _: cancelled.append(True))
    started = asyncio.Event()

    async def waiter() -> int:
        started.set()
        return await dual(source)

    task = asyncio.ensure_future(waiter())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled == [True]


@on_asyncio
async def test_wait_for_and_gather_accept_duals() -> None:
    """asyncio.wait_for cancels a Dual that runs out of time; gather collects Duals."""
    cancelled: list[bool] = []
    never: Deferred[int] = Deferred(lambda _: cancelled.append(True))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(dual(never), 0.01)
    assert cancelled == [True]

    @deferred
    async def double(x: int) -> int:
        d: Deferred[int] = Deferred()
        asyncio.get_running_loop().call_soon(d.callback, 2 * x)
        return await d  # a plain Deferred: this coroutine runs on Twisted's driver

    assert await asyncio.gather(double(1), double(2)) == [2, 4]


@on_asyncio
async def test_error_taken_by_asyncio_leaves_no_unhandled_failure() -> None:
    """Once an asyncio task received the error, the Deferred's chain holds no
    Failure any more, so it is not also reported as "Unhandled error in Deferred"."""
    bad: Dual[int] = Dual()
    asyncio.get_running_loop().call_soon(bad.errback, ValueError("once"))
    with pytest.raises(ValueError):
        await bad
    assert bad.called and not isinstance(bad.result, Failure)


def test_dual_of_a_dual_is_itself() -> None:
    """dual() does not wrap twice."""
    d: Dual[int] = Dual()
    assert dual(d) is d


@on_asyncio
async def test_asyncio_awaiting_an_already_cancelled_dual_gets_asyncio_cancelled() -> None:
    """A Dual cancelled before an asyncio task awaits it raises asyncio.CancelledError
    there (not Twisted's), as one cancelled while awaited does."""
    d: Dual[int] = Dual()
    d.cancel()
    with pytest.raises(asyncio.CancelledError):
        await d


def test_twisted_awaiting_an_already_cancelled_dual_gets_twisted_cancelled() -> None:
    """The same on Twisted's driver gives Twisted's CancelledError."""
    d: Dual[int] = Dual()
    d.cancel()

    async def body() -> int:
        return await d

    failures: list[Any] = []
    Deferred.fromCoroutine(body()).addErrback(failures.append)
    assert failures and failures[0].check(CancelledError)


def test_source_settling_after_the_dual_was_cancelled_leaves_nothing_unhandled() -> None:
    """A source that settles only after its Dual was cancelled (a future still
    unwinding) is not passed on twice and leaves no failure in its own chain."""
    source: Deferred[int] = Deferred(lambda _: None)
    source.pause()  # its outcome arrives later, whatever cancel() did
    out = dual(source)
    out.cancel()
    source.unpause()
    assert out.called
    late: list[Any] = []
    source.addBoth(late.append)
    assert late and not isinstance(late[0], Failure)


def test_a_dual_cancelled_and_dropped_logs_nothing_but_awaiters_see_the_cancel() -> None:
    """Cancelling is what the caller asked for: no "Unhandled error in Deferred"
    when the Dual is collected; one awaited after cancel() still fails."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        dropped: Dual[int] = Dual()
        dropped.cancel()
        del dropped
        gc.collect()
        assert [e for e in events if e.get("log_failure") is not None] == []
        kept: Dual[int] = Dual()
        kept.cancel()
        seen: list[Any] = []
        kept.addErrback(seen.append)
        assert seen and seen[0].check(CancelledError)
    finally:
        globalLogPublisher.removeObserver(events.append)


def test_twisted_driver_gets_an_error_raised_at_the_await() -> None:
    """A Dual failing while Twisted's driver waits on it raises its error at the await."""
    source: Deferred[int] = Deferred()

    async def body() -> str:
        try:
            await dual(source)
        except KeyError as exc:
            return f"caught {exc.args[0]}"
        return "no error"

    outcome = Deferred.fromCoroutine(body())
    source.errback(KeyError("k"))
    assert outcome.result == "caught k"


def test_twisted_driver_waits_for_a_dual_paused_on_a_chained_deferred() -> None:
    """A Dual that fired but waits on a Deferred its callback returned is awaited
    until that one fires."""
    inner: Deferred[int] = Deferred()
    d: Dual[int] = Dual()
    d.addCallback(lambda _: inner)
    d.callback(0)

    async def body() -> int:
        return await d + 1

    outcome = Deferred.fromCoroutine(body())
    assert not outcome.called
    inner.callback(41)
    assert outcome.result == 42


@on_asyncio
async def test_asyncio_task_waits_for_a_dual_paused_on_a_chained_deferred() -> None:
    """The same in an asyncio task."""
    inner: Deferred[int] = Deferred()
    d: Dual[int] = Dual()
    d.addCallback(lambda _: inner)
    d.callback(0)
    asyncio.get_running_loop().call_soon(inner.callback, 41)
    assert await d + 1 == 42


def _probe_of(d: Dual[Any]) -> Any:
    """What a task awaiting ``d`` waits on (the first thing the await yields)."""
    return next(d.__await__())


@on_asyncio
async def test_done_callbacks_run_in_the_order_added_with_the_settled_future() -> None:
    """A second and third done-callback run after the first, each given the future."""
    d: Dual[int] = Dual()
    probe = _probe_of(d)
    assert not probe.done()
    seen: list[tuple[str, int]] = []
    last = asyncio.get_running_loop().create_future()
    probe.add_done_callback(lambda f: seen.append(("a", f.result())))
    probe.add_done_callback(lambda f: seen.append(("b", f.result())))
    probe.add_done_callback(lambda f: last.set_result(seen.append(("c", f.result()))))
    d.callback(7)
    assert probe.done() and probe.result() == 7 and probe.exception() is None
    await last
    assert seen == [("a", 7), ("b", 7), ("c", 7)]


@on_asyncio
async def test_removed_done_callbacks_do_not_run_and_are_counted() -> None:
    """remove_done_callback drops every registration of that callable and says
    how many; the others still run, in order, also when the first was removed."""
    d: Dual[int] = Dual()
    probe = _probe_of(d)
    seen: list[str] = []

    def dropped(_: Any) -> None:
        seen.append("dropped")

    last = asyncio.get_running_loop().create_future()
    probe.add_done_callback(dropped)
    probe.add_done_callback(lambda _: seen.append("kept"))
    probe.add_done_callback(dropped)
    probe.add_done_callback(lambda _: last.set_result(seen.append("last")))
    assert probe.remove_done_callback(dropped) == 2
    assert probe.remove_done_callback(dropped) == 0
    d.callback(1)
    await last
    assert seen == ["kept", "last"]


@on_asyncio
async def test_a_done_callback_added_to_a_settled_future_runs_soon() -> None:
    """Added after the outcome is known, a done-callback still runs (on the next turn)."""
    d: Dual[int] = Dual()
    probe = _probe_of(d)
    first = asyncio.get_running_loop().create_future()
    probe.add_done_callback(first.set_result)
    d.callback(3)
    await first
    later = asyncio.get_running_loop().create_future()
    probe.add_done_callback(later.set_result)
    assert (await later) is probe


@on_asyncio
async def test_cancelling_a_waiting_task_with_a_message_passes_it_on() -> None:
    """task.cancel(msg) while the task awaits a Dual cancels the Dual; the
    coroutine sees asyncio.CancelledError carrying msg, as from an asyncio future."""
    cancelled: list[bool] = []
    source: Deferred[int] = Deferred(lambda _: cancelled.append(True))
    started = asyncio.Event()
    seen: list[tuple[Any, ...]] = []

    async def waiter() -> int:
        started.set()
        try:
            return await dual(source)
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            raise

    task = asyncio.ensure_future(waiter())
    await started.wait()
    task.cancel("shutting down")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [("shutting down",)] and cancelled == [True]


@on_asyncio
async def test_a_settled_future_refuses_cancel() -> None:
    """cancel() on the future of a Dual that settled returns False and changes nothing."""
    d: Dual[int] = Dual()
    probe = _probe_of(d)
    settled = asyncio.get_running_loop().create_future()
    probe.add_done_callback(settled.set_result)
    d.callback(5)
    await settled
    assert probe.cancel() is False
    assert not probe.cancelled() and probe.result() == 5


def test_dual_holds_its_source_only_until_it_settled() -> None:
    """Once the source settled, the Dual keeps nothing of it alive."""
    source: Deferred[int] = Deferred()
    out = dual(source)
    gone = weakref.ref(source)
    source.callback(1)
    del source
    assert gone() is None and out.result == 1
