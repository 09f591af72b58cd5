"""Lease keep-alive, lock and election requests as etcd receives them (path,
exact JSON, size, whether a call may be re-sent after an open outcome), the
refusals of bad arguments before anything is sent, and how answers and stream
frames are read, error frames and malformed ones included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from wire_headers import HEADER, PARSED_HEADER

from etcdwamp import errors as e
from etcdwamp.wire import Request
from etcdwamp.wire.concurrency import (
    LeaderKey,
    LeaseKeepAliveResult,
    LockResult,
    campaign_request,
    leader_request,
    lease_keepalive_request,
    lock_request,
    observe_body,
    parse_leader_frame,
    proclaim_request,
    resign_request,
    unlock_request,
)

LEADER = LeaderKey(name=b"elect", key=b"elect/694d", rev=2**62, lease=7)
LEADER_JSON = {"name": "ZWxlY3Q=", "key": "ZWxlY3QvNjk0ZA==", "rev": str(2**62), "lease": "7"}
KV = {"key": "ZWxlY3QvNjk0ZA==", "value": "bm9kZS0x", "create_revision": "5",
      "mod_revision": "6", "version": "2", "lease": "7"}


def sent(req: Request[Any]) -> tuple[str, dict[str, Any], bool]:
    """What goes to etcd: the path, the JSON body, whether it may be re-sent."""
    return req.path, dict(req.body), req.idempotent


# -- requests ---------------------------------------------------------------------


@pytest.mark.parametrize(("req", "path", "body", "idempotent"), [
    (lambda: lease_keepalive_request(2**63 - 1), "/lease/keepalive",
     {"ID": "9223372036854775807"}, True),
    (lambda: lock_request(b"lk", 1), "/lock/lock", {"name": "bGs=", "lease": "1"}, False),
    (lambda: unlock_request(b"lk/694d"), "/lock/unlock", {"key": "bGsvNjk0ZA=="}, True),
    (lambda: campaign_request(b"elect", 7, b"node-1"), "/election/campaign",
     {"name": "ZWxlY3Q=", "lease": "7", "value": "bm9kZS0x"}, False),
    (lambda: campaign_request(b"elect", 7, b""), "/election/campaign",
     {"name": "ZWxlY3Q=", "lease": "7", "value": ""}, False),
    (lambda: proclaim_request(LEADER, b"node-2"), "/election/proclaim",
     {"leader": LEADER_JSON, "value": "bm9kZS0y"}, False),
    (lambda: leader_request(b"elect"), "/election/leader", {"name": "ZWxlY3Q="}, True),
    (lambda: resign_request(LEADER), "/election/resign", {"leader": LEADER_JSON}, True),
])
def test_each_call_sends_its_path_and_body_and_is_resent_only_when_harmless(
        req: Callable[[], Request[Any]], path: str, body: dict[str, Any],
        idempotent: bool) -> None:
    """A second lock or campaign would queue a second waiter, a late proclaim
    replaces a newer value; a keep-alive, an unlock, a resign or a read do no harm twice."""
    assert sent(req()) == (path, body, idempotent)


def test_observe_asks_for_the_election_by_name() -> None:
    assert observe_body(b"elect") == {"name": "ZWxlY3Q="}
    assert observe_body(bytearray(b"\0\xff")) == {"name": "AP8="}


def test_a_leadership_travels_with_64_bit_numbers_as_strings() -> None:
    assert LEADER.to_json() == LEADER_JSON
    assert LeaderKey(b"", b"", 0, 0).to_json() == {"name": "", "key": "", "rev": "0",
                                                  "lease": "0"}


def test_sizes_count_the_name_and_value_sent() -> None:
    """The size compared with etcd's --max-request-bytes before sending."""
    assert lock_request(b"x" * 10, 1).size == 10 + 64
    assert campaign_request(b"x" * 10, 1, b"v" * 1000).size == 10 + 1000 + 64
    assert proclaim_request(LEADER, b"v" * 1000).size == 1000 + 64


@pytest.mark.parametrize("call", [
    lambda name: lock_request(name, 1),
    lambda name: campaign_request(name, 1, b"v"),
    leader_request,
    observe_body,
])
def test_a_lock_or_election_name_is_non_empty_bytes(call: Callable[[Any], Any]) -> None:
    with pytest.raises(ValueError, match=r"^lock/election name must not be empty$"):
        call(b"")
    with pytest.raises(TypeError, match=r"^name must be bytes, not str"):
        call("elect")
    with pytest.raises(TypeError, match=r"^name must be bytes, not int$"):
        call(5)


@pytest.mark.parametrize("call", [
    lease_keepalive_request,
    lambda lease: lock_request(b"lk", lease),
    lambda lease: campaign_request(b"elect", lease, b"v"),
])
def test_a_lease_id_is_at_least_1(call: Callable[[Any], Request[Any]]) -> None:
    assert "1" in call(1).body.values()
    for bad in (0, -5):
        with pytest.raises(ValueError, match=rf"^lease_id must be between 1 and "
                                             rf"{2**63 - 1}, got {bad}$"):
            call(bad)
    with pytest.raises(ValueError, match="lease_id"):
        call(2**63)
    with pytest.raises(TypeError, match=r"^lease_id must be an int, not str$"):
        call("7")


def test_values_and_holder_keys_must_be_bytes() -> None:
    with pytest.raises(TypeError, match=r"^value must be bytes"):
        campaign_request(b"elect", 1, "node-1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^value must be bytes"):
        proclaim_request(LEADER, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^key must be bytes"):
        unlock_request("lk/1")  # type: ignore[arg-type]


# -- answers ----------------------------------------------------------------------


def test_a_keep_alive_answer_in_either_shape() -> None:
    """The gateway streams ``{"result": ...}``; a plain answer is read the same."""
    parse = lease_keepalive_request(7).parse
    body = {"header": HEADER, "ID": "7", "TTL": "30"}
    assert parse({"result": body}) == LeaseKeepAliveResult(PARSED_HEADER, id=7, ttl=30)
    assert parse(body) == LeaseKeepAliveResult(PARSED_HEADER, id=7, ttl=30)
    # a lease that is gone: TTL left out as the zero value
    assert parse({"result": {"header": HEADER, "ID": "7"}}).ttl == 0


def test_a_keep_alive_error_frame_raises_the_typed_error() -> None:
    parse = lease_keepalive_request(7).parse
    frame = {"error": {"grpc_code": 5, "http_code": 404,
                       "message": "etcdserver: requested lease not found"}}
    with pytest.raises(e.LeaseNotFound) as info:
        parse(frame)
    assert info.value.http_status == 404 and "lease not found" in info.value.message
    with pytest.raises(e.ProtocolError, match=r"^expected a result object, got 'x'$"):
        parse({"result": "x"})


def test_lock_answers_the_holder_key() -> None:
    assert lock_request(b"lk", 1).parse({"header": HEADER, "key": "bGsvNjk0ZA=="}) == \
        LockResult(PARSED_HEADER, key=b"lk/694d")
    assert unlock_request(b"lk/694d").parse({"header": HEADER}) == PARSED_HEADER


def test_a_campaign_answers_the_leadership() -> None:
    parse = campaign_request(b"elect", 7, b"v").parse
    assert parse({"header": HEADER, "leader": LEADER_JSON}) == LEADER
    assert parse({"leader": {"name": "ZWxlY3Q=", "rev": 9}}) == LeaderKey(b"elect", b"", 9, 0)
    for bad in (None, "ZWxlY3Q=", ["x"]):
        with pytest.raises(e.ProtocolError, match=rf"^leader should be an object, got {bad!r}$"
                           .replace("[", r"\[")):
            parse({"leader": bad})


@pytest.mark.parametrize("req", [
    lambda: proclaim_request(LEADER, b"v"), lambda: resign_request(LEADER),
])
def test_proclaim_and_resign_answer_their_header(req: Callable[[], Request[Any]]) -> None:
    assert req().parse({"header": HEADER}) == PARSED_HEADER


def test_the_leader_answer_and_an_observe_frame_are_the_leader_s_key_value() -> None:
    for kv in (leader_request(b"elect").parse({"header": HEADER, "kv": KV}),
               parse_leader_frame({"result": {"header": HEADER, "kv": KV}}),
               parse_leader_frame({"kv": KV})):
        assert (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease) \
            == (b"elect/694d", b"node-1", 5, 6, 2, 7)


@pytest.mark.parametrize("answer", [{}, {"kv": None}, {"kv": "x"}])
def test_a_leader_answer_without_a_key_value_is_a_protocol_error(answer: dict[str, Any]) -> None:
    message = rf"^leader answer without kv: {answer!r}$".replace("{", r"\{").replace("}", r"\}")
    with pytest.raises(e.ProtocolError, match=message):
        leader_request(b"elect").parse(answer)
    with pytest.raises(e.ProtocolError, match="leader answer without kv"):
        parse_leader_frame({"result": answer})


def test_an_observe_error_frame_raises_the_typed_error() -> None:
    """etcd ends an observe stream with an error frame, e.g. when it has no leader."""
    frame = {"error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader"}}
    with pytest.raises(e.Unavailable) as info:
        parse_leader_frame(frame)
    assert info.value.http_status == 503 and info.value.message == "etcdserver: no leader"
    with pytest.raises(e.ProtocolError, match=r"^expected a result object, got \[\]$"):
        parse_leader_frame({"result": []})
