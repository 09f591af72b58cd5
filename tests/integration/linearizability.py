"""A linearizability checker for single-key registers (pure, no I/O).

The search is Wing & Gong's, with the memoisation of Lowe's refinement as
porcupine and Knossos implement it: walk the history's call and return entries
in time order; at a call, try to linearize its operation now (the register
model allows it: a write always, a read only if it returns the current value),
remove its entries from the list and start over from the first one; reaching
a return entry means an operation could not be placed before it returned, so
undo the last choice (backtrack). A state already seen (the same set of
linearized operations, the same register value) is not explored twice. The
history is linearizable if every operation gets placed.

An operation without a completion time (``complete=None``: a write whose
outcome is unknown) may take effect at any time after its invocation, or never:
its return is at infinity, so it may always be placed last, after everything
it could influence. A write of a value that no read returned cannot explain
any read, so such writes are left out before searching (the search is then
shorter; the answer is the same). Failed reads say nothing and must not be
given; failed writes (definitely not applied) neither.

Values identify writes best when each written value is unique, as in the
partition workload; the checker does not rely on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Op", "Verdict", "check_register"]


@dataclass(frozen=True)
class Op:
    """One operation on the register: a ``write`` of ``value``, or a ``read`` that
    returned ``value`` (None: the key was absent), between ``invoke`` and ``complete``
    (None for a write whose outcome is unknown)."""

    id: int
    kind: Literal["write", "read"]
    value: str | None
    invoke: float
    complete: float | None

    def describe(self) -> str:
        end = "?" if self.complete is None else f"{self.complete:.3f}"
        what = "absent" if self.value is None else repr(self.value)
        return f"#{self.id} {self.kind} {what} [{self.invoke:.3f}, {end}]"


@dataclass
class Verdict:
    """Whether the history is linearizable; if not, where the search got stuck."""

    ok: bool
    ops: int
    #: (linearized set, value) states the search visited
    states: int
    #: the operation that could not be placed at the deepest point the search reached
    stuck: Op | None = None
    #: the last operations linearized before it, at that point
    before: list[Op] = field(default_factory=list)

    def report(self) -> str:
        if self.ok:
            return f"linearizable ({self.ops} operations, {self.states} states)"
        assert self.stuck is not None
        lines = [f"not linearizable ({self.ops} operations, {self.states} states): "
                 f"no order places {self.stuck.describe()}; the longest linearization "
                 f"found ends with:"]
        lines += [f"  {op.describe()}" for op in self.before]
        return "\n".join(lines)


def _relevant(ops: Iterable[Op]) -> list[Op]:
    ops = list(ops)
    for op in ops:
        if op.kind == "read" and op.complete is None:
            raise ValueError(f"a read without an answer says nothing; leave it out: "
                             f"{op.describe()}")
        if op.complete is not None and op.complete < op.invoke:
            raise ValueError(f"completed before it was invoked: {op.describe()}")
    read = {op.value for op in ops if op.kind == "read"}
    return [op for op in ops
            if not (op.kind == "write" and op.complete is None and op.value not in read)]


def check_register(ops: Sequence[Op], initial: str | None = None) -> Verdict:
    """Whether ``ops`` (all on one register, starting at ``initial``) are linearizable.

    :raises ValueError: a read without a completion time, or one completed before
        its invocation
    """
    history = _relevant(ops)
    n = len(history)
    # Entries 1..2n in time order (calls before returns at equal times: those
    # operations count as concurrent); 0 is the head, 2n+1 the tail.
    events = sorted(
        [(op.invoke, 0, i) for i, op in enumerate(history)]
        + [(math.inf if op.complete is None else op.complete, 1, i)
           for i, op in enumerate(history)])
    op_of = [-1] * (2 * n + 2)
    is_call = [False] * (2 * n + 2)
    call_of = [0] * n
    match = [0] * (2 * n + 2)
    for node, (_, kind, i) in enumerate(events, start=1):
        op_of[node] = i
        if kind == 0:
            is_call[node] = True
            call_of[i] = node
        else:
            match[call_of[i]] = node
    nxt = list(range(1, 2 * n + 3))
    prv = list(range(-1, 2 * n + 1))
    tail = 2 * n + 1

    def lift(call: int) -> None:
        ret = match[call]
        nxt[prv[call]] = nxt[call]
        prv[nxt[call]] = prv[call]
        nxt[prv[ret]] = nxt[ret]
        prv[nxt[ret]] = prv[ret]

    def unlift(call: int) -> None:
        ret = match[call]
        nxt[prv[ret]] = ret
        prv[nxt[ret]] = ret
        nxt[prv[call]] = call
        prv[nxt[call]] = call

    stack: list[tuple[int, str | None]] = []
    seen: set[tuple[int, str | None]] = set()
    linearized = 0
    value = initial
    deepest = -1
    stuck: Op | None = None
    before: list[Op] = []
    entry = nxt[0]
    while nxt[0] != tail:
        i = op_of[entry]
        op = history[i]
        if is_call[entry]:
            if op.kind == "write" or op.value == value:
                after = op.value if op.kind == "write" else value
                state = (linearized | (1 << i), after)
                if state not in seen:
                    seen.add(state)
                    stack.append((entry, value))
                    linearized, value = state
                    lift(entry)
                    entry = nxt[0]
                    continue
            entry = nxt[entry]
            continue
        # A return whose call is still in the list: that operation cannot be
        # placed after what is linearized so far. Undo the last choice.
        if len(stack) > deepest:
            deepest = len(stack)
            stuck = op
            before = [history[op_of[call]] for call, _ in stack[-5:]]
        if not stack:
            return Verdict(False, n, len(seen), stuck, before)
        call, value = stack.pop()
        linearized &= ~(1 << op_of[call])
        unlift(call)
        entry = nxt[call]
    return Verdict(True, n, len(seen))
