"""Faults through the whole path: real etcd processes killed under load, a real
Crossbar node, the component in its router or in a container worker; the tests
of etcd's faults also with the component outside Crossbar on asyncio.

Each test has its own etcd (``etcd_factory``), its own node and its own
``db_prefix``/election, so killing things here disturbs no other test.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest_twisted
from autobahn.twisted.component import Component
from autobahn.wamp.exception import ApplicationError
from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError, gatherResults
from waiting import until
from wamp_helpers import (
    CONFIG,
    callees,
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    publisher_keys,
    until_registered,
)

from etcdwamp import Client, errors
from etcdwamp.testing import CrossbarNode, EtcdCluster
from etcdwamp.wire import CompVersion, OpGet, OpSet, Transaction

ensure = pytest_twisted.ensureDeferred

TOPIC = "etcd.map.notes.on_change"
SLOT = b"\x00\x01"


def extra(name: str, **etcd: Any) -> dict[str, Any]:
    """Component settings of one test: its own keys, election and etcd options."""
    return {
        "db_prefix": f"{name}/",
        "election": f"{name}/publisher",
        "maps": {"notes": {"slot": 1, "key": "string", "value": "json"}},
        "kv_prefixes": [f"{name}-raw/"],
        "etcd": etcd,
    }


def note_key(name: str, key: str) -> bytes:
    return f"{name}/".encode() + SLOT + key.encode()


@contextmanager
def running(node: CrossbarNode) -> Iterator[CrossbarNode]:
    try:
        node.start()
        yield node
    finally:
        node.stop()


class Recorder:
    """Every event of one topic, in arrival order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def revisions(self, accept: Callable[[str], bool] = lambda key: True) -> list[int]:
        return [ev["revision"] for ev in self.events if accept(ev["key"])]

    def has_key(self, key: str) -> bool:
        return any(ev["key"] == key for ev in self.events)


async def publishing(client: Client, name: str, events: Recorder, *,
                     via: Any = None) -> None:
    """Return once the elected publisher publishes: a probe write (made again
    while none arrived, since a publisher elected later starts after it)
    reaches the subscriber."""
    probes = iter(range(10_000))

    async def probe_arrived() -> bool:
        if any(ev["key"].startswith("probe") for ev in events.events):
            return True
        key = f"probe{next(probes)}"
        if via is None:
            await client.put(note_key(name, key), b"0")
        else:
            await via.call("etcd.map.put", "notes", key, 0)
        return False

    await until(probe_arrived, timeout=60, why="no probe event reached the subscriber")


# -- etcd killed with SIGKILL twice under direct writes -------------------------------


async def put_once(client: Client, key: bytes, value: bytes) -> int:
    """Write ``key`` once (it must not exist yet) and return the write's revision,
    whatever became of earlier attempts: the put only runs if the key is still
    absent, and otherwise the transaction reads the key back (an earlier attempt
    whose answer was lost did write it)."""
    result = await client.txn(Transaction(compare=[CompVersion(key, "==", 0)],
                                          success=[OpSet(key, value)],
                                          failure=[OpGet(key)]))
    if result.succeeded:
        return result.revision
    stored = result.responses[0].kvs[0]  # type: ignore[union-attr]
    assert stored.value == value, f"{key!r} holds {stored.value!r}, not our {value!r}"
    return int(stored.mod_revision)


async def put_retrying(client: Client, key: bytes, value: bytes, *,
                       timeout: float = 60.0) -> int:
    """:func:`put_once`, tried again while etcd is down or the outcome is unknown."""
    acked: list[int] = []

    async def written() -> bool:
        try:
            acked.append(await put_once(client, key, value))
        except (errors.TransportError, errors.Unavailable, errors.DeadlineExceeded):
            return False  # etcd is down or restarting: the next poll tries again
        return True

    await until(written, timeout=timeout, why=f"{key!r} could not be written")
    return acked[0]


LEASE_LOST = re.compile(r"lease \d+ lost")  # etcdwamp.lease logs it so


def leases_lost(node: CrossbarNode) -> int:
    """How many leases the node's components reported lost so far."""
    return len(LEASE_LOST.findall(node.log_tail(10**7)))


@ensure
async def test_etcd_killed_twice_under_writes_every_revision_exactly_once_in_order(
        etcd_factory: Callable[..., EtcdCluster], component_loop: str) -> None:
    """1,000 puts made directly against etcd while etcd is SIGKILLed and restarted
    twice (once briefly, once for longer than the publisher's election lease):
    the WAMP subscriber gets each acknowledged put's revision exactly once, in
    increasing order, and nothing else."""
    etcd = etcd_factory(1)
    member = etcd.members[0]
    name = "faults1"
    client = Client(reactor, endpoints=etcd.urls, timeout=2.0)
    with running(CrossbarNode(str(CONFIG), etcd.urls, component_loop=component_loop,
                              extra_overrides=extra(name, timeout=2.0))) as node:
        s = await connect(node)
        events = Recorder()
        try:
            await s.subscribe(events, TOPIC)
            await publishing(client, name, events)
            acked: list[int] = []
            for i in range(1000):
                if i == 300:
                    member.kill()  # SIGKILL: a crash, no goodbye
                    member.start()  # same data dir
                if i == 650:
                    lost = leases_lost(node)
                    member.kill()
                    # Stay down until the component gave up its publisher lease
                    # (it must campaign again and resume from its checkpoint).
                    await until(lambda lost=lost: leases_lost(node) > lost, timeout=30,
                                why=lambda: node.log_tail(30))
                    member.start()
                acked.append(await put_retrying(client, note_key(name, f"k{i:04d}"),
                                                b"%d" % i))
            # A last write after all faults: once its event arrived, every
            # earlier event (or duplicate) from the one publisher has too.
            last = await put_retrying(client, note_key(name, "zlast"), b"1")
            await until(lambda: events.has_key("zlast"), timeout=60,
                        why=lambda: f"{len(events.events)} events\n{node.log_tail(40)}")
            every = events.revisions()
            assert len(every) == len(set(every)), \
                f"duplicates: {sorted(r for r in set(every) if every.count(r) > 1)[:20]}"
            data = events.revisions(lambda key: key.startswith("k"))
            missing = sorted(set(acked) - set(data))
            assert not missing, f"{len(missing)} acknowledged revisions never arrived: " \
                                f"{missing[:20]}"
            assert data == acked  # exactly these, each once, in increasing order
            assert acked == sorted(acked)
            assert all(ev["key"].startswith(("k", "probe", "zlast")) for ev in events.events)
            assert events.revisions(lambda key: key == "zlast") == [last]
        finally:
            await disconnect(s)
            await client.close()


# -- the leader of a 3-member cluster killed during WAMP puts ----------------------------

TIMEOUT = 2.0  # extra.etcd.timeout of the component in the cluster test
MARGIN = 1.0  # WAMP round trip and scheduling on a loaded 2-core machine


async def leader_of(cluster: EtcdCluster) -> int:
    """The index of the member that leads (asked of each running member)."""
    for index, member in enumerate(cluster.members):
        if not member.running:
            continue
        probe = Client(reactor, url=member.url, timeout=2.0)
        try:
            status = await probe.status()
        except errors.EtcdError:
            continue
        finally:
            await probe.close()
        if status.leader and status.leader == status.header.member_id:
            return index
    raise AssertionError("no member says it leads")


class TimedCalls:
    """WAMP calls of one session, each timed; failures are recorded, not raised."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.failed: list[tuple[str, str]] = []
        self.durations: list[tuple[float, str]] = []

    async def __call__(self, procedure: str, *args: Any) -> Any:
        """The call's result, or None if it failed."""
        what = f"{procedure}{args[:2]}"
        started = time.monotonic()
        call: Deferred[Any] = self.session.call(procedure, *args)
        # A hang shows up as a too-long duration, not as a stuck test.
        call.addTimeout(5 * (TIMEOUT + MARGIN), reactor)
        try:
            return await call
        except ApplicationError as exc:
            self.failed.append((what, str(exc.error)))
        except TimeoutError:
            self.failed.append((what, "no answer"))
        finally:
            self.durations.append((time.monotonic() - started, what))
        return None

    def check(self, *, writes: bool = False) -> None:
        """Every failure is ``unavailable`` (``internal`` would be a bug) or, for
        ``writes``, ``outcome_unknown`` (a put sent to the killed leader may have
        been applied), and no call outlasted the configured timeout."""
        allowed = {"etcd.error.unavailable"}
        if writes:
            allowed.add("etcd.error.outcome_unknown")
        assert all(uri in allowed for _, uri in self.failed), self.failed
        slow = [(round(d, 2), what) for d, what in self.durations if d > TIMEOUT + MARGIN]
        assert not slow, f"calls slower than {TIMEOUT}s + {MARGIN}s: {slow}"


async def steady_flow(call: Callable[[int], Any], *, kill: Callable[[], object],
                      kill_after: int, stop_after: int, done: Callable[[], int],
                      limit: int = 600) -> bool:
    """Four callers, each making ``call(i)`` one after another (a steady flow
    with several calls in flight): ``kill()`` once ``done()`` reached
    ``kill_after``, stop at ``stop_after`` (or after ``limit`` calls).
    Returns whether it killed."""
    numbers = iter(range(limit))
    killed: list[bool] = []

    async def caller() -> None:
        for i in numbers:
            if done() >= kill_after and not killed:
                killed.append(True)
                kill()
            if done() >= stop_after:
                return
            await call(i)

    await gatherResults([Deferred.fromCoroutine(caller()) for _ in range(4)])
    return bool(killed)


@ensure
async def test_cluster_leader_killed_during_wamp_puts(
        etcd_factory: Callable[..., EtcdCluster], component_loop: str) -> None:
    """WAMP puts in a steady flow while the etcd leader is SIGKILLed: every put
    acknowledged to the caller is in etcd afterwards, calls that fail during
    the election fail with ``etcd.error.unavailable`` or, sent to the killed
    leader, ``etcd.error.outcome_unknown``, and no call takes longer
    than the configured timeout (plus a margin)."""
    cluster = etcd_factory(3)
    name = "faults2"
    with running(CrossbarNode(str(CONFIG), cluster.urls, component_loop=component_loop,
                              extra_overrides=extra(name, timeout=TIMEOUT))) as node:
        s = await connect(node)
        calls = TimedCalls(s)
        acked: dict[str, int] = {}
        try:
            leader = await leader_of(cluster)

            async def put(i: int) -> None:
                written = await calls("etcd.map.put", "notes", f"k{i:04d}", i)
                if written is not None:
                    acked[f"k{i:04d}"] = written["revision"]

            killed = await steady_flow(put, kill=cluster.members[leader].kill, kill_after=60,
                                       stop_after=160, done=lambda: len(acked))
            assert killed and len(acked) >= 160, \
                f"the survivors took only {len(acked) - 60} puts; failures: " \
                f"{calls.failed[-5:]}\n{node.log_tail(30)}"
            calls.check(writes=True)
            survivors = [m.url for m in cluster.members if m.running]
            reader = Client(reactor, endpoints=survivors, timeout=5.0)
            try:
                for key, revision in acked.items():
                    stored = (await reader.get(note_key(name, key))).first
                    assert stored is not None, f"acknowledged put {key} is not in etcd"
                    assert stored.mod_revision == revision
                    assert int(stored.value) == int(key[1:])
            finally:
                await reader.close()
        finally:
            await disconnect(s)


@ensure
async def test_cluster_reads_during_a_slow_election_end_within_the_timeout(
        etcd_factory: Callable[..., EtcdCluster], component_loop: str) -> None:
    """WAMP reads in a steady flow while the etcd leader is SIGKILLed and the
    election outlasts twice the component's timeout (etcd's election timeout is
    5 s here, so no survivor answers a linearizable read for 5 s or more):
    reads fail with ``etcd.error.unavailable`` within the configured timeout
    (plus a margin) rather than waiting for the election."""
    cluster = etcd_factory(3, extra_args=["--heartbeat-interval=500",
                                          "--election-timeout=5000"])
    name = "faults2r"
    with running(CrossbarNode(str(CONFIG), cluster.urls, component_loop=component_loop,
                              extra_overrides=extra(name, timeout=TIMEOUT))) as node:
        s = await connect(node)
        calls = TimedCalls(s)
        served: list[int] = []
        try:
            for i in range(10):
                await s.call("etcd.map.put", "notes", f"k{i}", i)
            leader = await leader_of(cluster)

            async def get(i: int) -> None:
                got = await calls("etcd.map.get", "notes", f"k{i % 10}")
                if got is not None:
                    assert got["value"] == i % 10
                    served.append(i)

            killed = await steady_flow(get, kill=cluster.members[leader].kill, kill_after=60,
                                       stop_after=160, done=lambda: len(served))
            assert killed and len(served) >= 160, \
                f"the survivors served only {len(served) - 60} reads; failures: " \
                f"{calls.failed[-5:]}\n{node.log_tail(30)}"
            calls.check()
        finally:
            await disconnect(s)


# -- the component in a container worker that is killed and started again -------------


async def connect_backend(node: CrossbarNode) -> Any:
    """A session on the node's private backend transport (role ``backend``)."""
    joined: Deferred[Any] = Deferred()
    component = Component(
        transports=[{"type": "rawsocket", "url": "rs://localhost",
                     "endpoint": {"type": "unix", "path": node.backend_socket},
                     "serializer": "cbor", "max_retries": 0}],
        realm="realm1")

    @component.on_join  # type: ignore[untyped-decorator]
    def on_join(session: Any, details: Any) -> None:
        if not joined.called:
            joined.callback(session)

    component.start(reactor).addErrback(lambda f: None if joined.called else joined.errback(f))
    return await joined


@ensure
async def test_container_worker_restart_brings_back_procedures_and_publisher(
        etcd_factory: Callable[..., EtcdCluster]) -> None:
    """The component in a Crossbar container worker (over a rawsocket to the
    router) serves calls and publishes; after the worker process is SIGKILLed
    and Crossbar starts it again, its procedures are back and its publisher
    resumes: writes made while it was down and writes after arrive."""
    etcd = etcd_factory(1)
    name = "faults3"
    client = Client(reactor, endpoints=etcd.urls, timeout=5.0)
    control = "etcdwamp.control"
    with running(CrossbarNode(str(CONFIG), etcd.urls, container=True,
                              extra_overrides=extra(name))) as node:
        s = await connect(node)
        backend = await connect_backend(node)
        events = Recorder()
        try:
            await s.subscribe(events, TOPIC)
            await publishing(client, name, events, via=s)
            before = await s.call("etcd.map.put", "notes", "before", 1)
            await until(lambda: events.has_key("before"), timeout=30)
            assert (await client.get(note_key(name, "before"))).first.mod_revision == \
                before["revision"]  # type: ignore[union-attr]

            keys = await publisher_keys(node, f"{name}/publisher")

            async def checkpoint_reached() -> bool:
                kv = (await client.get(keys.checkpoint)).first
                return kv is not None and int(kv.value) >= before["revision"]

            # The publisher records what it published; a successor resumes there.
            await until(checkpoint_reached, timeout=30)

            pid = node.worker_pid(CrossbarNode.CONTAINER_ID)
            assert pid is not None, "no container worker process"
            os.kill(pid, signal.SIGKILL)

            async def worker_gone() -> bool:
                return CrossbarNode.CONTAINER_ID not in await backend.call(f"{control}.workers")

            await until(worker_gone, timeout=30, why=lambda: node.log_tail(30))
            try:
                await s.call("etcd.map.put", "notes", "nobody", 1)
                raise AssertionError("a put succeeded with the container worker dead")
            except ApplicationError as exc:
                assert exc.error == "wamp.error.no_such_procedure"
            during = [(await client.put(note_key(name, f"during{i}"), b"%d" % i)).revision
                      for i in range(20)]

            await backend.call(f"{control}.start_worker", CrossbarNode.CONTAINER_ID)
            restarted = node.worker_pid(CrossbarNode.CONTAINER_ID)
            assert restarted is not None and restarted != pid

            async def procedures_back() -> bool:
                try:
                    await s.call("etcd.map.put", "notes", "after", 2)
                except ApplicationError as exc:
                    if exc.error == "wamp.error.no_such_procedure":
                        return False
                    raise
                return True

            await until(procedures_back, timeout=60, why=lambda: node.log_tail(30))
            after = (await client.get(note_key(name, "after"))).first
            assert after is not None and int(after.value) == 2
            got = await s.call("etcd.map.get", "notes", "during7")
            assert got["value"] == 7 and got["revision"] == during[7]
            # Published by the new instance: the writes made while no worker
            # ran (from the checkpoint on) and the one after the restart.
            wanted = set(during) | {after.mod_revision}
            await until(lambda: wanted <= set(events.revisions()), timeout=60,
                        why=lambda: f"missing {sorted(wanted - set(events.revisions()))}\n"
                                    + node.log_tail(30))
        finally:
            await disconnect(s)
            await disconnect(backend)
            await client.close()


# -- an asyncio component process killed -------------------------------------------------


@ensure
async def test_asyncio_component_killed_the_other_serves_and_publishes(
        etcd_factory: Callable[..., EtcdCluster]) -> None:
    """Two asyncio component processes outside Crossbar; the one that publishes is
    SIGKILLed: the other serves every call, takes the publisher's election when the
    dead one's lease expires, and publishes every write made after the kill (resuming
    from the checkpoint); a replacement process joins and serves too."""
    etcd = etcd_factory(1)
    name = "faults4"
    client = Client(reactor, endpoints=etcd.urls, timeout=5.0)
    with running(CrossbarNode(str(CONFIG), etcd.urls, component_loop="asyncio",
                              instances=2, extra_overrides=extra(name))) as node:
        await until_registered(node, 2)
        s = await connect(node)
        events = Recorder()
        try:
            await s.subscribe(events, TOPIC)
            await publishing(client, name, events, via=s)
            keys = await publisher_keys(node, f"{name}/publisher")
            leader = await client.election(keys.election).leader()
            assert leader is not None
            session = leader.value.decode()
            (victim,) = [process for process, log in zip(node.components, node.component_logs,
                                                         strict=True)
                         if f"session {session})" in Path(log).read_text()]
            victim.kill()  # SIGKILL: no goodbye, no resignation
            victim.wait()

            async def served() -> bool:
                try:
                    return (await s.call("etcd.status"))["framework"] == "asyncio"
                except ApplicationError:
                    return False

            await until(served, why=lambda: node.log_tail(30))
            assert await callees(node, "etcd.map.put") == 1
            after = [(await client.put(note_key(name, f"after{i}"), b"%d" % i)).revision
                     for i in range(20)]
            got = await s.call("etcd.map.get", "notes", "after7")
            assert got["revision"] == after[7]
            # Published once the survivor leads (the dead one's lease expires).
            await until(lambda: set(after) <= set(events.revisions()), timeout=60,
                        why=lambda: f"missing {sorted(set(after) - set(events.revisions()))}"
                                    f"\n{node.log_tail(30)}")
            node.start_component()
            await until_registered(node, 2)
        finally:
            await disconnect(s)
            await client.close()
