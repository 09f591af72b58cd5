"""The register linearizability checker of tests/integration/linearizability.py on
hand-made histories, good and bad."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from linearizability import Op, check_register


def w(i: int, value: str, invoke: float, complete: float | None) -> Op:
    return Op(i, "write", value, invoke, complete)


def r(i: int, value: str | None, invoke: float, complete: float) -> Op:
    return Op(i, "read", value, invoke, complete)


def test_sequential_reads_of_the_last_write_are_linearizable() -> None:
    """Write, read it, write again, read that: the only order, and it holds."""
    verdict = check_register([w(0, "a", 0, 1), r(1, "a", 2, 3), w(2, "b", 4, 5),
                              r(3, "b", 6, 7)])
    assert verdict.ok, verdict.report()
    assert verdict.ops == 4


def test_a_read_of_an_overwritten_value_after_the_overwrite_returned_is_stale() -> None:
    """b was acknowledged before the read began, yet the read returns a: no order
    explains it, and the report names the read."""
    verdict = check_register([w(0, "a", 0, 1), w(1, "b", 2, 3), r(2, "a", 4, 5)])
    assert not verdict.ok
    assert verdict.stuck == r(2, "a", 4, 5)
    assert "#2 read 'a'" in verdict.report()


def test_a_read_concurrent_with_a_write_may_see_either_value() -> None:
    """A read overlapping the write of b may return a or b."""
    for seen in ("a", "b"):
        verdict = check_register([w(0, "a", 0, 1), w(1, "b", 2, 6), r(2, seen, 3, 4)])
        assert verdict.ok, verdict.report()


def test_two_reads_may_not_see_a_write_and_then_its_predecessor() -> None:
    """While b is being written, one read sees b and a later read (begun after the
    first returned) sees a again: the register went back in time."""
    verdict = check_register([w(0, "a", 0, 1), w(1, "b", 2, 10), r(2, "b", 3, 4),
                              r(3, "a", 5, 6)])
    assert not verdict.ok
    assert verdict.stuck is not None and verdict.stuck.id == 3


def test_reading_the_initial_absence_before_any_write() -> None:
    """A read before the first write returns absent (None); after it, absent is stale."""
    assert check_register([r(0, None, 0, 1), w(1, "a", 2, 3)]).ok
    assert not check_register([w(0, "a", 0, 1), r(1, None, 2, 3)]).ok
    assert check_register([r(0, "x", 0, 1)], initial="x").ok


def test_a_value_nobody_wrote_is_not_linearizable() -> None:
    """A read returning a value no write wrote (or a write that definitely failed,
    which the caller leaves out) cannot be explained."""
    verdict = check_register([w(0, "a", 0, 1), r(1, "ghost", 2, 3)])
    assert not verdict.ok


def test_an_indefinite_write_may_take_effect_long_after_its_call() -> None:
    """A write whose outcome is unknown (no completion) took effect later: a read
    much later may see it, even after another write was acknowledged."""
    ops = [w(0, "a", 0, 1), w(1, "x", 2, None), r(2, "a", 3, 4), w(3, "b", 5, 6),
           r(4, "b", 7, 8), r(5, "x", 9, 10), r(6, "x", 11, 12)]
    verdict = check_register(ops)
    assert verdict.ok, verdict.report()


def test_an_indefinite_write_cannot_take_effect_before_its_call() -> None:
    """A read that returned before the indefinite write was invoked cannot see it."""
    verdict = check_register([w(0, "a", 0, 1), r(1, "x", 2, 3), w(2, "x", 4, None)])
    assert not verdict.ok


def test_an_indefinite_write_takes_effect_once() -> None:
    """Seen, overwritten, then seen again: an unknown outcome is one effect, not two."""
    ops = [w(0, "x", 0, None), r(1, "x", 1, 2), w(2, "b", 3, 4), r(3, "x", 5, 6)]
    assert not check_register(ops).ok


def test_an_indefinite_write_never_read_may_never_have_happened() -> None:
    """A write of unknown outcome that no read saw is left out; the rest still checks."""
    ops = [w(0, "a", 0, 1), w(1, "lost", 2, None), r(2, "a", 3, 4)]
    verdict = check_register(ops)
    assert verdict.ok
    assert verdict.ops == 2


def test_a_read_without_an_answer_is_refused() -> None:
    with pytest.raises(ValueError, match="leave it out"):
        check_register([Op(0, "read", None, 0, None)])
    with pytest.raises(ValueError, match="before it was invoked"):
        check_register([w(0, "a", 2, 1)])


def _serial_history(seed: int, size: int) -> list[Op]:
    """Random concurrent operations that really ran on a register: each takes effect
    at a random instant inside its interval (the linearization point), so the
    history is linearizable by construction."""
    rng = random.Random(seed)
    points = sorted(rng.uniform(0, size) for _ in range(size))
    value: str | None = None
    ops = []
    for i, at in enumerate(points):
        invoke, complete = at - rng.uniform(0, 3), at + rng.uniform(0, 3)
        if rng.random() < 0.5:
            value = f"v{i}"
            unknown = rng.random() < 0.1
            ops.append(w(i, value, invoke, None if unknown else complete))
        else:
            ops.append(r(i, value, invoke, complete))
    return ops


@pytest.mark.parametrize("seed", range(20))
def test_random_histories_of_a_real_register_are_linearizable(seed: int) -> None:
    """Histories recorded from a register (overlapping calls, unknown outcomes) pass."""
    verdict = check_register(_serial_history(seed, 400))
    assert verdict.ok, verdict.report()


@pytest.mark.parametrize("seed", range(20))
def test_one_read_moved_back_before_its_write_is_caught(seed: int) -> None:
    """The same histories with one read completed before the write of the value it
    returned was even invoked: never linearizable."""
    ops = _serial_history(seed, 400)
    writes = {op.value: op for op in ops if op.kind == "write"}
    victim = next(op for op in ops[len(ops) // 2:] if op.kind == "read" and op.value)
    write = writes[victim.value]
    moved = r(victim.id, victim.value, write.invoke - 2, write.invoke - 1)
    verdict = check_register([moved if op is victim else op for op in ops])
    assert not verdict.ok


def test_a_long_history_is_checked_quickly() -> None:
    """Thousands of operations, a few concurrent at a time: the memoised search
    stays near linear (the partition runs record about this many per key)."""
    import time

    ops = _serial_history(99, 4000)
    start = time.monotonic()
    verdict = check_register(ops)
    assert verdict.ok, verdict.report()
    assert time.monotonic() - start < 10
