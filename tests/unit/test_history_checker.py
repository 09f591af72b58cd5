"""The serializability checker of tests/integration/history.py on hand-made histories."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from history import History, Read, Txn, Value, check


def v(uid: str, group: str = "a") -> Value:
    return Value(uid, group)


ON_CALL = {"d1": v("d1-0"), "d2": v("d2-0")}


def test_serial_history_has_no_cycle() -> None:
    """Each transaction reads what the one before it wrote: acyclic, no anomaly."""
    h = History({"x": v("x0")}, [
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("get", v("x0"), key="x")],
            writes={"x": v("x1")}),
        Txn(2, 2, snapshot=2, commit=3, reads=[Read("get", v("x1"), key="x")],
            writes={"x": v("x2")}),
        Txn(3, 3, snapshot=3, commit=3, reads=[Read("count", 1)]),
    ])
    verdict = check(h)
    assert verdict.ok, verdict.report(h)
    assert verdict.txns == 3


def test_count_write_skew_is_a_two_transaction_rw_cycle() -> None:
    """Two transactions count both doctors, each deletes a different one: the
    anti-dependencies point both ways, and the cycle printed names them."""
    h = History(dict(ON_CALL), [
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("count", 2)], writes={"d1": None}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("count", 2)], writes={"d2": None}),
    ])
    verdict = check(h)
    assert verdict.cycle is not None
    assert {(e.src, e.dst, e.kind) for e in verdict.cycle} == {(1, 2, "rw"), (2, 1, "rw")}
    assert "T1 -rw-> T2" in verdict.report(h)


def test_count_is_blind_to_an_update_that_keeps_the_key() -> None:
    """An update of a counted key does not change the count: no anti-dependency,
    so the crosswise shape with updates instead of deletes is serializable."""
    h = History(dict(ON_CALL), [
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("count", 2)], writes={"d1": v("d1-1")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("count", 2)], writes={"d2": v("d2-1")}),
    ])
    assert check(h).cycle is None


def test_select_sees_values_so_updates_are_anti_dependencies() -> None:
    h = History(dict(ON_CALL), [
        Txn(1, 1, snapshot=1, commit=2,
            reads=[Read("select", (("d1", v("d1-0")), ("d2", v("d2-0"))))],
            writes={"d1": v("d1-1")}),
        Txn(2, 2, snapshot=1, commit=3,
            reads=[Read("select", (("d1", v("d1-0")), ("d2", v("d2-0"))))],
            writes={"d2": v("d2-1")}),
    ])
    assert check(h).cycle is not None


def test_lost_update() -> None:
    """Both read x0 and write x: T1 -ww-> T2 and T2 -rw-> T1."""
    h = History({"x": v("x0")}, [
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("get", v("x0"), key="x")],
            writes={"x": v("x1")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("get", v("x0"), key="x")],
            writes={"x": v("x2")}),
    ])
    cycle = check(h).cycle
    assert cycle is not None and len(cycle) == 2
    assert {e.kind for e in cycle} == {"ww", "rw"}


def test_insert_if_absent_crosswise() -> None:
    """Each reads the other's key absent and inserts its own."""
    h = History({}, [
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("get", None, key="b")],
            writes={"a": v("a1")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("get", None, key="a")],
            writes={"b": v("b1")}),
    ])
    assert check(h).cycle is not None


def test_key_inserted_and_deleted_while_a_reader_ran_is_not_a_cycle() -> None:
    """T1 sees k absent; T2 inserts it and T3 deletes it before T1 commits; T3 also
    read y, which T1 writes later. Serial order T2, T3, T1 explains it."""
    h = History({"y": v("y0")}, [
        Txn(2, 2, snapshot=1, commit=2, writes={"k": v("k1")}),
        Txn(3, 3, snapshot=2, commit=3, reads=[Read("get", v("y0"), key="y")],
            writes={"k": None}),
        Txn(1, 1, snapshot=1, commit=4, reads=[Read("get", None, key="k")],
            writes={"y": v("y1")}),
    ])
    verdict = check(h)
    assert verdict.ok, verdict.report(h)


def test_read_only_transaction_is_placed_at_its_snapshot() -> None:
    """A read-only transaction that saw x new and y old, with y written before x
    by another client (G-single / read skew) is a cycle."""
    h = History({"x": v("x0"), "y": v("y0")}, [
        Txn(1, 1, snapshot=1, commit=2, writes={"y": v("y1")}),
        Txn(2, 2, snapshot=2, commit=3, reads=[Read("get", v("y1"), key="y")],
            writes={"x": v("x1")}),
    ])
    assert check(h).ok
    bad = History(h.initial, [*h.txns,
                              Txn(3, 3, snapshot=3, commit=3,
                                  reads=[Read("get", v("x1"), key="x"),
                                         Read("get", v("y0"), key="y")])])
    verdict = check(bad)
    assert not verdict.ok
    assert any("snapshot at revision 3" in a for a in verdict.anomalies)


def test_lookup_ignores_updates_within_the_group() -> None:
    """lookup(a) only answers which records are in group a: moving a record
    within group a is not an anti-dependency, moving it out is."""
    start = {"r1": v("r1-0", "a"), "r2": v("r2-0", "a")}
    same = History(dict(start), [
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("lookup", frozenset({"r1", "r2"}),
                                                    group="a")],
            writes={"r1": v("r1-1", "a")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("lookup", frozenset({"r1", "r2"}),
                                                    group="a")],
            writes={"r2": v("r2-1", "a")}),
    ])
    assert check(same).cycle is None
    moved = History(dict(start), [
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("lookup", frozenset({"r1", "r2"}),
                                                    group="a")],
            writes={"r1": v("r1-1", "b")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("lookup", frozenset({"r1", "r2"}),
                                                    group="a")],
            writes={"r2": v("r2-1", "b")}),
    ])
    assert check(moved).cycle is not None


def test_limited_select_depends_only_on_the_keys_up_to_its_last() -> None:
    """select(limit=1) returned a; an insert of c (after a) by the other side
    does not change it, so only one anti-dependency exists: no cycle."""
    start = {"a": v("a0"), "b": v("b0")}
    h = History(dict(start), [
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("select", (("a", v("a0")),), limit=1)],
            writes={"c": v("c1")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("keys", ("a", "b"))],
            writes={"z": v("z1")}),
    ])
    verdict = check(h)
    assert verdict.cycle is None, verdict.report(h)
    # Without the limit T1's range would include c... and z: T1 -rw-> T2 too.
    unlimited = History(dict(start), [
        Txn(1, 1, snapshot=1, commit=2,
            reads=[Read("select", (("a", v("a0")), ("b", v("b0"))))],
            writes={"c": v("c1")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("keys", ("a", "b"))],
            writes={"z": v("z1")}),
    ])
    assert check(unlimited).cycle is not None


def test_smallest_cycle_is_reported() -> None:
    """A 3-cycle and a 2-cycle in one history: the 2-cycle is printed."""
    h = History({"x": v("x0"), "y": v("y0"), "z": v("z0"), "w": v("w0")}, [
        # 3-cycle of anti-dependencies: 1 reads x, 2 writes x; 2 reads y, 3 writes y;
        # 3 reads z, 1 writes z.
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("get", v("x0"), key="x")],
            writes={"z": v("z1")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("get", v("y0"), key="y")],
            writes={"x": v("x1")}),
        Txn(3, 3, snapshot=1, commit=4, reads=[Read("get", v("z0"), key="z")],
            writes={"y": v("y1")}),
        # 2-cycle: 4 and 5 each read w and write it.
        Txn(4, 4, snapshot=1, commit=5, reads=[Read("get", v("w0"), key="w")],
            writes={"w": v("w1")}),
        Txn(5, 5, snapshot=1, commit=6, reads=[Read("get", v("w0"), key="w")],
            writes={"w": v("w2")}),
    ])
    cycle = check(h).cycle
    assert cycle is not None
    assert {e.src for e in cycle} == {4, 5}


def test_deleting_an_absent_key_installs_no_version() -> None:
    """A blind delete of a missing key is invisible (etcd records nothing), so a
    reader of that absent key has no anti-dependency on it."""
    h = History({}, [
        Txn(1, 1, snapshot=1, commit=2, reads=[Read("get", None, key="k")],
            writes={"m": v("m1")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("get", None, key="m")],
            writes={"k": None}),
    ])
    assert check(h).ok


def test_a_key_nobody_ever_wrote_can_be_read() -> None:
    """get of a key no transaction wrote: seen absent in its initial version."""
    h = History({}, [Txn(1, 1, snapshot=1, commit=1, reads=[Read("get", None, key="q")])])
    assert check(h).ok


def test_commit_that_changed_nothing_saw_the_state_current_when_it_ran() -> None:
    """T3's only write deletes an absent key: etcd creates no revision and reports
    the current one (2, X's), so T3's guards held at state 2, where k, inserted
    into group b by T1 and deleted by X, is gone again. T3 read at its snapshot
    and changed nothing: serial order T3, T1, X (or T1, X, T3) explains it."""
    initial = {"k5": v("k5-0", "b"), "k6": v("k6-0", "a")}
    reads = [Read("lookup", frozenset({"k5"}), group="b"),
             Read("lookup", frozenset({"k6"}), group="a")]
    h = History(initial, [
        Txn(1, 1, snapshot=0, commit=1, writes={"k": v("k1", "b")}),
        Txn(2, 2, snapshot=1, commit=2, reads=[Read("get", v("k1", "b"), key="k")],
            writes={"k": None}),
        Txn(3, 3, snapshot=0, commit=2, reads=reads, writes={"absent": None}),
    ])
    verdict = check(h)
    assert verdict.ok, verdict.report(h)
    # Had T3 installed a version at 2 (X then at 3), its guards ran at state 1,
    # where k is in group b: a guard pmap must fail, so the checker finds a cycle.
    real = History(initial, [
        Txn(1, 1, snapshot=0, commit=1, writes={"k": v("k1", "b")}),
        Txn(3, 3, snapshot=0, commit=2, reads=reads, writes={"z": v("z1")}),
        Txn(2, 2, snapshot=1, commit=3, reads=[Read("get", v("k1", "b"), key="k")],
            writes={"k": None}),
    ])
    cycle = check(real).cycle
    assert cycle is not None and {e.src for e in cycle} == {1, 3}


def test_a_commit_that_changed_nothing_does_not_take_the_version_of_the_one_that_did() -> None:
    """X changes a at revision 2 (a real anomaly: it read c0, which T1 had
    changed at 1); T3 deletes the absent a and changes nothing, so etcd reports
    revision 2 for it too. With etcd's ``changed`` recorded, the cycle T1 -> X
    -> T1 is found whichever of X and T3 was recorded first."""
    initial = {"a": v("a0"), "c": v("c0")}
    t1 = Txn(1, 1, snapshot=0, commit=1, writes={"c": v("c1"), "a": v("a1")}, changed=True)
    x = Txn(3, 3, snapshot=0, commit=2, reads=[Read("get", v("c0"), key="c")],
            writes={"a": None}, changed=True)
    t3 = Txn(2, 2, snapshot=2, commit=2, reads=[Read("get", None, key="a")],
             writes={"a": None}, changed=False)
    for order in ([t1, x, t3], [t1, t3, x]):
        cycle = check(History(initial, order)).cycle
        assert cycle is not None and {e.src for e in cycle} == {1, 3}, order
