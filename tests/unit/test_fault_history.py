"""The checks of tests/integration/fault_history.py on hand-made partition histories."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from fault_history import TABLE_HEADER, analyse


class Run:
    """A history as partition_workload.py writes it, built step by step."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []
        self.etcd: list[dict[str, Any]] = []
        self.watch: list[dict[str, Any]] = []
        self.wamp: list[dict[str, Any]] = []
        self.finals: dict[str, Any] = {}

    def op(self, actor: str, kind: str, key: str, value: str | None, invoke: float,
           complete: float | None, outcome: str = "ok", error: str | None = None) -> None:
        self.ops.append({"id": len(self.ops), "actor": actor, "kind": kind, "key": key,
                         "value": value, "invoke": invoke, "complete": complete,
                         "outcome": outcome, "error": error})

    def applied(self, key: str, value: str, revision: int, *, delivered: float | None = None
                ) -> None:
        """etcd applied ``key=value`` at ``revision``; both channels got it at ``delivered``."""
        self.etcd.append({"key": key, "value": value, "revision": revision, "type": "PUT"})
        if delivered is not None:
            for channel in (self.watch, self.wamp):
                channel.append({"key": key, "value": value, "revision": revision,
                                "t": delivered})

    def history(self) -> dict[str, Any]:
        return {"timeout": 5.0, "wamp_timeout": 5.0, "ops": self.ops, "etcd": self.etcd,
                "watch": self.watch, "wamp": self.wamp, "finals": self.finals,
                "resyncs": [], "watch_end": None}


def healthy() -> Run:
    """Two writes to k, each read back and delivered promptly."""
    run = Run()
    run.op("test-w0", "write", "k", "a", 0.0, 0.1)
    run.applied("k", "a", 5, delivered=0.15)
    run.op("test-r", "read", "k", "a", 0.2, 0.3)
    run.op("steady-w", "write", "k", "b", 1.0, 1.1)
    run.applied("k", "b", 7, delivered=1.2)
    run.op("wamp-r", "read", "k", "b", 1.3, 1.4)
    run.finals["k"] = {"value": "b", "invoke": 2.0, "complete": 2.1}
    return run


def test_a_healthy_run_keeps_every_guarantee() -> None:
    report = analyse(healthy().history(), "none")
    assert report.problems(stall_bound=1.0) == []
    assert report.watch.delivered == report.wamp.delivered == 2
    assert abs(report.watch.longest_stall - 0.1) < 1e-9
    row = report.row()
    assert row.startswith("| none |")
    assert row.count("|") == TABLE_HEADER.count("|")


def test_an_acknowledged_write_missing_from_etcd_is_lost() -> None:
    run = healthy()
    run.op("test-w1", "write", "k", "c", 1.5, 1.6)
    problems = analyse(run.history(), "x").problems(stall_bound=10)
    assert any("1 acknowledged writes lost" in p and "k='c'" in p for p in problems)


def test_a_write_reported_failed_but_applied_is_caught() -> None:
    """A definite failure whose value etcd holds: the client lied (e.g. a timed-out
    commit reported as Unavailable); an indefinite one is fine either way."""
    run = healthy()
    run.op("wamp-w", "write", "k", "d", 3.0, 4.0, "failed", "unavailable")
    run.applied("k", "d", 9, delivered=4.1)
    run.op("test-w1", "write", "k", "e", 3.0, 4.0, "indefinite", "RequestTimeout")
    run.applied("k", "e", 10, delivered=4.2)
    run.finals["k"] = {"value": "e", "invoke": 5.0, "complete": 5.1}
    problems = analyse(run.history(), "x").problems(stall_bound=10)
    assert len(problems) == 1, problems
    assert "1 writes reported as failed were applied" in problems[0]
    assert "k='d' (unavailable)" in problems[0]


def test_a_read_older_than_an_acknowledged_write_is_stale_and_not_linearizable() -> None:
    run = healthy()
    run.op("test-r", "read", "k", "a", 1.5, 1.6)  # b was acknowledged at 1.1
    report = analyse(run.history(), "x")
    assert len(report.stale_reads) == 1
    assert "revision 5" in report.stale_reads[0] and "revision 7" in report.stale_reads[0]
    assert list(report.non_linearizable) == ["k"]
    assert "#4 read 'a'" in report.non_linearizable["k"]


def test_a_read_concurrent_with_the_newer_write_is_not_stale() -> None:
    run = healthy()
    run.op("test-r", "read", "k", "a", 1.05, 1.5)  # began before b was acknowledged
    report = analyse(run.history(), "x")
    assert report.stale_reads == [] and report.non_linearizable == {}


def test_missing_repeated_reordered_and_unknown_events_are_told_apart() -> None:
    run = healthy()
    run.op("test-w0", "write", "k", "c", 2.0, 2.1)
    run.applied("k", "c", 8)  # delivered by neither channel
    run.op("test-w0", "write", "k", "d", 2.2, 2.3)
    run.applied("k", "d", 11)
    run.finals["k"] = {"value": "d", "invoke": 3.0, "complete": 3.1}
    run.watch += [{"key": "k", "value": "d", "revision": 11, "t": 2.4},
                  {"key": "k", "value": "b", "revision": 7, "t": 2.5},     # again, late
                  {"key": "k", "value": "zz", "revision": 12, "t": 2.6}]   # never in etcd
    run.wamp += [{"key": "k", "value": "d", "revision": 11, "t": 2.4},
                 {"key": "k", "value": "c", "revision": 8, "t": 2.5}]      # after 11
    report = analyse(run.history(), "x")
    assert report.watch.missing == [8]
    assert report.watch.duplicated == [7]
    assert report.watch.unknown == ["k='zz'@12"]
    assert report.wamp.missing == [] and report.wamp.out_of_order == [8]
    assert report.wamp.delivered == 4
    problems = "\n".join(report.problems(stall_bound=10))
    assert "watch: 1 events missing" in problems
    assert "watch: 1 events delivered more than once" in problems
    assert "WAMP: 1 events out of revision order" in problems


def test_the_longest_stall_is_measured_from_the_acknowledgement() -> None:
    run = healthy()
    run.op("steady-w", "write", "k", "c", 2.0, 2.1)
    run.applied("k", "c", 9, delivered=14.1)
    run.finals["k"] = {"value": "c", "invoke": 15.0, "complete": 15.1}
    report = analyse(run.history(), "x")
    assert abs(report.watch.longest_stall - 12.0) < 1e-9
    assert report.watch.stalled_value == "c"
    problems = report.problems(stall_bound=10)
    assert any("watch: an event arrived 12.0 s after" in p for p in problems)
    assert report.problems(stall_bound=12.5) == []


def test_a_call_that_outlives_its_timeout_or_never_ends_is_an_overrun() -> None:
    run = healthy()
    run.op("test-r", "read", "k", None, 3.0, 9.5, "indefinite", "RequestTimeout")
    run.op("test-w1", "write", "k", "x", 3.0, None, "pending")
    run.op("wamp-r", "read", "k", None, 3.0, 8.9, "failed", "unavailable")  # 5.9 s: inside slack
    report = analyse(run.history(), "x", slack=1.0)
    assert len(report.overruns) == 2
    assert "test-r read k: 6.5 s (RequestTimeout)" in report.overruns[0]
    assert "never ended" in report.overruns[1]


def test_recovery_is_timed_from_each_faults_start_to_its_last_bad_experience() -> None:
    """A fault from 10 to 20. Client reads: one begun at 12 answered only at 13.8 (moved
    to another member), then fast: back after 3.8 s. Client writes: one sent at 9 timed
    out at 14 (already sent: not counted), one sent at 11 at 16: back after 6 s.
    The channels: the event of a write acknowledged at 12 arrived at 16: 6 s. WAMP gets:
    one begun at 16 failed only at 21, after the fault: not back while it lasted. WAMP
    puts: nothing went wrong. A read begun in the fault's last second and failed after
    it is the heal's business, not counted."""
    run = healthy()
    run.op("test-w0", "write", "k", "c", 9.0, 14.0, "indefinite", "RequestTimeout")
    run.op("test-w1", "write", "k", "x", 11.0, 16.0, "indefinite", "RequestTimeout")
    run.op("steady-w", "write", "k", "d", 11.9, 12.0)
    run.applied("k", "d", 9, delivered=16.0)
    run.op("test-r", "read", "k", "d", 12.0, 13.8)
    run.op("test-r", "read", "k", "d", 14.5, 14.6)
    run.op("test-r", "read", "k", None, 19.5, 20.5, "failed", "NoLeader")
    run.op("wamp-r", "read", "k", None, 16.0, 21.0, "failed", "unavailable")
    run.op("wamp-w", "write", "k", "e", 17.0, 17.1)
    run.applied("k", "e", 10, delivered=17.2)
    run.finals["k"] = {"value": "e", "invoke": 22.0, "complete": 22.1}
    report = analyse(run.history(), "x", faults=[(10.0, 20.0)])
    assert report.back_after == pytest.approx({
        "client reads": 3.8, "client writes": 6.0, "watch": 6.0, "WAMP events": 6.0,
        "WAMP gets": None, "WAMP puts": 0.0})
    assert report.failed_reads == ["wamp-r k: unavailable"]
    problems = report.problems(stall_bound=10, reads_succeed=True, recover_within={
        "client writes": 5.0, "watch": 7.0, "WAMP gets": 5.0})
    assert problems == [
        "1 reads failed during a fault: ['wamp-r k: unavailable']",
        "client writes: not serving well again within 5.0 s of a fault's start (after 6.0 s)",
        "WAMP gets: not serving well again within 5.0 s of a fault's start "
        "(not while it lasted)"]
    assert "| 10.0 s | 3.8 / 6.0, 6.0, 6.0, — / 0.0 |" in report.row()


def test_a_part_that_never_met_the_fault_is_back_at_once() -> None:
    """Nothing bad happened to a part during a fault (its member was not the faulted
    one): back after 0 s. Several faults: the worst counts."""
    run = healthy()
    run.op("test-w0", "write", "k", "c", 31.0, 33.5, "indefinite", "RequestTimeout")
    run.finals["k"] = {"value": "b", "invoke": 40.0, "complete": 40.1}
    report = analyse(run.history(), "x", faults=[(10.0, 20.0), (30.0, 35.0)])
    assert report.back_after == {"client reads": 0.0, "client writes": 3.5, "watch": 0.0,
                                 "WAMP events": 0.0, "WAMP gets": 0.0, "WAMP puts": 0.0}
    assert report.failed_reads == []


def test_a_read_under_way_when_the_fault_began_must_move_on() -> None:
    """A read sent at 9.5 to the member cut at 10 timed out at 14.5 instead of moving to
    another member (issue 20: no failover on a timeout): a failed read, and client reads
    are back only after it (4.5 s). A write under way is not held against the client."""
    run = healthy()
    run.op("test-r", "read", "k", None, 9.5, 14.5, "indefinite", "RequestTimeout")
    run.op("test-w0", "write", "k", "c", 9.5, 14.5, "indefinite", "RequestTimeout")
    run.finals["k"] = {"value": "b", "invoke": 40.0, "complete": 40.1}
    report = analyse(run.history(), "x", faults=[(10.0, 20.0)])
    assert report.failed_reads == ["test-r k: RequestTimeout"]
    assert report.back_after["client reads"] == 4.5
    assert report.back_after["client writes"] == 0.0
