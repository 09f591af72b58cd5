"""Cluster membership requests as etcd receives them (path, exact JSON, whether
a call may be re-sent after an open outcome), the refusals of bad ids and URLs
before anything is sent, and how member lists are read, malformed ones included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from wire_headers import HEADER, PARSED_HEADER

from etcdwamp import errors as e
from etcdwamp.wire import Request
from etcdwamp.wire.cluster import (
    Member,
    MemberAddResult,
    MemberListResult,
    member_add_request,
    member_id,
    member_list_request,
    member_promote_request,
    member_remove_request,
    member_update_request,
    parse_member,
    parse_member_add,
    parse_member_list,
    peer_urls,
)

BIG_ID = 2**64 - 1  # member ids are uint64: the largest must travel exactly


def sent(req: Request[Any]) -> tuple[str, dict[str, Any], bool]:
    """What goes to etcd: the path, the JSON body, whether it may be re-sent."""
    return req.path, dict(req.body), req.idempotent


def member(id_: int, name: str = "", peers: tuple[str, ...] = (),
           clients: tuple[str, ...] = (), learner: bool = False) -> Member:
    return Member(id=id_, name=name, peer_urls=peers, client_urls=clients, is_learner=learner)


# -- requests ---------------------------------------------------------------------


@pytest.mark.parametrize(("req", "path", "body", "idempotent"), [
    (member_list_request, "/cluster/member/list", {}, True),
    (lambda: member_list_request(linearizable=False), "/cluster/member/list", {}, True),
    (lambda: member_list_request(linearizable=True), "/cluster/member/list",
     {"linearizable": True}, True),
    (lambda: member_add_request(["http://127.0.0.1:2380"]), "/cluster/member/add",
     {"peerURLs": ["http://127.0.0.1:2380"]}, False),
    (lambda: member_add_request(["https://a.test:1", "http://b.test:2"], learner=True),
     "/cluster/member/add", {"peerURLs": ["https://a.test:1", "http://b.test:2"],
                             "isLearner": True}, False),
    (lambda: member_add_request(("http://127.0.0.1:2380",), learner=False),
     "/cluster/member/add", {"peerURLs": ["http://127.0.0.1:2380"]}, False),
    (lambda: member_remove_request(BIG_ID), "/cluster/member/remove",
     {"ID": "18446744073709551615"}, False),
    (lambda: member_update_request(1, ["http://127.0.0.1:2"]), "/cluster/member/update",
     {"ID": "1", "peerURLs": ["http://127.0.0.1:2"]}, False),
    (lambda: member_promote_request(0x1234), "/cluster/member/promote", {"ID": "4660"}, False),
])
def test_each_call_sends_its_path_and_body_and_only_the_list_is_resent(
        req: Callable[[], Request[Any]], path: str, body: dict[str, Any],
        idempotent: bool) -> None:
    """Adding twice adds a second member or fails, a late update restores older
    peer URLs: only the list is safe to send to another member after an open outcome."""
    assert sent(req()) == (path, body, idempotent)


@pytest.mark.parametrize("call", [
    member_remove_request, member_promote_request,
    lambda m: member_update_request(m, ["http://127.0.0.1:2"]),
])
def test_a_member_id_is_a_positive_uint64(call: Callable[[Any], Request[Any]]) -> None:
    assert call(1).body["ID"] == "1"
    assert call(BIG_ID).body["ID"] == str(BIG_ID)
    for bad in (0, -1, BIG_ID + 1):
        with pytest.raises(ValueError, match=rf"^member_id must be between 1 and {BIG_ID}, "
                                             rf"got {bad}$"):
            call(bad)
    for bad_type in ("1", True, 1.0):
        with pytest.raises(TypeError, match=r"^member_id must be an int"):
            call(bad_type)
    assert member_id(BIG_ID) == BIG_ID


def test_member_add_takes_only_a_bool_learner() -> None:
    with pytest.raises(TypeError, match=r"^learner must be a bool, not int$"):
        member_add_request(["http://127.0.0.1:1"], learner=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^learner must be a bool, not str$"):
        member_add_request(["http://127.0.0.1:1"], learner="no")  # type: ignore[arg-type]


@pytest.mark.parametrize("call", [
    member_add_request, lambda urls: member_update_request(7, urls), peer_urls,
])
def test_peer_urls_are_a_non_empty_list_of_http_urls_with_host_and_port(
        call: Callable[[Any], Any]) -> None:
    with pytest.raises(TypeError, match=r"^peer_urls must be a list of URLs, not one str$"):
        call("http://127.0.0.1:1")
    with pytest.raises(TypeError, match=r"^peer URLs must be str, not bytes$"):
        call([b"http://127.0.0.1:1"])
    with pytest.raises(ValueError, match=r"^give at least one peer URL$"):
        call([])
    for bad in ("127.0.0.1:1", "ftp://127.0.0.1:1", "unix://127.0.0.1:1", "http://:1",
                "http://127.0.0.1", "https://host.test",
                "HTTP2://127.0.0.1:1"):
        with pytest.raises(ValueError, match=r"^a peer URL is scheme://host:port "
                                             r"\(http or https\): "):
            call(["http://127.0.0.1:1", bad])
    assert peer_urls(("http://127.0.0.1:1", "https://[::1]:2")) == \
        ["http://127.0.0.1:1", "https://[::1]:2"]


# -- answers ----------------------------------------------------------------------


def test_a_member_list_reads_every_field_of_every_member() -> None:
    answer = {"header": HEADER, "members": [
        {"ID": "18446744073709551615", "name": "m0", "peerURLs": ["http://p0:1"],
         "clientURLs": ["http://c0:1", "http://c0:2"]},
        {"ID": "5", "peerURLs": ["http://p1:1", "http://p1:2"], "isLearner": True},
        {"ID": 6, "name": "m2", "clientURLs": ["http://c2:1"], "isLearner": False},
    ]}
    result = member_list_request().parse(answer)
    assert result == MemberListResult(header=PARSED_HEADER, members=(
        member(BIG_ID, "m0", ("http://p0:1",), ("http://c0:1", "http://c0:2")),
        member(5, "", ("http://p1:1", "http://p1:2"), (), learner=True),
        member(6, "m2", (), ("http://c2:1",)),
    ))
    assert [m.started for m in result.members] == [True, False, True]
    # the client URLs of the started members, in member order
    assert result.client_urls() == ("http://c0:1", "http://c0:2", "http://c2:1")
    assert parse_member_list({"header": HEADER}) == MemberListResult(PARSED_HEADER, ())
    assert parse_member_list({"members": []}).client_urls() == ()


@pytest.mark.parametrize("req", [
    lambda: member_remove_request(1), lambda: member_promote_request(1),
    lambda: member_update_request(1, ["http://a:1"]),
])
def test_remove_update_and_promote_answer_with_the_member_list(
        req: Callable[[], Request[Any]]) -> None:
    answer = {"header": HEADER, "members": [{"ID": "9", "name": "m", "peerURLs": ["http://a:1"]}]}
    assert req().parse(answer) == MemberListResult(PARSED_HEADER, (member(9, "m", ("http://a:1",)),))


@pytest.mark.parametrize(("answer", "message"), [
    ({"members": {"ID": "1"}}, r"^members should be a JSON array, got \{'ID': '1'\}$"),
    ({"members": "m0"}, r"^members should be a JSON array, got 'm0'$"),
    ({"members": ["m0"]}, r"^a member should be a JSON object, got 'm0'$"),
    ({"members": [{"ID": "1", "name": 7}]}, r"^member name should be a string, got 7$"),
    ({"members": [{"ID": "1", "name": None}]}, r"^member name should be a string, got None$"),
    ({"members": [{"ID": "1", "peerURLs": "http://a:1"}]},
     r"^field 'peerURLs' should be a list of strings, got 'http://a:1'$"),
    ({"members": [{"ID": "1", "clientURLs": [1]}]},
     r"^field 'clientURLs' should be a list of strings, got \[1\]$"),
    ({"members": [{"ID": "1", "isLearner": "true"}]}, r"'isLearner' should be a boolean"),
    ({"members": [{"ID": "x"}]}, r"'ID'"),
])
def test_a_malformed_member_list_is_a_protocol_error(answer: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(e.ProtocolError, match=message):
        parse_member_list(answer)


def test_member_add_answers_the_new_member_and_the_list() -> None:
    new = {"ID": "5", "peerURLs": ["http://new:1"], "isLearner": True}
    answer = {"header": HEADER, "member": new, "members": [
        {"ID": "3", "name": "m0", "peerURLs": ["http://old:1"], "clientURLs": ["http://c:1"]},
        new,
    ]}
    result = member_add_request(["http://new:1"]).parse(answer)
    added = member(5, "", ("http://new:1",), (), learner=True)
    assert result == MemberAddResult(header=PARSED_HEADER, member=added, members=(
        member(3, "m0", ("http://old:1",), ("http://c:1",)), added))
    assert parse_member_add({"member": new}).members == ()


@pytest.mark.parametrize("answer", [{}, {"member": None}, {"member": ["5"]},
                                    {"member": "5", "members": []}])
def test_member_add_without_the_new_member_is_a_protocol_error(answer: dict[str, Any]) -> None:
    with pytest.raises(e.ProtocolError, match=r"^member add answered without the new member$"):
        parse_member_add(answer)


def test_the_initial_cluster_of_a_new_member() -> None:
    """Every started member's peer URLs under its name, the new member's under the
    name it will start with; a member added earlier but never started is left out."""
    new = member(5, "", ("http://new:1", "http://new:2"), learner=True)
    result = MemberAddResult(PARSED_HEADER, new, (
        member(3, "m0", ("http://a:1",), ("http://c:1",)),
        member(4, "", ("http://never:1",)),
        new,
        member(6, "m2", ("http://b:1", "http://b:2")),
    ))
    assert result.initial_cluster("m9") == (
        "m0=http://a:1,m9=http://new:1,m9=http://new:2,m2=http://b:1,m2=http://b:2")
    assert MemberAddResult(PARSED_HEADER, new, (new,)).initial_cluster("solo") == \
        "solo=http://new:1,solo=http://new:2"


def test_parse_member_refuses_what_is_not_an_object() -> None:
    with pytest.raises(e.ProtocolError, match=r"^a member should be a JSON object, got None$"):
        parse_member(None)
    assert parse_member({}) == member(0)
