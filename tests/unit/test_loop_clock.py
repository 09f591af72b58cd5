"""LoopClock: Twisted's callLater on an asyncio loop (the asyncio client's clock).

The tests run as asyncio tasks on the loop under Twisted's asyncio reactor (the
suite's reactor) and wait for what a timer does, never for time to pass.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from typing import Any

from asyncio_tasks import on_asyncio

from etcdwamp.asyncio.clock import LoopClock

_seen_by_timers: contextvars.ContextVar[str] = contextvars.ContextVar("seen_by_timers")


@on_asyncio
async def test_a_timer_runs_its_call_once_at_its_time() -> None:
    """callLater runs fn(*args, **kwargs) at getTime() (on the running loop, bound
    on first use); active() until then, not after."""
    clock = LoopClock()
    ran = asyncio.get_running_loop().create_future()
    before = clock.seconds()
    timer = clock.callLater(0.01, lambda *a, **k: ran.set_result((a, k, clock.seconds())),
                            1, 2, three=3)
    assert timer.active()
    assert before + 0.01 <= timer.getTime() <= clock.seconds() + 0.01
    args, kwargs, at = await ran
    assert (args, kwargs) == ((1, 2), {"three": 3})
    assert at >= timer.getTime()
    assert not timer.active()


@on_asyncio
async def test_a_cancelled_timer_does_not_run_and_cancel_after_it_ran_does_nothing() -> None:
    """cancel() before it ran: it never runs and is inactive; cancel() once it ran
    (or twice) is a no-op."""
    clock = LoopClock()
    loop = asyncio.get_running_loop()
    calls: list[str] = []
    cancelled = clock.callLater(0, calls.append, "cancelled")
    cancelled.cancel()
    cancelled.cancel()
    assert not cancelled.active()
    later = loop.create_future()
    ran = clock.callLater(0, later.set_result, "ran")
    assert await later == "ran"
    ran.cancel()
    assert not ran.active()
    assert calls == []


@on_asyncio
async def test_a_negative_delay_runs_at_once() -> None:
    """A delay already past (a deadline missed) runs on the next turn, not before now."""
    clock = LoopClock()
    ran = asyncio.get_running_loop().create_future()
    now = clock.seconds()
    timer = clock.callLater(-5.0, ran.set_result, None)
    assert now <= timer.getTime() <= clock.seconds()
    await ran


@on_asyncio
async def test_a_timer_keeps_nothing_alive_once_it_ran_or_was_cancelled() -> None:
    """What a timer would call is released when it runs or is cancelled, though
    the DelayedCall itself is kept (no cycle through a timer kept by its target)."""

    class Target:
        def hit(self, done: asyncio.Future[None]) -> None:
            done.set_result(None)

    clock = LoopClock()
    gc.disable()  # refcounting alone must free them
    try:
        ran_target, cancelled_target = Target(), Target()
        ran_gone, cancelled_gone = weakref.ref(ran_target), weakref.ref(cancelled_target)
        done = asyncio.get_running_loop().create_future()
        timers = [clock.callLater(0, ran_target.hit, done),
                  clock.callLater(60, cancelled_target.hit, done)]
        del ran_target, cancelled_target
        await done
        timers[1].cancel()
        assert ran_gone() is None and cancelled_gone() is None
    finally:
        gc.enable()


@on_asyncio
async def test_timers_share_one_context_of_their_own() -> None:
    """Timers run in their clock's Context, not a copy of their caller's: a value a
    timer sets is seen by the clock's later timers (as in Twisted's reactor), not
    by the task that scheduled them, and a timer does not see the task's values.
    A timer scheduling another from inside itself works (one Context, never
    entered twice)."""
    clock = LoopClock()
    loop = asyncio.get_running_loop()
    _seen_by_timers.set("task")
    first_saw = loop.create_future()
    second_saw = loop.create_future()

    def first() -> None:
        first_saw.set_result(_seen_by_timers.get("unset"))
        _seen_by_timers.set("first timer")
        clock.callLater(0, lambda: second_saw.set_result(_seen_by_timers.get("unset")))

    clock.callLater(0, first)
    assert await first_saw == "unset"
    assert await second_saw == "first timer"
    assert _seen_by_timers.get() == "task"
    other: Any = loop.create_future()
    LoopClock(loop).callLater(0, lambda: other.set_result(_seen_by_timers.get("unset")))
    assert await other == "unset", "each clock has its own Context"
