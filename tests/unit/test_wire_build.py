"""Wire layer, request side: key sets, request bodies, validation, txn limits."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdwamp import errors as e
from etcdwamp.wire import (
    CompLease,
    CompModified,
    CompValue,
    CompVersion,
    KeySet,
    OpDel,
    OpGet,
    OpSet,
    Transaction,
    check_size,
    prefix_range_end,
    put_request,
    range_request,
    txn_request,
)


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"a", b"b"),
        (b"p/", b"p0"),
        (b"a\xff", b"b"),
        (b"a\xfe\xff\xff", b"a\xff"),
        (b"\xff", b"\x00"),
        (b"\xff\xff", b"\x00"),
        (b"", b"\x00"),
        (b"pX", b"pY"),
    ],
)
def test_prefix_range_end(prefix: bytes, end: bytes) -> None:
    assert prefix_range_end(prefix) == end


@given(st.binary(min_size=1, max_size=8), st.binary(max_size=8))
def test_prefix_keyset_contains_exactly_the_keys_with_that_prefix(prefix: bytes,
                                                                  key: bytes) -> None:
    """For any prefix and key: in the resolved range iff the key starts with the prefix."""
    ks = KeySet(prefix, prefix=True)
    if key:
        assert ks.contains(key) == key.startswith(prefix)


def test_keyset_forms() -> None:
    assert KeySet(b"k").resolve() == (b"k", None)
    assert KeySet(b"a", range_end=b"b").resolve() == (b"a", b"b")
    assert KeySet(b"", prefix=True).resolve() == (b"\x00", b"\x00")
    assert KeySet.all().resolve() == (b"\x00", b"\x00")
    assert KeySet(b"k").is_single and not KeySet(b"k", prefix=True).is_single


def test_keyset_refuses_bad_input() -> None:
    """Each refusal names the argument and says what to do instead."""
    for build in (lambda: KeySet("k"), lambda: OpGet("k"),  # type: ignore[arg-type]
                  lambda: OpDel("k")):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^key must be bytes, not str"):
            build()
    with pytest.raises(TypeError, match=r"^range_end must be bytes, not str"):
        KeySet(b"a", range_end="b")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape(
            "the empty key is not a valid etcd key (use KeySet(b'', prefix=True) or "
            "KeySet.all() for every key)")):
        KeySet(b"")
    with pytest.raises(ValueError, match="^" + re.escape(
            "give either range_end or prefix=True, not both") + "$"):
        KeySet(b"a", range_end=b"b", prefix=True)


def test_range_request_defaults_send_only_the_key() -> None:
    req = range_request(b"k")
    assert req.path == "/kv/range" and req.idempotent
    assert req.body == {"key": "aw=="}


def test_int64_options_travel_as_strings() -> None:
    req = range_request(b"k", revision=2**62, limit=3)
    assert req.body["revision"] == str(2**62) and req.body["limit"] == "3"


def test_put_request_is_not_idempotent_and_sized() -> None:
    req = put_request(b"key", b"x" * 100)
    assert not req.idempotent
    assert req.size >= 103


def test_bools_and_enums_are_checked() -> None:
    with pytest.raises(TypeError):
        range_request(b"k", count_only=1)
    with pytest.raises(ValueError, match="sort_order"):
        range_request(b"k", sort_order="up")
    with pytest.raises(TypeError):
        range_request(b"k", revision="5")
    with pytest.raises(TypeError):
        range_request(b"k", revision=True)


def test_check_size() -> None:
    check_size(100, 100)
    with pytest.raises(e.RequestTooLarge, match="101 bytes"):
        check_size(101, 100)


def test_compare_operators_and_targets() -> None:
    body = CompValue(b"k", "!=", b"v").to_json()
    assert body == {"result": "NOT_EQUAL", "target": "VALUE", "key": "aw==", "value": "dg=="}
    assert CompVersion(b"k", ">", 0).to_json()["version"] == "0"
    assert CompLease(b"k", "<", 7).to_json()["target"] == "LEASE"
    with pytest.raises(ValueError, match="operator"):
        CompVersion(b"k", "=>", 1)
    with pytest.raises(TypeError):
        CompValue(b"k", "==", "v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CompVersion(b"k", "==", b"1")  # type: ignore[arg-type]


def test_txn_op_limit_counts_the_widest_part_and_nested_budget() -> None:
    txn_request(Transaction(success=[OpGet(b"k")] * 128))
    with pytest.raises(e.TooManyOps, match="128"):
        txn_request(Transaction(success=[OpGet(b"k")] * 129))
    with pytest.raises(e.TooManyOps):
        txn_request(Transaction(compare=[CompVersion(b"k", "==", 0)] * 129))
    # A nested txn gets what the parent leaves: 100 + 29 > 128.
    inner = Transaction(success=[OpGet(b"k")] * 29)
    with pytest.raises(e.TooManyOps):
        txn_request(Transaction(success=[*[OpGet(b"k")] * 99, inner]))
    txn_request(Transaction(success=[*[OpGet(b"k")] * 99, Transaction(success=[OpGet(b"k")])]))
    with pytest.raises(e.TooManyOps, match="10"):
        txn_request(Transaction(success=[OpGet(b"k")] * 11), max_ops=10)


def test_txn_duplicate_keys() -> None:
    with pytest.raises(e.DuplicateKey):
        txn_request(Transaction(success=[OpSet(b"k", b"1"), OpSet(b"k", b"2")]))
    with pytest.raises(e.DuplicateKey):
        txn_request(Transaction(success=[OpSet(b"p/k", b"1"), OpDel(KeySet(b"p/", prefix=True))]))
    with pytest.raises(e.DuplicateKey):
        txn_request(Transaction(success=[OpSet(b"k", b"1"),
                                         Transaction(success=[OpSet(b"k", b"2")])]))
    # Reads of a written key, and the same key in both branches, are fine.
    txn_request(Transaction(success=[OpSet(b"k", b"1"), OpGet(b"k")],
                            failure=[OpSet(b"k", b"2")]))


def test_a_put_in_a_txn_sends_its_options() -> None:
    """lease, prev_kv and ignore_* of an OpSet travel in the transaction's request."""
    body = txn_request(Transaction(success=[
        OpSet(b"k", b"v", lease=7, prev_kv=True),
        OpSet(b"i", b"", ignore_value=True, ignore_lease=True)])).body
    assert body["success"] == [
        {"request_put": {"key": "aw==", "value": "dg==", "lease": "7", "prev_kv": True}},
        {"request_put": {"key": "aQ==", "ignore_value": True, "ignore_lease": True}},
    ]


@pytest.mark.parametrize("end", [b"d", b"\x00"])
def test_keyset_range_includes_its_start_and_excludes_its_end(end: bytes) -> None:
    """``[start, end)``: the start key is in, the end key and the key before start are not
    (``end`` b"\\0" means no upper bound)."""
    ks = KeySet(b"b", range_end=end)
    assert ks.contains(b"b") and ks.contains(b"b\x00") and ks.contains(b"c\xff")
    assert not ks.contains(b"a") and not ks.contains(b"a\xff")
    assert ks.contains(b"d") is (end == b"\x00")
    assert KeySet(b"b").contains(b"b") and not KeySet(b"b").contains(b"b\x00")


@pytest.mark.parametrize("end", [b"d", b"\x00"])
def test_txn_duplicate_key_at_the_edges_of_a_deleted_range(end: bytes) -> None:
    """A put at the first key of a deleted range is a duplicate (etcd refuses it), a put
    just before it or at its (exclusive) end is not; in the transaction or a nested one."""
    deleted = OpDel(KeySet(b"b", range_end=end))

    def shapes(put: OpSet) -> list[Transaction]:
        return [Transaction(success=[deleted, put]),
                Transaction(success=[deleted, Transaction(success=[put])]),
                Transaction(success=[put, Transaction(failure=[deleted])])]

    for txn in shapes(OpSet(b"b", b"1")):
        with pytest.raises(e.DuplicateKey):
            txn_request(txn)
    for txn in shapes(OpSet(b"a", b"1")):
        txn_request(txn)
    for txn in shapes(OpSet(b"d", b"1")):
        if end == b"d":
            txn_request(txn)
        else:
            with pytest.raises(e.DuplicateKey):
                txn_request(txn)


def test_txn_idempotency_follows_its_ops() -> None:
    assert txn_request(Transaction(success=[OpGet(b"k")])).idempotent
    assert not txn_request(Transaction(failure=[OpDel(b"k")])).idempotent


def test_txn_refuses_foreign_objects() -> None:
    with pytest.raises(TypeError):
        Transaction(success=[("k", "v")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Transaction(compare=[OpGet(b"k")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        txn_request([OpGet(b"k")])  # type: ignore[arg-type]


def test_txn_request_json_of_every_part() -> None:
    """Compares over a range, both branches, a delete's prev_kv and a nested transaction
    as etcd's gateway expects them (only the options given are sent)."""
    inner = Transaction(compare=[CompVersion(b"n", "==", 0)], success=[OpSet(b"n", b"1")],
                        failure=[OpGet(b"n")])
    body = txn_request(Transaction(
        compare=[CompValue(KeySet(b"a", range_end=b"c"), "equal", b"v")],
        success=[OpDel(b"k"), OpDel(KeySet(b"p/", prefix=True), prev_kv=True), inner],
        failure=[OpGet(b"k", keys_only=True)])).body
    assert body == {
        "compare": [{"result": "EQUAL", "target": "VALUE", "key": "YQ==", "range_end": "Yw==",
                     "value": "dg=="}],
        "success": [
            {"request_delete_range": {"key": "aw=="}},
            {"request_delete_range": {"key": "cC8=", "range_end": "cDA=", "prev_kv": True}},
            {"request_txn": {
                "compare": [{"result": "EQUAL", "target": "VERSION", "key": "bg==",
                             "version": "0"}],
                "success": [{"request_put": {"key": "bg==", "value": "MQ=="}}],
                "failure": [{"request_range": {"key": "bg=="}}]}}],
        "failure": [{"request_range": {"key": "aw==", "keys_only": True}}],
    }


@pytest.mark.parametrize(("spelled", "result"), [
    ("==", "EQUAL"), ("equal", "EQUAL"), ("Not_Equal", "NOT_EQUAL"), (">", "GREATER"),
    ("less", "LESS"), ("LESS", "LESS"),
])
def test_compare_operators_by_symbol_or_name(spelled: str, result: str) -> None:
    assert CompVersion(b"k", spelled, 1).to_json()["result"] == result


def test_bad_compares_and_ops_are_refused_when_built_naming_what_is_wrong() -> None:
    """Options are checked when an op is made, not when the transaction is sent."""
    builds: list[tuple[Callable[[], object], type[Exception], str]] = [
        (lambda: CompValue(b"k", "==", "v"),  # type: ignore[arg-type]
         TypeError, "CompValue operand must be bytes"),
        (lambda: CompVersion(b"k", "==", b"1"), TypeError, "CompVersion operand must be an int"),
        (lambda: CompModified(b"k", "<", -1), ValueError, "CompModified operand must be "),
        (lambda: CompLease(b"k", "==", "7"),  # type: ignore[arg-type]
         TypeError, "CompLease operand must be an int"),
        (lambda: OpGet(b"k", limit=-1), ValueError, "limit"),
        (lambda: OpGet(b"k", bogus=1), TypeError, "bogus"),
        (lambda: OpSet(b"k", b"v", lease="7"), TypeError, "lease must be an int"),
        (lambda: OpSet(b"k", b"v", ignore_value=True), ValueError, "ignore_value"),
        (lambda: OpDel(b"k", prev_kv="yes"),  # type: ignore[arg-type]
         TypeError, "prev_kv must be a bool"),
        (lambda: Transaction(compare=["k"]), TypeError,  # type: ignore[list-item]
         "compare items must be Comp\\* objects, not str"),
        (lambda: Transaction(failure=[b"k"]), TypeError,  # type: ignore[list-item]
         "transaction ops must be OpGet/OpSet/OpDel/Transaction, not bytes"),
        (lambda: txn_request(OpGet(b"k")), TypeError,  # type: ignore[arg-type]
         "expected a Transaction, not OpGet"),
    ]
    for build, error, message in builds:
        with pytest.raises(error, match=message):
            build()


@pytest.mark.parametrize(("txn", "message"), [
    (Transaction(success=[OpSet(b"k", b"1"), OpSet(b"k", b"2")]), "b'k' is put twice"),
    (Transaction(failure=[OpDel(b"k"), OpSet(b"k", b"2")]), "b'k' is put and deleted"),
    (Transaction(success=[OpSet(b"k", b"1"), Transaction(failure=[OpSet(b"k", b"2")])]),
     "b'k' is written by the transaction and by a nested transaction"),
    (Transaction(success=[OpSet(b"k", b"1"), Transaction(success=[OpDel(b"k")])]),
     "a nested transaction deletes a key the transaction puts"),
])
def test_duplicate_keys_are_named_as_etcd_names_them(txn: Transaction, message: str) -> None:
    with pytest.raises(e.DuplicateKey,
                       match="^duplicate key given in txn request: " + re.escape(message)):
        txn_request(txn)


def test_the_op_limit_applies_to_the_failure_branch_too() -> None:
    txn_request(Transaction(failure=[OpGet(b"k")] * 128))
    with pytest.raises(e.TooManyOps, match="129 ops in one part"):
        txn_request(Transaction(failure=[OpGet(b"k")] * 129))


def test_a_transaction_costs_at_least_what_its_parts_cost() -> None:
    """The size estimate (checked against etcd's --max-request-bytes before sending)
    counts every compare's and op's keys and values, and more than the same put alone."""
    value = b"v" * 100_000
    put = OpSet(b"key", value)
    assert put.size() > len(b"key") + len(value)
    alone = put_request(b"key", value).size
    assert txn_request(Transaction(success=[put])).size > alone
    compare = CompValue(b"key", "==", value)
    assert compare.size() > len(b"key") + len(value)
    both = txn_request(Transaction(compare=[compare], success=[put], failure=[put])).size
    assert both > compare.size() + 2 * put.size()
    nested = txn_request(Transaction(success=[Transaction(success=[put])])).size
    assert nested > txn_request(Transaction(success=[put])).size
    with pytest.raises(e.RequestTooLarge):
        check_size(txn_request(Transaction(success=[OpSet(b"k", b"x" * 2**21)])).size, 2**21)
