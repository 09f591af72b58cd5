"""The asyncio live map (:class:`etcdwamp.asyncio.livemap.LiveMap`) against a fake asyncio
WAMP session: the shared algorithm runs as an asyncio task, its handles are futures, and
cancelling them (or stop()) cancels the read under way.

The tests run as asyncio tasks on the loop under Twisted's asyncio reactor (the
suite's reactor), as a user of etcdwamp.asyncio would; pytest-twisted waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asyncio_tasks import on_asyncio

from etcdwamp.asyncio.livemap import LiveMap


class AsyncioSession:
    """Like an autobahn.asyncio session: ``subscribe`` is a coroutine, ``call`` returns
    a future; :meth:`next_call` waits for the live map's next call."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.order: list[str] = []
        self._calls: asyncio.Queue[tuple[asyncio.Future[Any], Any]] = asyncio.Queue()

    async def subscribe(self, handler: Callable[..., Any], topic: str) -> object:
        self.order.append("subscribe " + topic)
        self.handlers[topic] = handler
        return object()

    def call(self, procedure: str, *args: Any, options: Any = None) -> asyncio.Future[Any]:
        self.order.append("call " + procedure)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.put_nowait((reply, options))
        return reply

    async def next_call(self) -> tuple[asyncio.Future[Any], Any]:
        return await asyncio.wait_for(self._calls.get(), 10)

    def publish(self, key: str, value: Any, revision: int) -> None:
        self.handlers["etcd.map.notes.on_change"](
            {"op": "put", "key": key, "value": value, "revision": revision})


def table(live: LiveMap) -> dict[str, tuple[Any, int]]:
    return {key: (row.value, row.revision) for key, row in live.rows.items()}


@on_asyncio
async def test_it_follows_and_resumes_exactly_on_a_new_asyncio_session() -> None:
    """Subscribe first, then read; an event during the read applies above the snapshot;
    after a leave the rows stay, and the next session's snapshot replaces them, with a
    late event of the old session ignored. attach returns an awaitable future."""
    states: list[str] = []
    live = LiveMap("notes", on_state=states.append)
    old = AsyncioSession()
    attached = live.attach(old)
    reply, options = await old.next_call()
    assert old.order == ["subscribe etcd.map.notes.on_change",
                         "subscribe etcd.map.notes.on_resync",
                         "call etcd.map.notes.get_and_watch"]
    old.publish("b", 2, 11)
    options.on_progress({"revision": 10, "items": [{"key": "a", "value": 1, "revision": 3}]})
    reply.set_result({"revision": 10, "items": []})
    await attached
    assert table(live) == {"a": (1, 3), "b": (2, 11)} and live.revision == 11

    live.detach(old)
    new = AsyncioSession()
    attached = live.attach(new)
    reply, _ = await new.next_call()
    assert live.state == "reading" and table(live) == {"a": (1, 3), "b": (2, 11)}
    old.publish("a", 99, 30)
    new.publish("c", 3, 14)
    reply.set_result({"revision": 13, "items": [{"key": "a", "value": 2, "revision": 12}]})
    await attached
    assert table(live) == {"a": (2, 12), "c": (3, 14)}
    assert states == ["reading", "live", "disconnected", "reading", "live"]
    assert live.snapshots == 2


@on_asyncio
async def test_stop_during_a_read_cancels_it() -> None:
    """stop() while get_and_watch is under way cancels the call's future and the task
    attach returned; on_error hears nothing and the rows stay."""
    errors: list[BaseException] = []
    live = LiveMap("notes", on_error=errors.append)
    s = AsyncioSession()
    attached = live.attach(s)
    reply, _ = await s.next_call()
    live.stop()
    with pytest.raises(asyncio.CancelledError):
        await attached
    assert reply.cancelled()
    assert errors == [] and live.state == "stopped" and live.rows == {}


@on_asyncio
async def test_cancelling_the_awaiting_task_cancels_the_read() -> None:
    """asyncio.wait_for running out on ``await live.attach(session)`` cancels the
    get_and_watch call, as cancelling any etcdwamp.asyncio call does."""
    live = LiveMap("notes")
    s = AsyncioSession()
    waiting = asyncio.ensure_future(asyncio.wait_for(live.attach(s), 30))
    reply, _ = await s.next_call()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert reply.cancelled() and live.state == "reading"


@on_asyncio
async def test_a_failed_read_reaches_on_error_and_a_resync_reads_again() -> None:
    """A get_and_watch failure on the current session is reported once (follow's join
    handler consumes it); resync() reads again and the copy goes live."""
    errors: list[BaseException] = []
    reported = asyncio.Event()
    live = LiveMap("notes", on_error=lambda e: (errors.append(e), reported.set()))
    handlers: dict[str, Callable[..., Any]] = {}
    component = type("Component", (), {"on": lambda self, e, f: handlers.__setitem__(e, f)})()
    live.follow(component)
    s = AsyncioSession()
    handlers["join"](s, None)
    reply, _ = await s.next_call()
    reply.set_exception(RuntimeError("refused"))
    await asyncio.wait_for(reported.wait(), 10)
    retry = live.resync()
    reply, _ = await s.next_call()
    reply.set_result({"revision": 5, "items": [{"key": "a", "value": 1, "revision": 5}]})
    await retry
    assert [str(e) for e in errors] == ["refused"]
    assert live.state == "live" and table(live) == {"a": (1, 5)}
    handlers["leave"](s, None)
    assert live.state == "disconnected"
