"""Partitions and hung members under load (issue 20): a 3-member etcd cluster in network
namespaces (tests/integration/netns.py), a workload in a namespace of its own
(partition_workload.py: writes, linearizable reads, a client watch, a Crossbar node
whose component serves WAMP calls and publishes the events to a subscriber), one
fault per test, then the checks of fault_history.py on everything recorded.

Every scenario asserts: no acknowledged write lost (and no write reported failed
applied); every read linearizable; every event of etcd's history delivered once, in
revision order, by the watch and by the WAMP subscriber; no event later than
:data:`STALL_BOUND` after its write was acknowledged; no call longer than its
timeout (plus :data:`SLACK`); and, for the single faults, every part (the client,
the watch, the WAMP events, the WAMP calls) serving again within
:data:`STALL_BOUND` while the fault lasts.

Each test prints its row of the fault table to the terminal and appends it to
:data:`FAULT_TABLE`. The tests need root (network namespaces): without them they
are skipped, except where ``CI`` is set (then they fail).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_history import TABLE_HEADER, analyse
from netns import NamespacesUnavailable, NetnsCluster, probe_namespaces

from etcdwamp.testing import EtcdMember, etcd_binary

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = Path(__file__).with_name("partition_workload.py")

#: every call's timeout (the clients' and the component's etcd timeout), seconds
TIMEOUT = 5.0
#: how late a call may end past its timeout before it counts as outliving it
SLACK = 1.0
#: how long after a fault's start events must flow again, and the latest an event may
#: arrive after its write was acknowledged: the worst-case detection of a hung member
#: (the stream probe's interval + its timeout, 2 s + 2 s by default) + 2 s to move
STALL_BOUND = 2.0 + 2.0 + 2.0
#: one election: etcd 3.4's randomized election timeout is up to 2 s here, during which
#: nothing is written and the publisher may have to campaign again
ELECTION = 2.0
#: the same for cut-and-heal, where every cut of the leader and every heal (a rejoining
#: member with a higher term: etcd 3.4 has no pre-vote by default) makes the cluster
#: elect (up to two elections)
CYCLE_STALL_BOUND = STALL_BOUND + 2 * ELECTION
#: how soon calls begun during a fault must be served well again: a write sent to a member
#: that has not yet noticed it is cut off (its randomized election timeout: up to 2 s)
#: waits out its timeout
CALL_BOUND = 2.0 + TIMEOUT + SLACK
#: how soon each part must be served well again after a single fault began
RECOVERY = {"client reads": CALL_BOUND, "client writes": CALL_BOUND, "watch": STALL_BOUND,
            "WAMP events": STALL_BOUND, "WAMP gets": CALL_BOUND, "WAMP puts": CALL_BOUND}
#: a single fault is held until every part served something begun this long after
#: it started (it worked around the fault for a while), or for :data:`HOLD_MAX`
MIN_HOLD = 5.0
HOLD_MAX = STALL_BOUND + 5.0
#: cut-and-heal: how many times, and how long each cut is held (as :data:`MIN_HOLD`
#: and :data:`HOLD_MAX` for a single fault)
CYCLES = 10
CYCLE_MIN_HOLD = 1.5
CYCLE_HOLD_MAX = 3.0
#: the pause between two calls of one workload actor
PACE = 0.02
#: where the fault table goes (besides the terminal)
FAULT_TABLE = Path(os.environ.get("ETCDWAMP_FAULT_TABLE",
                                  Path(tempfile.gettempdir()) / "etcdwamp-fault-table.md"))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the partition suite must run in CI: {reason}")
    pytest.skip(f"partition suite skipped: {reason}")


@pytest.fixture
def lab() -> Iterator[NetnsCluster]:
    """A fresh 3-member cluster in network namespaces, torn down whatever happens."""
    try:
        etcd_binary()
        if shutil.which("etcdctl") is None:
            raise FileNotFoundError("etcdctl not found (apt-get install etcd-client)")
        probe_namespaces()
    except (FileNotFoundError, NamespacesUnavailable) as exc:
        _unavailable(str(exc))
    cluster = NetnsCluster(3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def table(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Adds a row to the fault table: in :data:`FAULT_TABLE`, and on the terminal as the
    test ends (output capture or not)."""
    FAULT_TABLE.write_text(TABLE_HEADER + "\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def add(row: str) -> None:
        with FAULT_TABLE.open("a") as f:
            f.write(row + "\n")
        with capture.global_and_fixture_disabled():
            print(f"\n{TABLE_HEADER}\n{row}")

    return add


class WorkloadProcess:
    """partition_workload.py running in the lab's client namespace, and its lines."""

    def __init__(self, lab: NetnsCluster, name: str, order: list[EtcdMember],
                 directory: Path) -> None:
        self.history_path = directory / "history.json"
        self.log_path = directory / "workload.log"
        self.config = {
            "name": name, "keys": 4, "timeout": TIMEOUT, "pace": PACE,
            "catch_up": CYCLE_STALL_BOUND, "history": str(self.history_path),
            "endpoints": [m.url for m in order],
            # A healthy member first: events keep coming whatever the test client does.
            "steady_endpoints": [m.url for m in reversed(order)],
        }
        self.lab = lab
        self.process: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        #: the last ``progress`` fields
        self.progress: dict[str, Any] = {}

    def __enter__(self) -> WorkloadProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                self.lab.in_client([sys.executable, str(WORKLOAD), json.dumps(self.config)]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()  # its Crossbar node goes with the namespace (NetnsCluster.stop)
        self.process.wait(timeout=30)

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            word, _, fields = line.partition(" ")
            try:
                self.lines.put((word, json.loads(fields)))
            except ValueError:
                continue  # not one of ours (a library printing to stdout)
        self.lines.put(None)

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def next_line(self, deadline: float) -> tuple[str, dict[str, Any]] | None:
        """The next line, or None when ``deadline`` passed first.

        :raises AssertionError: the workload ended
        """
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if line is None:
            raise AssertionError(f"the workload ended:\n{self._log()}")
        if line[0] == "progress":
            self.progress = line[1]
        return line

    def expect(self, word: str, timeout: float) -> dict[str, Any]:
        """The fields of the next ``word`` line.

        :raises AssertionError: none within ``timeout`` seconds, or the workload ended
        """
        deadline = time.monotonic() + timeout
        while (line := self.next_line(deadline)) is not None:
            if line[0] == word:
                return line[1]
        raise AssertionError(f"no {word!r} from the workload within {timeout}s:\n{self._log()}")

    def wait(self, condition: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Whether ``condition(progress)`` held within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not (self.progress and condition(self.progress)):
            if self.next_line(deadline) is None:
                return False
        return True

    def served_since(self, t: float) -> Callable[[dict[str, Any]], bool]:
        """Every part served something begun at ``t`` or later (see the workload's
        ``fresh``)."""
        return lambda progress: min(progress["fresh"].values()) >= t

    def stop(self) -> dict[str, Any]:
        """Tell the workload to stop; its history once it wrote it."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write("stop\n")
        self.process.stdin.flush()
        self.expect("done", timeout=TIMEOUT + 5 + STALL_BOUND + 60)
        history: dict[str, Any] = json.loads(self.history_path.read_text())
        return history


def held(lab: NetnsCluster, member: EtcdMember, load: WorkloadProcess,
         begin: Callable[[EtcdMember], None], end: Callable[[EtcdMember], None], *,
         least: float, most: float) -> tuple[float, float]:
    """``begin`` the fault on ``member`` and keep it until every part served something
    begun ``least`` seconds after it began, or until ``most`` seconds passed, and check
    that it took: ``member`` knows no leader, or does not answer (a cut follower may keep
    its leader up to 2 s: the check waits for that); then ``end`` it at once. Returns
    the fault's start and end."""
    begin(member)
    start = time.monotonic()
    load.wait(load.served_since(start + least), timeout=start + most - time.monotonic())
    lab.wait_leaderless(member)
    stop = time.monotonic()
    end(member)
    return start, stop


Inflict = Callable[[WorkloadProcess], list[tuple[float, float]]]


def scenario(lab: NetnsCluster, table: Callable[[str], None], tmp_path: Path, fault: str,
             first: EtcdMember, inflict: Inflict, *, recover_within: dict[str, float] | None,
             reads_succeed: bool, stall_bound: float = STALL_BOUND) -> None:
    """Run the workload with ``first`` as the first endpoint of the test client and the
    component, ``inflict`` the faults (it returns their start and end times), heal,
    and check the history."""
    began = time.monotonic()
    order = [first, *(m for m in lab.members if m is not first)]
    with WorkloadProcess(lab, tmp_path.name[:20], order, tmp_path) as load:
        load.expect("ready", timeout=120)
        acked = load.progress.get("acked", 0)
        assert load.wait(lambda p: p["acked"] >= acked + 100, timeout=30), \
            "the workload does not write"
        faults = inflict(load)
        lab.heal_all()
        lab.wait_healthy(timeout=60)
        healed = time.monotonic()
        # Whatever did not come back is what the checks report.
        load.wait(load.served_since(healed), timeout=STALL_BOUND)
        history = load.stop()
    for m in lab.members:  # the lab's directory goes with it
        shutil.copy(m.log_path, tmp_path / f"etcd-{m.name}.log")
    report = analyse(history, fault, faults=faults, slack=SLACK,
                     duration=time.monotonic() - began)
    table(report.row())
    problems = report.problems(stall_bound=stall_bound, recover_within=recover_within,
                               reads_succeed=reads_succeed)
    assert not problems, (f"{report.row()}\n" + "\n".join(problems)
                          + f"\n(history and logs in {tmp_path})")


def a_follower(lab: NetnsCluster) -> EtcdMember:
    leader = lab.leader()
    return next(m for m in lab.members if m is not leader)


def single_fault(lab: NetnsCluster, table: Callable[[str], None], tmp_path: Path, fault: str,
                 first: EtcdMember, victim: Callable[[], EtcdMember],
                 begin: Callable[[EtcdMember], None], end: Callable[[EtcdMember], None], *,
                 reads_succeed: bool, stall_bound: float = STALL_BOUND) -> None:
    """:func:`scenario` with one fault: ``begin`` it on ``victim()`` (chosen once the
    workload runs), held from :data:`MIN_HOLD` to :data:`HOLD_MAX` (see :func:`held`),
    then ``end`` it; every part must recover within :data:`RECOVERY`."""
    def inflict(load: WorkloadProcess) -> list[tuple[float, float]]:
        return [held(lab, victim(), load, begin, end, least=MIN_HOLD, most=HOLD_MAX)]

    scenario(lab, table, tmp_path, fault, first, inflict, recover_within=RECOVERY,
             reads_succeed=reads_succeed, stall_bound=stall_bound)


def test_cut_the_member_the_clients_use(lab: NetnsCluster, table: Callable[[str], None],
                                        tmp_path: Path) -> None:
    """A follower, the first endpoint of the client, its watch and the component, is cut
    off its peers (clients still reach it): everything moves to the majority."""
    first = a_follower(lab)
    single_fault(lab, table, tmp_path, "cut first endpoint (follower)", first,
                 lambda: first, lab.cut, lab.heal, reads_succeed=True)


def test_cut_the_leader(lab: NetnsCluster, table: Callable[[str], None],
                        tmp_path: Path) -> None:
    """The leader, also the clients' first endpoint, is cut off: the majority elects
    another, and everything moves there."""
    # The leader when the fault begins: still the first endpoint, unless an election
    # came between. No reads_succeed: until the majority has elected a leader, nobody
    # can answer one.
    # Cutting the leader makes the majority elect before anything is written: an event
    # may come one election later than after a follower's cut (CI: 6.5 s, once).
    single_fault(lab, table, tmp_path, "cut leader (first endpoint)", lab.leader(),
                 lab.leader, lab.cut, lab.heal, reads_succeed=False,
                 stall_bound=STALL_BOUND + ELECTION)


def test_hang_the_member_the_clients_use(lab: NetnsCluster, table: Callable[[str], None],
                                         tmp_path: Path) -> None:
    """The first endpoint's etcd is stopped with SIGSTOP: it accepts connections and
    answers nothing, not even an error; everything moves to the other members."""
    first = a_follower(lab)
    single_fault(lab, table, tmp_path, "SIGSTOP first endpoint (follower)", first,
                 lambda: first, lab.hang, lab.resume, reads_succeed=True)


def test_cut_and_heal_ten_times(lab: NetnsCluster, table: Callable[[str], None],
                                tmp_path: Path) -> None:
    """The members are cut off and healed in turn, 10 times in a row, the clients' first
    endpoint first (so whichever member a watch or a lease moved to is cut too, and the
    leader now and then). Each cut is held until every part served something begun
    :data:`CYCLE_MIN_HOLD` after it (at most :data:`CYCLE_HOLD_MAX`), each heal until
    the member is healthy and every part served past it: no event lost or repeated,
    no stale read, across all the moves back and forth."""
    first = a_follower(lab)
    turns = [first, *(m for m in lab.members if m is not first)]

    def inflict(load: WorkloadProcess) -> list[tuple[float, float]]:
        faults = []
        for i in range(CYCLES):
            member = turns[i % len(turns)]
            faults.append(held(lab, member, load, lab.cut, lab.heal, least=CYCLE_MIN_HOLD,
                               most=CYCLE_HOLD_MAX))
            lab.wait_healthy([member], timeout=60)
            healed = time.monotonic()
            load.wait(load.served_since(healed), timeout=CYCLE_STALL_BOUND)
        return faults

    scenario(lab, table, tmp_path, f"cut+heal each member in turn x{CYCLES}", first,
             inflict, recover_within=None, reads_succeed=False,
             stall_bound=CYCLE_STALL_BOUND)
