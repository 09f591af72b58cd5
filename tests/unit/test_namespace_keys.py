"""How a namespace maps key sets, compares and ops onto etcd keys (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred

from etcdwamp import errors as e
from etcdwamp.namespace import Namespace
from etcdwamp.wire import (
    CompModified,
    KeySet,
    OpDel,
    OpGet,
    OpSet,
    Transaction,
)

NS = Namespace(client=None, prefix=b"app/")  # type: ignore[arg-type]


@pytest.mark.parametrize(("given", "sent"), [
    (b"k", (b"app/k", None)),
    (KeySet(b"k", prefix=True), (b"app/k", b"app/l")),
    (KeySet(b"a", range_end=b"c"), (b"app/a", b"app/c")),
    # open-ended ranges and "every key" stop at the end of the namespace
    (KeySet(b"m", range_end=b"\x00"), (b"app/m", b"app0")),
    (KeySet.all(), (b"app/", b"app0")),
    (KeySet(b"\x00", range_end=b"\x00"), (b"app/", b"app0")),
])
def test_key_sets_map_into_the_prefix(given: Any, sent: tuple[bytes, bytes | None]) -> None:
    assert NS._keyset(given).resolve() == sent


def test_a_prefix_of_ff_bytes_has_no_end_but_etcds() -> None:
    ns = Namespace(client=None, prefix=b"\xff")  # type: ignore[arg-type]
    assert ns._keyset(KeySet.all()).resolve() == (b"\xff", b"\x00")


def test_transactions_are_rewritten_all_the_way_down() -> None:
    txn = Transaction(
        compare=[CompModified(b"k", ">", 3)],
        success=[OpSet(b"k", b"v", lease=7), OpGet(KeySet.all(), limit=2),
                 Transaction(success=[OpDel(b"x", prev_kv=True)])],
        failure=[OpGet(b"k")])
    out = NS._transaction(txn)
    assert out.compare[0].keyset == KeySet(b"app/k") and out.compare[0].operand == 3
    assert type(out.compare[0]) is CompModified
    put = out.success[0]
    assert isinstance(put, OpSet) and put.key == b"app/k" and dict(put.options) == {"lease": 7}
    get = out.success[1]
    assert isinstance(get, OpGet) and get.keyset.resolve() == (b"app/", b"app0")
    inner = out.success[2]
    assert isinstance(inner, Transaction)
    assert inner.success[0] == OpDel(KeySet(b"app/x"), prev_kv=True)
    assert out.failure == (OpGet(KeySet(b"app/k")),)


def test_keys_outside_the_namespace_in_an_answer_are_an_error() -> None:
    assert NS._strip(b"app/k") == b"k"
    with pytest.raises(e.ProtocolError):
        NS._strip(b"other/k")


def test_bad_prefixes_are_refused() -> None:
    with pytest.raises(ValueError):
        Namespace(client=None, prefix=b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Namespace(client=None, prefix="app/")  # type: ignore[arg-type]
    assert NS.namespace(b"inner/").prefix == b"app/inner/"


def test_root_is_the_client_under_every_namespace() -> None:
    from twisted.internet.task import Clock

    from etcdwamp import Client

    client = Client(Clock(), "http://127.0.0.1:1")
    inner = client.namespace(b"a/").namespace(b"b/")
    assert client.root is client and inner.root is client and inner.prefix == b"a/b/"


def test_single_keys_reach_the_client_as_bytes_so_they_can_be_coalesced() -> None:
    """Client.get/delete coalesce bytes keys only: the namespace passes a single
    key on as bytes, a range as a KeySet, and still refuses an empty key."""
    from twisted.internet.task import Clock

    from etcdwamp import Client

    client = Client(Clock(), "http://127.0.0.1:1", coalesce=True)
    ns = client.namespace(b"app/")
    assert ns._key_or_keyset(b"k") == b"app/k"
    assert ns._key_or_keyset(KeySet(b"k", prefix=True)) == KeySet(b"app/k", range_end=b"app/l")
    with pytest.raises(ValueError):
        ns._key_or_keyset(b"")
    sent = []
    client._coalescer.submit = lambda request: sent.append(request) or Deferred()  # type: ignore[union-attr,method-assign]
    ns.get(b"k")
    ns.delete(b"k")
    assert len(sent) == 2  # both went to the coalescer
