"""What a partition run's history says (pure, no I/O): the checks and the fault table.

The history is what tests/integration/partition_workload.py writes: every
operation with its invocation and completion times and outcome, every event the
client watch and the WAMP subscriber received with the time it arrived, and
etcd's own history of the prefix (every put with its revision), read at the
end over plain HTTP. :func:`analyse` checks:

- **no acknowledged write lost**: every write acknowledged ``ok`` is in etcd's
  history; and no write reported as definitely failed is there either;
- **linearizable reads**: per key, the writes and the reads (plus a final read
  of each key) form a linearizable register history
  (:mod:`linearizability`); ``stale reads`` counts the plainer symptom: a read
  returning a value older (by etcd's revision) than a write acknowledged before
  the read began;
- **every event once, in order, no gap**, for each channel: the events delivered
  against etcd's history: missing, duplicated, out of revision order, or unknown
  to etcd (wrong value or revision);
- **stalls**: how long after its write was acknowledged each event arrived; the
  longest is the channel's longest stall; and, per fault, how long until each part
  (the test client's reads and writes, the watch, the WAMP events, the WAMP gets and
  puts) served well again: until its last failed or slow call, or late event, of the
  fault ended (the part's time to detect the fault and route around it);
- **no call outlives its timeout**: a call that took longer than its timeout
  plus ``slack``, or never ended, is an overrun;
- **reads fail over**: a read (test client or WAMP ``kv.get``) under way during a
  fault (but not begun in its last :data:`LATE` seconds) that failed is listed: with
  one member out a majority remains, so a read that moves on succeeds.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from linearizability import Op, check_register

__all__ = ["PARTS", "TABLE_HEADER", "ChannelReport", "FaultReport", "analyse"]

#: the columns of :meth:`FaultReport.row` (a reStructuredText/Markdown-friendly table)
TABLE_HEADER = ("| fault | held | back after (s): client reads / writes, watch, WAMP events, "
                "WAMP gets / puts "
                "| watch delivered/missing/dup | WAMP delivered/missing/dup "
                "| failed reads | stale reads | non-linearizable keys | acked writes lost "
                "| longest stall watch / WAMP | overruns | run |")
#: the parts whose recovery :class:`FaultReport` measures, in the table's order
PARTS = ("client reads", "client writes", "watch", "WAMP events", "WAMP gets", "WAMP puts")
#: a call slower than this (or failed), or an event later than this after its write's
#: acknowledgement, is a part not serving (seconds; healthy ones take milliseconds)
LATE = 1.0


def _some(found: Sequence[object], what: str, *, shown: int = 5) -> list[str]:
    """One problem line, ``"<count> <what>: <the first shown>"``, if anything was
    found; none otherwise."""
    return [f"{len(found)} {what}: {list(found[:shown])}"] if found else []


@dataclass
class ChannelReport:
    """How one channel (the client watch, the WAMP subscriber) delivered etcd's history."""

    delivered: int = 0
    missing: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    #: revisions that arrived after a higher one
    out_of_order: list[int] = field(default_factory=list)
    #: events etcd's history does not hold (another value at that revision, or none)
    unknown: list[str] = field(default_factory=list)
    #: the longest time from a write's acknowledgement to its event's arrival (s)
    longest_stall: float = 0.0
    #: the write whose event took that long (its value), and when it was acknowledged
    stalled_value: str | None = None
    stalled_since: float | None = None

    def problems(self, name: str) -> list[str]:
        return [f"{name}: {line}" for line in (
            *_some(self.missing, "events missing, e.g. revisions"),
            *_some(self.duplicated, "events delivered more than once, e.g. revisions"),
            *_some(self.out_of_order, "events out of revision order, e.g. revisions"),
            *_some(self.unknown, "events etcd never had", shown=3))]


@dataclass
class FaultReport:
    """Everything :func:`analyse` found in one run."""

    fault: str
    duration: float
    #: how long each fault was held (s)
    held: list[float]
    #: per part (:data:`PARTS`): the longest time, over the faults, from a fault's start
    #: until the part served well again (None: not while some fault lasted); see
    #: :func:`_back_after`
    back_after: dict[str, float | None]
    ops: dict[str, int]
    acked_lost: list[str]
    failed_applied: list[str]
    stale_reads: list[str]
    non_linearizable: dict[str, str]
    overruns: list[str]
    #: reads of the test client and WAMP gets begun during a fault that failed
    failed_reads: list[str]
    watch: ChannelReport
    wamp: ChannelReport
    resyncs: int
    watch_end: str | None

    def row(self) -> str:
        """One row of the fault table (columns: :data:`TABLE_HEADER`)."""
        def counts(c: ChannelReport) -> str:
            return f"{c.delivered}/{len(c.missing)}/{len(c.duplicated)}"

        def seconds(t: float | None) -> str:
            return "—" if t is None else f"{t:.1f}"

        held = f"{len(self.held)} x {max(self.held, default=0):.0f} s"
        if len(self.held) == 1:
            held = f"{self.held[0]:.1f} s"
        back = (" / ".join(seconds(self.back_after[p]) for p in PARTS[:2]) + ", "
                + ", ".join(seconds(self.back_after[p]) for p in PARTS[2:4]) + ", "
                + " / ".join(seconds(self.back_after[p]) for p in PARTS[4:]))
        return (f"| {self.fault} | {held} | {back} | {counts(self.watch)} | {counts(self.wamp)} "
                f"| {len(self.failed_reads)} | {len(self.stale_reads)} "
                f"| {len(self.non_linearizable)} "
                f"| {len(self.acked_lost)} "
                f"| {self.watch.longest_stall:.1f} s / {self.wamp.longest_stall:.1f} s "
                f"| {len(self.overruns)} | {self.duration:.0f} s |")

    def problems(self, *, stall_bound: float,
                 recover_within: Mapping[str, float] | None = None,
                 reads_succeed: bool = False) -> list[str]:
        """Every broken guarantee, one line each (empty: the run kept them all). With
        ``recover_within`` (seconds by part, :data:`PARTS`), each part must also have
        served well again within its time of each fault's start, while the fault lasted;
        with ``reads_succeed``, every read begun during a fault must have succeeded (a
        read moves to another member: it fails only if no member can answer)."""
        out = _some(self.failed_reads, "reads failed during a fault", shown=3) \
            if reads_succeed else []
        for part, bound in (recover_within or {}).items():
            back = self.back_after[part]
            if back is None or back > bound:
                out.append(f"{part}: not serving well again within {bound} s of a fault's "
                           "start (" + ("not while it lasted" if back is None
                                        else f"after {back:.1f} s") + ")")
        out += _some(self.acked_lost, "acknowledged writes lost")
        out += _some(self.failed_applied, "writes reported as failed were applied")
        out += _some(self.stale_reads, "stale reads", shown=3)
        out += [f"{key}: {report}" for key, report in self.non_linearizable.items()]
        out += _some(self.overruns, "calls outlived their timeout")
        for name, channel in (("watch", self.watch), ("WAMP", self.wamp)):
            out += channel.problems(name)
            if channel.longest_stall > stall_bound:
                out.append(f"{name}: an event arrived {channel.longest_stall:.1f} s after its "
                           f"write was acknowledged (value {channel.stalled_value!r}), more "
                           f"than the bound of {stall_bound} s")
        if self.resyncs:
            out.append(f"the subscriber was told to resync {self.resyncs} times")
        if self.watch_end is not None:
            out.append(f"the watch ended: {self.watch_end}")
        return out


def _group(actor: str) -> str:
    """``test`` (the test client's actors), ``steady``, ``wamp`` (calls through the
    component) or ``final``."""
    return actor.split("-", 1)[0]


def _channel(events: list[dict[str, Any]], etcd: dict[int, tuple[str, str]],
             acked: dict[str, float]) -> ChannelReport:
    report = ChannelReport()
    first_arrival: dict[int, float] = {}
    highest = 0
    for e in events:
        revision = e["revision"]
        if etcd.get(revision) != (e["key"], e["value"]):
            report.unknown.append(f"{e['key']}={e['value']!r}@{revision}")
            continue
        if revision in first_arrival:
            report.duplicated.append(revision)
            continue
        first_arrival[revision] = e["t"]
        if revision < highest:
            report.out_of_order.append(revision)
        highest = max(highest, revision)
    report.delivered = len(first_arrival)
    report.missing = sorted(set(etcd) - set(first_arrival))
    for revision, arrived in first_arrival.items():
        value = etcd[revision][1]
        if value in acked and arrived - acked[value] > report.longest_stall:
            report.longest_stall = arrived - acked[value]
            report.stalled_value = value
            report.stalled_since = acked[value]
    return report


def _back_after(experiences: list[tuple[float, float | None, bool]],
                faults: Sequence[tuple[float, float]], *, under_way: bool) -> float | None:
    """The longest time, over the faults, from a fault's start until the part's last
    bad experience of it ended; None if one outlasted the fault.

    ``experiences`` are (began, ended, good): a call from its invocation to its
    completion (None: never), good if it succeeded within :data:`LATE`; an event
    from its write's acknowledgement to its arrival (None: never), good if it took
    at most :data:`LATE`. Those of a fault are the ones that began while it lasted,
    and with ``under_way`` also those begun before that ended after it began (an
    event or a read can always be had again from elsewhere; a write already sent
    cannot);
    but not those begun in its last :data:`LATE` seconds: they may meet the heal's
    own disturbance (a member rejoining with a higher term makes etcd 3.4 elect again).
    """
    worst = 0.0
    for start, end in faults:
        last_bad = start
        for began, ended, good in experiences:
            if good or began > end - LATE or (ended is not None and ended < start):
                continue
            if began < start and not under_way:
                continue
            if ended is None or ended > end:
                return None
            last_bad = max(last_bad, ended)
        worst = max(worst, last_bad - start)
    return worst


def analyse(history: dict[str, Any], fault: str, *,
            faults: Sequence[tuple[float, float]] = (), slack: float = 1.0,
            duration: float = 0.0) -> FaultReport:
    """Check one run's ``history`` (see the module docstring). ``faults`` are the
    (start, end) times of the faults held (``time.monotonic``); ``slack`` is how far
    past its timeout a call may end before it counts as an overrun."""
    ops: list[dict[str, Any]] = history["ops"]
    etcd = {e["revision"]: (e["key"], e["value"]) for e in history["etcd"]}
    written = {(key, value): revision for revision, (key, value) in etcd.items()}
    acked = {op["value"]: op["complete"] for op in ops
             if op["kind"] == "write" and op["outcome"] == "ok"}
    counts: dict[str, int] = defaultdict(int)
    for op in ops:
        counts[f"{op['kind']} {op['outcome']}"] += 1

    acked_lost = [f"{op['key']}={op['value']!r}" for op in ops
                  if op["kind"] == "write" and op["outcome"] == "ok"
                  and (op["key"], op["value"]) not in written]
    failed_applied = [f"{op['key']}={op['value']!r} ({op['error']})" for op in ops
                      if op["kind"] == "write" and op["outcome"] == "failed"
                      and (op["key"], op["value"]) in written]

    overruns = []
    for op in ops:
        limit = history["wamp_timeout" if _group(op["actor"]) == "wamp" else "timeout"] + slack
        took = None if op["complete"] is None else op["complete"] - op["invoke"]
        if took is None or took > limit:
            overruns.append(f"{op['actor']} {op['kind']} {op['key']}: "
                            + ("never ended" if took is None else f"{took:.1f} s")
                            + (f" ({op['error']})" if op["error"] else ""))

    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op["kind"] == "write" and op["outcome"] in ("ok", "indefinite", "pending"):
            complete = op["complete"] if op["outcome"] == "ok" else None
            by_key[op["key"]].append(Op(op["id"], "write", op["value"], op["invoke"], complete))
        elif op["kind"] == "read" and op["outcome"] == "ok":
            by_key[op["key"]].append(Op(op["id"], "read", op["value"], op["invoke"],
                                        op["complete"]))
    next_id = len(ops)
    for key, final in history["finals"].items():
        by_key[key].append(Op(next_id, "read", final["value"], final["invoke"],
                              final["complete"]))
        next_id += 1
    non_linearizable = {}
    for key, key_ops in sorted(by_key.items()):
        verdict = check_register(key_ops)
        if not verdict.ok:
            non_linearizable[key] = verdict.report()

    # Per key: acknowledgement times in order, and the newest revision acknowledged
    # by then (a running maximum), to look up what a read must at least see.
    acks: dict[str, list[float]] = defaultdict(list)
    newest: dict[str, list[int]] = defaultdict(list)
    for op in sorted((op for op in ops if op["kind"] == "write" and op["outcome"] == "ok"),
                     key=lambda op: op["complete"]):
        revision = written.get((op["key"], op["value"]), 0)
        so_far = newest[op["key"]]
        acks[op["key"]].append(op["complete"])
        so_far.append(max(revision, so_far[-1]) if so_far else revision)
    stale_reads = []
    for op in ops:
        if op["kind"] != "read" or op["outcome"] != "ok":
            continue
        seen = 0 if op["value"] is None else written.get((op["key"], op["value"]))
        if seen is None:
            continue  # a value etcd never had: the linearizability check reports it
        before = bisect.bisect_left(acks[op["key"]], op["invoke"])
        floor = newest[op["key"]][before - 1] if before else 0
        if seen < floor:
            stale_reads.append(f"{op['actor']} read {op['key']}={op['value']!r} (revision "
                               f"{seen}) after revision {floor} was acknowledged")

    def calls(group: str, kind: str) -> list[tuple[float, float | None, bool]]:
        return [(op["invoke"], op["complete"],
                 op["outcome"] == "ok" and op["complete"] - op["invoke"] <= LATE)
                for op in ops if _group(op["actor"]) == group and op["kind"] == kind]

    def events(channel: str) -> list[tuple[float, float | None, bool]]:
        arrived: dict[int, float] = {}
        for e in history[channel]:
            arrived.setdefault(e["revision"], e["t"])
        out = []
        for revision, (_, value) in etcd.items():
            if value in acked:
                t = arrived.get(revision)
                out.append((acked[value], t, t is not None and t - acked[value] <= LATE))
        return out

    back_after = {
        "client reads": _back_after(calls("test", "read"), faults, under_way=True),
        "client writes": _back_after(calls("test", "write"), faults, under_way=False),
        "watch": _back_after(events("watch"), faults, under_way=True),
        "WAMP events": _back_after(events("wamp"), faults, under_way=True),
        "WAMP gets": _back_after(calls("wamp", "read"), faults, under_way=True),
        "WAMP puts": _back_after(calls("wamp", "write"), faults, under_way=False)}
    def during_a_fault(op: dict[str, Any]) -> bool:
        ended = math.inf if op["complete"] is None else op["complete"]
        return any(op["invoke"] <= end - LATE and ended >= start for start, end in faults)

    failed_reads = [f"{op['actor']} {op['key']}: {op['error'] or 'never answered'}"
                    for op in ops
                    if op["kind"] == "read" and _group(op["actor"]) in ("test", "wamp")
                    and op["outcome"] != "ok" and during_a_fault(op)]
    return FaultReport(
        fault=fault, duration=duration, held=[end - start for start, end in faults],
        back_after=back_after, ops=dict(counts), acked_lost=acked_lost,
        failed_applied=failed_applied, stale_reads=stale_reads,
        non_linearizable=non_linearizable, overruns=overruns, failed_reads=failed_reads,
        watch=_channel(history["watch"], etcd, acked),
        wamp=_channel(history["wamp"], etcd, acked),
        resyncs=len(history["resyncs"]), watch_end=history["watch_end"])
