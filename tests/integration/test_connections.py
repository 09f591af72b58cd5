"""Bounded connections against a real etcd stopped with SIGSTOP, on both event
loops (tests/integration/loops.py): however many calls are made, at most
``max_connections`` connections carry them; ``max_queued`` more wait, the rest
fail with Busy at once, and the waiting ones complete once etcd answers again.
The rules are in etcdwamp/budget.py (unit tests: tests/unit/test_budget.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from loops import ensure, make_client
from stall import open_files, stalled
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from waiting import until

from etcdwamp import KeySet
from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster

CALLS = 1500
MAX_CONNECTIONS = 16
MAX_QUEUED = 1000
#: files the process may open beside the calls' connections (the loop's own)
MARGIN = 8


class Outcomes:
    """The outcome of each call, in call order, as it arrives (None: pending)."""

    def __init__(self) -> None:
        self.results: list[Any] = []

    def track(self, d: Deferred[Any]) -> None:
        index = len(self.results)
        self.results.append(None)

        def keep(result: Any) -> Any:
            self.results[index] = result.value if isinstance(result, Failure) else result
            return result  # the call's awaiter still gets it

        d.addBoth(keep)

    @staticmethod
    def settled(calls: list[Deferred[Any]]) -> None:
        """The failures are seen: none is "unhandled in Deferred" when collected."""
        for d in calls:
            d.addErrback(lambda _: None)

    def count(self, kind: type[BaseException]) -> int:
        return sum(isinstance(r, kind) for r in self.results)

    @property
    def pending(self) -> int:
        return sum(r is None for r in self.results)


@ensure
async def test_calls_to_a_stalled_etcd_hold_at_most_max_connections_and_busy_beyond_the_queue(
        etcd_factory: Callable[..., EtcdCluster], clients: list[Client], loop: str,
        prefix: bytes) -> None:
    """1,500 count calls to a stopped etcd: the process's open files rise by at
    most max_connections (+ a margin), the calls beyond max_queued fail with
    Busy before anything else happens, a queued call that is cancelled ends at
    once, and after SIGCONT every queued call gets its answer."""
    cluster = etcd_factory(1)
    client = make_client(loop, url=cluster.url, api_prefix="/v3", timeout=120.0,
                         max_connections=MAX_CONNECTIONS, max_queued=MAX_QUEUED)
    clients.append(client)
    before = open_files()
    for i in range(3):
        await client.put(prefix + b"%d" % i, b"v")
    # No idle connection left from the puts: every one counted below is a call's.
    await client.close()
    await until(lambda: open_files() <= before, why="the puts' connection is closed")
    outcomes = Outcomes()
    keys = KeySet(prefix, prefix=True)
    with stalled(cluster.members[0]):
        calls = [client.get(keys, count_only=True) for _ in range(CALLS)]
        for d in calls:
            outcomes.track(d)
        refused = CALLS - MAX_CONNECTIONS - MAX_QUEUED
        assert outcomes.count(e.Busy) == refused, "refused at once, nothing awaited"
        assert all(isinstance(r, e.Busy) for r in outcomes.results[-refused:])
        assert client.transport.budget.queued == MAX_QUEUED

        # The calls in flight open their connections (etcd's kernel accepts
        # them), and no more follow.
        await until(lambda: open_files() - before >= MAX_CONNECTIONS,
                    why=lambda: f"{open_files() - before} files opened")
        assert open_files() - before <= MAX_CONNECTIONS + MARGIN, open_files() - before

        waiting = calls[MAX_CONNECTIONS + 10]
        if loop == "asyncio":
            # asyncio code cancels the task that awaits the call.
            started: list[bool] = []

            async def wait() -> Any:
                started.append(True)
                return await waiting

            task = asyncio.ensure_future(wait())
            await until(lambda: started, why="the task awaits the call")
            task.cancel()
            ended: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(lambda: ended.set_result(task.done()))
            assert await ended, "the cancelled task did not end on its next step"
            assert task.cancelled()
        else:
            waiting.cancel()
            assert isinstance(outcomes.results[MAX_CONNECTIONS + 10], CancelledError)
        assert client.transport.budget.queued == MAX_QUEUED - 1, "it left the queue"
        assert outcomes.pending == MAX_CONNECTIONS + MAX_QUEUED - 1
        assert open_files() - before <= MAX_CONNECTIONS + MARGIN, open_files() - before

    await until(lambda: outcomes.pending == 0, timeout=60,
                why=lambda: f"{outcomes.pending} calls still pending")
    Outcomes.settled(calls)
    answered = [r for r in outcomes.results if not isinstance(r, BaseException)]
    assert len(answered) == MAX_CONNECTIONS + MAX_QUEUED - 1
    assert all(r.count == 3 for r in answered)
    assert outcomes.count(e.Busy) == CALLS - MAX_CONNECTIONS - MAX_QUEUED
    assert client.transport.budget.busy(client.endpoint) == 0
    assert open_files() - before <= MAX_CONNECTIONS + MARGIN, "idle connections kept"
