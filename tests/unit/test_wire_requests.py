"""Single-call requests: the exact JSON sent, which calls may be re-sent, and
the bounds of every number, checked before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from etcdwamp.errors import RequestTooLarge
from etcdwamp.wire import (
    KeySet,
    SortOrder,
    SortTarget,
    check_size,
    compact_request,
    delete_request,
    lease_grant_request,
    lease_revoke_request,
    lease_ttl_request,
    put_request,
    range_request,
    status_request,
)
from etcdwamp.wire.requests import delete_body, put_body, range_body
from etcdwamp.wire.watch import watch_cancel_body, watch_create_body


def test_only_calls_that_change_nothing_or_repeat_harmlessly_are_idempotent() -> None:
    """A delete re-sent after an unknown outcome could delete a key written
    meanwhile by someone else; a compaction or a read cannot do harm twice."""
    assert range_request(b"k").idempotent is True
    assert status_request().idempotent is True
    assert compact_request(5).idempotent is True
    assert lease_revoke_request(7).idempotent is True
    assert lease_ttl_request(7).idempotent is True
    assert delete_request(b"k").idempotent is False
    assert delete_request(KeySet(b"p/", prefix=True)).idempotent is False
    assert put_request(b"k", b"v").idempotent is False
    assert lease_grant_request(10).idempotent is False


def test_compaction_bodies_ask_for_physical_only_when_told() -> None:
    req = compact_request(5)
    assert (req.path, req.body) == ("/kv/compaction", {"revision": "5"})
    assert compact_request(5, physical=True).body == {"revision": "5", "physical": True}
    assert compact_request(5, physical=False).body == {"revision": "5"}


def test_compaction_revision_starts_at_1() -> None:
    assert compact_request(1).body == {"revision": "1"}
    with pytest.raises(ValueError, match="revision"):
        compact_request(0)
    with pytest.raises(TypeError):
        compact_request(True)


def test_status_request() -> None:
    req = status_request()
    assert (req.path, dict(req.body)) == ("/maintenance/status", {})


def test_delete_bodies_and_sizes() -> None:
    req = delete_request(b"k")
    assert (req.path, req.body) == ("/kv/deleterange", {"key": "aw=="})
    assert req.size == 1 + 64
    ranged = delete_request(KeySet(b"a", range_end=b"bc"), prev_kv=True)
    assert ranged.body == {"key": "YQ==", "range_end": "YmM=", "prev_kv": True}
    assert ranged.size == 1 + 2 + 64
    assert delete_body(b"k", prev_kv=True) == {"key": "aw==", "prev_kv": True}
    with pytest.raises(TypeError):
        delete_request(b"k", prev_kv=1)  # type: ignore[arg-type]


def test_a_request_s_size_counts_its_keys_and_values() -> None:
    """The size compared with etcd's --max-request-bytes: the bytes the request
    carries plus 64 bytes of framing."""
    assert put_request(b"key", b"x" * 100).size == 3 + 100 + 64
    assert range_request(b"key").size == 3 + 64
    assert range_request(KeySet(b"a", range_end=b"bcd")).size == 1 + 3 + 64
    assert status_request().size == 64


@pytest.mark.parametrize("name", ["limit", "revision", "min_mod_revision", "max_mod_revision",
                                  "min_create_revision", "max_create_revision"])
def test_range_numbers_are_sent_when_set_and_may_not_be_negative(name: str) -> None:
    assert range_body(b"k", **{name: 0}) == {"key": "aw=="}
    assert range_body(b"k", **{name: 1}) == {"key": "aw==", name: "1"}
    with pytest.raises(ValueError, match=name):
        range_body(b"k", **{name: -1})


def test_range_sorting_and_flags() -> None:
    body = range_body(b"k", sort_order="descend", sort_target=SortTarget.MOD,
                      serializable=True, keys_only=True, count_only=True)
    assert body == {"key": "aw==", "sort_order": "DESCEND", "sort_target": "MOD",
                    "serializable": True, "keys_only": True, "count_only": True}
    assert range_body(b"k", sort_order=SortOrder.ASCEND) == {"key": "aw==",
                                                             "sort_order": "ASCEND"}
    # The defaults (no order, by key) are what etcd assumes when the fields are missing.
    assert range_body(b"k", sort_order="none", sort_target="key") == {"key": "aw=="}
    with pytest.raises(ValueError, match="sort_target must be one of KEY, VERSION"):
        range_body(b"k", sort_target="size")
    with pytest.raises(ValueError, match="sort_order"):
        range_body(b"k", sort_order=1)  # type: ignore[arg-type]


def test_put_bodies() -> None:
    assert put_body(b"k", b"v") == {"key": "aw==", "value": "dg=="}
    assert put_body(b"k", b"") == {"key": "aw=="}  # etcd's default value is empty
    assert put_body(b"k", b"v", lease=2**40, prev_kv=True) == {
        "key": "aw==", "value": "dg==", "lease": str(2**40), "prev_kv": True}
    assert put_body(b"k", b"", ignore_value=True, ignore_lease=True) == {
        "key": "aw==", "ignore_value": True, "ignore_lease": True}


@pytest.mark.parametrize(("args", "options", "error", "match"), [
    ((b"", b"v"), {}, ValueError, "empty key"),
    (("k", b"v"), {}, TypeError, "key"),
    ((b"k", "v"), {}, TypeError, "value"),
    ((b"k", b"v"), {"ignore_value": True}, ValueError, "ignore_value"),
    ((b"k", b""), {"lease": 5, "ignore_lease": True}, ValueError, "ignore_lease"),
    ((b"k", b"v"), {"lease": "5"}, TypeError, "lease"),
    ((b"k", b"v"), {"prev_kv": 1}, TypeError, "prev_kv"),
])
def test_put_refuses_bad_input(args: tuple[Any, Any], options: dict[str, Any],
                               error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        put_request(*args, **options)


def test_lease_requests_and_their_bounds() -> None:
    grant = lease_grant_request(1)
    assert (grant.path, grant.body) == ("/lease/grant", {"TTL": "1"})
    assert lease_grant_request(10, 2**40).body == {"TTL": "10", "ID": str(2**40)}
    assert lease_grant_request(10, 0).body == {"TTL": "10"}  # etcd picks the id
    with pytest.raises(ValueError, match="ttl"):
        lease_grant_request(0)
    with pytest.raises(ValueError, match="lease_id"):
        lease_grant_request(10, -1)
    revoke = lease_revoke_request(1)
    assert (revoke.path, revoke.body) == ("/lease/revoke", {"ID": "1"})
    with pytest.raises(ValueError, match="lease_id"):
        lease_revoke_request(0)
    ttl = lease_ttl_request(1)
    assert (ttl.path, ttl.body) == ("/lease/timetolive", {"ID": "1"})
    assert lease_ttl_request(1, keys=True).body == {"ID": "1", "keys": True}
    with pytest.raises(ValueError, match="lease_id"):
        lease_ttl_request(0)


def test_watch_ids_start_at_0_and_revisions_may_not_be_negative() -> None:
    """etcd numbers a stream's watches from 0, so watch 0 can be cancelled."""
    assert watch_cancel_body(0) == {"cancel_request": {"watch_id": "0"}}
    with pytest.raises(ValueError, match="watch_id"):
        watch_cancel_body(-1)
    assert watch_create_body(b"k", watch_id=1) == {"create_request": {"key": "aw==",
                                                                      "watch_id": "1"}}
    with pytest.raises(ValueError, match="watch_id"):
        watch_create_body(b"k", watch_id=-1)
    assert watch_create_body(b"k", start_revision=1) == {"create_request": {
        "key": "aw==", "start_revision": "1"}}
    with pytest.raises(ValueError, match="start_revision"):
        watch_create_body(b"k", start_revision=-1)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: put_request("k", b"v"), TypeError,
     "key must be bytes, not str (encode it explicitly, e.g. .encode())"),
    (lambda: put_request(b"k", "v"), TypeError,
     "value must be bytes, not str (encode it explicitly, e.g. .encode())"),
    (lambda: put_request(b"", b"v"), ValueError, "the empty key is not a valid etcd key"),
    (lambda: put_request(b"k", b"v", lease="5"), TypeError, "lease must be an int, not str"),
    (lambda: put_request(b"k", b"v", ignore_value=True), ValueError,
     "ignore_value=True keeps the stored value: pass value=b''"),
    (lambda: put_request(b"k", b"", lease=5, ignore_lease=True), ValueError,
     "ignore_lease=True keeps the stored lease: pass no lease"),
    (lambda: range_request(b"k", sort_order="up"), ValueError,
     "sort_order must be one of NONE, ASCEND, DESCEND, got 'up'"),
    (lambda: compact_request("5"), TypeError, "revision must be an int, not str"),
    (lambda: lease_grant_request("5"), TypeError, "ttl must be an int, not str"),
    (lambda: lease_grant_request(5, "1"), TypeError, "lease_id must be an int, not str"),
    (lambda: lease_revoke_request("1"), TypeError, "lease_id must be an int, not str"),
    (lambda: lease_ttl_request("1"), TypeError, "lease_id must be an int, not str"),
])
def test_refusals_name_the_argument(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as refused:
        call()
    assert str(refused.value) == message


def test_a_delete_body_asks_for_previous_values_only_when_told() -> None:
    assert delete_body(b"k") == {"key": "aw=="}


def test_a_request_over_etcd_s_limit_names_the_limit_and_its_flag() -> None:
    check_size(100, 100)
    with pytest.raises(RequestTooLarge) as refused:
        check_size(101, 100)
    assert str(refused.value) == ("request is too large: about 101 bytes, etcd's limit is 100 "
                                  "bytes (--max-request-bytes) (gRPC code 3)")
