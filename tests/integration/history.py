"""A serializability checker for histories of pmap transactions (pure, no I/O).

The idea is Adya's dependency graph as Jepsen's Elle builds it for its
rw-register workload: every committed transaction is a node; an edge ``A → B``
says A must come before B in any serial order that explains what each
transaction read. If the graph has a cycle, no serial order exists. Edges:

``ww``  B installed the next version of a key A wrote;
``wr``  B read (directly, or through a predicate) a version A wrote;
``rw``  A read a version and B installed a later one that changes what A's
        read returned (an anti-dependency). For a predicate read only a version
        that changes the read's answer counts: for ``count``/``keys`` a key
        appearing or disappearing, for ``lookup`` a record entering or leaving
        the group, for ``select`` any change of a key in the range (it returns
        values); ``get`` sees any change of its key.

The model is one table of records ``key → Value(uid, group)``. Every written
value has a ``uid`` never written before, so a value names the version (and
the transaction) that wrote it. Versions of one key are ordered by the etcd
revision at which their transaction committed: etcd applies each txn
atomically at one revision, so that is the version order (this checker
tests the isolation pmap builds on top of etcd, not etcd's own ordering).
Deleting an absent key installs no version (etcd records nothing).

Which version a read saw: values it returned name them; what a ``count`` or a
``keys``/``lookup`` read saw of a key is the key's version at the
transaction's snapshot revision, and :func:`check` verifies every answer
against that snapshot (a mismatch is reported as an anomaly of its own). A
key that did not match at the snapshot and does not match just before the
transaction's commit is taken to have been seen in its latest non-matching
version before the commit: absence is not a version one can tell apart, and
a key inserted and deleted again while the transaction ran changed nothing
it read. ("Just before the commit" is the state etcd evaluated the commit's
compares against: the revision before the commit's, or, for a commit that
changed nothing, the revision etcd reported, which was current then.) Write
transactions in these workloads read before they write, so their reads never
see their own writes.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["INIT", "Edge", "History", "Read", "Txn", "Value", "Verdict", "check"]

INIT = 0  # the node that wrote the initial state


@dataclass(frozen=True, order=True)
class Value:
    uid: str
    group: str


ReadKind = Literal["get", "select", "keys", "count", "lookup"]


@dataclass(frozen=True)
class Read:
    """One read and its answer.

    ``get``: ``key``, answer ``Value | None``. ``select``: ``lo``/``hi`` (``hi``
    exclusive, None for open), ``limit`` (0: none), answer a tuple of
    ``(key, Value)`` in key order. ``keys``: same range, answer a tuple of keys.
    ``count``: same range, answer an int. ``lookup``: ``group``, answer a
    frozenset of keys.
    """

    kind: ReadKind
    answer: object
    key: str | None = None
    lo: str | None = None
    hi: str | None = None
    limit: int = 0
    group: str | None = None

    def describe(self) -> str:
        if self.kind == "get":
            return f"get({self.key}) = {_short(self.answer)}"
        if self.kind == "lookup":
            return f"lookup({self.group}) = {sorted(self.answer)}"  # type: ignore[call-overload]
        rng = f"[{self.lo or ''}..{self.hi or ''})"
        lim = f" limit {self.limit}" if self.limit else ""
        if self.kind == "select":
            pairs = ", ".join(f"{k}={v.uid}" for k, v in self.answer)  # type: ignore[attr-defined]
            return f"select{rng}{lim} = {{{pairs}}}"
        if self.kind == "keys":
            return f"keys{rng}{lim} = {list(self.answer)}"  # type: ignore[call-overload]
        return f"count{rng} = {self.answer}"


@dataclass
class Txn:
    """A committed transaction: reads at ``snapshot``; writes (final value per
    key, None for a delete) installed at ``commit`` (``== snapshot`` when it
    wrote nothing). When every write was a delete of an absent key, etcd made no
    change and ``commit`` is the revision current when etcd applied it, made by
    another transaction: ``changed`` says which case it is, as etcd answered
    (several transactions may then share one commit revision)."""

    id: int
    client: int
    snapshot: int
    commit: int
    reads: list[Read] = field(default_factory=list)
    writes: dict[str, Value | None] = field(default_factory=dict)
    #: whether etcd changed anything for it (``MapTransaction.changed``); None:
    #: work it out from the other writes (a delete of an absent key changes nothing)
    changed: bool | None = None

    def describe(self) -> str:
        parts = [r.describe() for r in self.reads]
        parts += [f"{'del ' + k if v is None else f'put {k}={v.uid}/{v.group}'}"
                  for k, v in sorted(self.writes.items())]
        return (f"T{self.id} (client {self.client}, snapshot {self.snapshot}, "
                f"commit {self.commit}): " + "; ".join(parts))


@dataclass(frozen=True)
class History:
    initial: dict[str, Value]
    txns: Sequence[Txn]


@dataclass(frozen=True)
class Edge:
    src: int
    dst: int
    kind: Literal["ww", "wr", "rw"]
    why: str


@dataclass
class Verdict:
    txns: int
    edges: int
    anomalies: list[str]
    cycle: list[Edge] | None

    @property
    def ok(self) -> bool:
        return not self.anomalies and self.cycle is None

    def report(self, history: History) -> str:
        lines = [f"{self.txns} committed transactions, {self.edges} dependency edges"]
        lines += [f"anomaly: {a}" for a in self.anomalies]
        if self.cycle:
            by_id = {t.id: t for t in history.txns}
            lines.append(f"smallest cycle ({len(self.cycle)} edges):")
            for e in self.cycle:
                lines.append(f"  T{e.src} -{e.kind}-> T{e.dst}   ({e.why})")
            lines.append("transactions in the cycle:")
            for e in self.cycle:
                lines.append(f"  {by_id[e.src].describe()}")
        elif not self.anomalies:
            lines.append("no cycle: serializable")
        return "\n".join(lines)


def _short(v: object) -> str:
    return "absent" if v is None else f"{v.uid}/{v.group}" if isinstance(v, Value) else repr(v)


@dataclass(frozen=True)
class _Version:
    revision: int
    writer: int
    value: Value | None


class _Versions:
    """Every key's versions in commit order, and which transactions installed any."""

    def __init__(self, history: History) -> None:
        self.chains: dict[str, list[_Version]] = {}
        self.installed: set[int] = set()
        keys = set(history.initial)
        for t in history.txns:
            keys.update(t.writes)
            keys.update(r.key for r in t.reads if r.key is not None)
        for k in keys:
            self.chains[k] = [_Version(0, INIT, history.initial.get(k))]
        # Commit order; a commit that changed nothing shares its revision with
        # the one that made it, and installs no version.
        for t in sorted((t for t in history.txns if t.writes and t.changed is not False),
                        key=lambda t: t.commit):
            for k, v in t.writes.items():
                chain = self.chains[k]
                if v is None and chain[-1].value is None:
                    continue  # deleting an absent key leaves no trace in etcd
                chain.append(_Version(t.commit, t.id, v))
                self.installed.add(t.id)

    def index_at(self, key: str, revision: int) -> int:
        """Index of the version visible at ``revision`` (inclusive)."""
        chain = self.chains.get(key)
        if chain is None:
            return -1
        i = 0
        while i + 1 < len(chain) and chain[i + 1].revision <= revision:
            i += 1
        return i


def _in_range(key: str, lo: str | None, hi: str | None) -> bool:
    return (lo is None or key >= lo) and (hi is None or key < hi)


def _expected(read: Read, state: dict[str, Value]) -> object:
    """What ``read`` should answer over ``state`` (the snapshot)."""
    if read.kind == "get":
        assert read.key is not None
        return state.get(read.key)
    if read.kind == "lookup":
        return frozenset(k for k, v in state.items() if v.group == read.group)
    keys = sorted(k for k in state if _in_range(k, read.lo, read.hi))
    if read.kind == "count":
        return len(keys)
    if read.limit:
        keys = keys[:read.limit]
    if read.kind == "keys":
        return tuple(keys)
    return tuple((k, state[k]) for k in keys)


def _scope(read: Read, universe: Iterable[str]) -> tuple[list[str], bool]:
    """The keys a read depends on, and whether it sees their values (else only
    whether each matches)."""
    if read.kind == "get":
        assert read.key is not None
        return [read.key], True
    if read.kind == "lookup":
        return sorted(universe), False
    hi = read.hi
    if read.limit and isinstance(read.answer, tuple) and len(read.answer) == read.limit:
        # A full page depends on the keys up to the last one returned only.
        last = read.answer[-1]
        last_key = last[0] if isinstance(last, tuple) else last
        hi = last_key + "\x00"
    keys = [k for k in sorted(universe) if _in_range(k, read.lo, hi)]
    return keys, read.kind == "select"


def _matches(read: Read, value: Value | None) -> bool:
    if value is None:
        return False
    if read.kind == "lookup":
        return value.group == read.group
    return True


def check(history: History) -> Verdict:
    """Build the dependency graph of ``history`` and look for its smallest cycle."""
    versions = _Versions(history)
    universe = list(versions.chains)
    txns = {t.id: t for t in history.txns}
    edges: dict[tuple[int, int], Edge] = {}
    anomalies: list[str] = []

    def add(src: int, dst: int, kind: Literal["ww", "wr", "rw"], why: str) -> None:
        if src != dst and (src, dst) not in edges:
            edges[(src, dst)] = Edge(src, dst, kind, why)

    for key, chain in versions.chains.items():
        for a, b in itertools.pairwise(chain):
            add(a.writer, b.writer, "ww", f"{key}: {_short(a.value)} then {_short(b.value)}")

    def state_at(revision: int) -> dict[str, Value]:
        out = {}
        for k, chain in versions.chains.items():
            v = chain[versions.index_at(k, revision)].value
            if v is not None:
                out[k] = v
        return out

    snapshots: dict[int, dict[str, Value]] = {}
    for t in history.txns:
        if not t.reads:
            continue
        state = snapshots.setdefault(t.snapshot, state_at(t.snapshot))
        for read in t.reads:
            want = _expected(read, state)
            if want != read.answer:
                anomalies.append(f"T{t.id}: {read.describe()}, but the snapshot at "
                                 f"revision {t.snapshot} holds {want!r}")
                continue
            keys, sees_values = _scope(read, universe)
            # The state etcd checked t's compares against: the one before its
            # commit revision; but a txn that changed nothing (its writes all
            # deletes of absent keys) creates no revision, and etcd reports the
            # one current when it ran, so its compares saw that state itself.
            changed = t.id in versions.installed if t.changed is None else t.changed
            checked_at = t.commit - 1 if changed else t.commit
            for key in keys:
                chain = versions.chains[key]
                seen = versions.index_at(key, t.snapshot)
                if not _matches(read, chain[seen].value) and checked_at > t.snapshot:
                    before_commit = versions.index_at(key, checked_at)
                    if not _matches(read, chain[before_commit].value):
                        seen = before_commit
                    # else: a key that started matching while t ran: the version
                    # at the snapshot is the one t saw (and the change is an rw).
                add(chain[seen].writer, t.id, "wr",
                    f"{read.describe()} saw {key}={_short(chain[seen].value)}")
                was = _matches(read, chain[seen].value)
                for later in chain[seen + 1:]:
                    if sees_values or _matches(read, later.value) != was:
                        add(t.id, later.writer, "rw",
                            f"{read.describe()} saw {key}={_short(chain[seen].value)}, "
                            f"T{later.writer} made it {_short(later.value)}")
                        break
    for e in list(edges.values()):
        if e.src != INIT and e.src not in txns:
            anomalies.append(f"edge from unknown transaction T{e.src}")
    cycle = _smallest_cycle(edges.values())
    return Verdict(len(history.txns), len(edges), anomalies, cycle)


def _smallest_cycle(edges: Iterable[Edge]) -> list[Edge] | None:
    out: dict[int, list[Edge]] = {}
    for e in edges:
        out.setdefault(e.src, []).append(e)
    best: list[Edge] | None = None
    for scc in _sccs(out):
        if len(scc) < 2:
            continue
        for start in sorted(scc):
            path = _shortest_back(out, start, scc)
            if path is not None and (best is None or len(path) < len(best)):
                best = path
    return best


def _shortest_back(out: dict[int, list[Edge]], start: int, scc: set[int]) -> list[Edge] | None:
    """Breadth-first: the shortest path from ``start`` back to itself within ``scc``."""
    parent: dict[int, Edge] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for e in sorted(out.get(node, []), key=lambda e: e.dst):
            if e.dst not in scc:
                continue
            if e.dst == start:
                path = [e]
                while path[0].src != start:
                    path.insert(0, parent[path[0].src])
                return path
            if e.dst not in seen:
                seen.add(e.dst)
                parent[e.dst] = e
                queue.append(e.dst)
    return None


def _sccs(out: dict[int, list[Edge]]) -> list[set[int]]:
    """Tarjan's strongly connected components, iteratively (histories are deep)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    result: list[set[int]] = []
    counter = 0
    nodes = set(out) | {e.dst for es in out.values() for e in es}
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = out.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i].dst
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == node:
                        break
                result.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result
