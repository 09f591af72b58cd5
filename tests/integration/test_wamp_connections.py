"""Bounded connections through the whole path: guests' calls to a component whose
etcd is stalled (SIGSTOP) cannot take the process hosting it to its open-file
limit, the calls beyond ``extra.etcd.max_queued`` fail with ``etcd.error.busy``
at once, and new WebSocket clients still join. The component runs embedded in
the Crossbar router (its files are the router worker's) and outside it on
asyncio (its files are the component process's).

The module has an etcd of its own (the ``etcd`` fixture below replaces the
shared one for this module), since stopping it would stall every other test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from stall import open_files, stalled
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from waiting import until
from wamp_helpers import (
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    node_fixtures,
)

from etcdwamp.testing import CrossbarNode, EtcdCluster

ensure = pytest_twisted.ensureDeferred

MAX_CONNECTIONS = 8
MAX_QUEUED = 1000
#: guests calling, and calls each makes: 1,500 calls in all, spread so that no
#: one session goes past a per-session limit of calls in flight (extra.limits)
GUESTS = 30
CALLS_EACH = 50
CALLS = GUESTS * CALLS_EACH
#: the target of issue 19: what 1,500 pending calls may add to the open files
FILES_ADDED = 100
#: and how soon a new client must join meanwhile
JOIN_SECONDS = 1.0

EXTRA = {
    "etcd": {"timeout": 120, "max_connections": MAX_CONNECTIONS, "max_queued": MAX_QUEUED},
    "db_prefix": "wconn/", "election": "wconn-publisher",
    "maps": {"notes": {"slot": 1, "read": ["guest", "writer"], "write": ["writer"]}},
    "kv_prefixes": [], "presence": None,
    # The connection bound itself is under test: the guests' rates (the role's 512
    # calls in flight would refuse most of the 1,500 first) are lifted here.
    "limits": {"default": {level: {"in_flight": None, "calls_per_second": None}
                           for level in ("session", "authid", "role")}},
}


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    """This module's own etcd, which its tests stop and continue."""
    cluster = EtcdCluster(1)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


crossbar, node = node_fixtures(EXTRA)


def component_pid(node: CrossbarNode) -> int:
    """The process whose files the component's connections are: the router
    worker hosting it, or the asyncio component process."""
    if node.component_loop == "asyncio":
        return node.components[0].pid
    # The committed config gives its router no title: Crossbar's names the
    # worker's controller class.
    pid = node.worker_pid("crossbar.worker.router.RouterController")
    assert pid is not None, "no router worker found"
    return pid


@ensure
async def test_calls_to_a_stalled_etcd_keep_open_files_bounded_and_joins_fast(
        node: CrossbarNode, etcd: EtcdCluster) -> None:
    """1,500 count calls of 30 guests while etcd is stopped: the component
    process's open files rise by at most 100, the calls beyond what may wait
    fail with etcd.error.busy at once, a new client joins in under a second,
    and after SIGCONT every waiting call gets its answer."""
    guests = [await connect(node, writer=False) for _ in range(GUESTS)]
    pid = component_pid(node)
    try:
        assert await guests[0].call("etcd.map.notes.count") == 0
        before = open_files(pid)
        outcomes: list[Any] = []

        def keep(result: Any) -> None:
            outcomes.append(result.value if isinstance(result, Failure) else result)

        def busy() -> int:
            return sum(isinstance(r, ApplicationError) and r.error == "etcd.error.busy"
                       for r in outcomes)

        with stalled(etcd.members[0]):
            calls: list[Deferred[Any]] = []
            for _ in range(CALLS_EACH):
                for guest in guests:
                    calls.append(guest.call("etcd.map.notes.count"))
                    calls[-1].addBoth(keep)
            # At most MAX_CONNECTIONS calls are in flight and MAX_QUEUED wait
            # (the component's own calls may hold some of those places too).
            await until(lambda: busy() >= CALLS - MAX_CONNECTIONS - MAX_QUEUED,
                        why=lambda: f"{busy()} busy of {len(outcomes)} answered\n"
                        + node.log_tail(40))
            assert len(outcomes) == busy(), f"only busy answers while etcd is stopped: " \
                f"{[r for r in outcomes if not isinstance(r, ApplicationError)][:3]}"
            added = open_files(pid) - before
            assert added <= FILES_ADDED, f"{added} files opened for {CALLS} calls"

            started = time.monotonic()
            newcomer = await connect(node, writer=False)
            joined = time.monotonic() - started
            await disconnect(newcomer)
            assert joined < JOIN_SECONDS, f"a new client took {joined:.2f}s to join"
            added = open_files(pid) - before
            assert added <= FILES_ADDED, f"{added} files opened for {CALLS} calls"

        await until(lambda: len(outcomes) == CALLS, timeout=60,
                    why=lambda: f"{CALLS - len(outcomes)} calls still pending")
        answered = [r for r in outcomes if not isinstance(r, BaseException)]
        assert answered and all(r == 0 for r in answered)
        assert len(answered) + busy() == CALLS
        assert "Too many open files" not in node.log_tail(100_000)
    finally:
        for guest in guests:
            await disconnect(guest)
