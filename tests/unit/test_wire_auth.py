"""Auth requests as etcd receives them (path, exact JSON, whether a call may be
re-sent after an open outcome), the refusals of bad arguments before anything
is sent, and how the answers are read, malformed ones included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from wire_headers import HEADER, PARSED_HEADER

from etcdwamp import errors as e
from etcdwamp.wire import KeySet, Request
from etcdwamp.wire.auth import (
    AUTH_STATUS_PATH,
    AuthResult,
    AuthStatus,
    Permission,
    RoleInfo,
    RolePermission,
    UserInfo,
    auth_disable_request,
    auth_enable_request,
    auth_probe_request,
    auth_status_request,
    authenticate_request,
    parse_auth_probe_error,
    parse_names,
    parse_role_get,
    parse_user_get,
    role_add_request,
    role_delete_request,
    role_get_request,
    role_grant_permission_request,
    role_list_request,
    role_revoke_permission_request,
    user_add_request,
    user_change_password_request,
    user_delete_request,
    user_get_request,
    user_grant_role_request,
    user_list_request,
    user_revoke_role_request,
)


def sent(req: Request[Any]) -> tuple[str, dict[str, Any], bool]:
    """What goes to etcd: the path, the JSON body, whether it may be re-sent."""
    return req.path, dict(req.body), req.idempotent


# -- requests ---------------------------------------------------------------------


@pytest.mark.parametrize(("req", "path", "body", "idempotent"), [
    (lambda: authenticate_request("alice", "pw"), "/auth/authenticate",
     {"name": "alice", "password": "pw"}, True),
    (auth_enable_request, "/auth/enable", {}, False),
    (auth_disable_request, "/auth/disable", {}, False),
    (lambda: user_add_request("alice", "pw"), "/auth/user/add",
     {"name": "alice", "password": "pw"}, False),
    (lambda: role_add_request("reader"), "/auth/role/add", {"name": "reader"}, False),
    (lambda: user_grant_role_request("alice", "reader"), "/auth/user/grant",
     {"user": "alice", "role": "reader"}, False),
    (lambda: user_get_request("alice"), "/auth/user/get", {"name": "alice"}, True),
    (user_list_request, "/auth/user/list", {}, True),
    (lambda: user_delete_request("alice"), "/auth/user/delete", {"name": "alice"}, False),
    (lambda: user_change_password_request("alice", "new"), "/auth/user/changepw",
     {"name": "alice", "password": "new"}, False),
    (lambda: user_revoke_role_request("alice", "reader"), "/auth/user/revoke",
     {"name": "alice", "role": "reader"}, False),
    (lambda: role_get_request("reader"), "/auth/role/get", {"role": "reader"}, True),
    (role_list_request, "/auth/role/list", {}, True),
    (lambda: role_delete_request("reader"), "/auth/role/delete", {"role": "reader"}, False),
    (auth_status_request, "/auth/status", {}, True),
    (auth_probe_request, "/auth/authenticate",
     {"name": "etcdwamp-auth-probe", "password": "x"}, True),
])
def test_each_call_sends_its_path_and_body_and_only_reads_are_resent(
        req: Callable[[], Request[Any]], path: str, body: dict[str, Any],
        idempotent: bool) -> None:
    """Reads (and a login) may go to the next member after an open outcome; a
    change may not: a member that hung applies its copy late and undoes later
    changes (a late grant undoes a revoke, a late disable turns auth off again)."""
    assert sent(req()) == (path, body, idempotent)
    assert AUTH_STATUS_PATH == "/auth/status"


@pytest.mark.parametrize(("keys", "fields"), [
    (b"one", {"key": "b25l"}),
    (KeySet(b"app/", prefix=True), {"key": "YXBwLw==", "range_end": "YXBwMA=="}),
    (KeySet(b"a", range_end=b"b"), {"key": "YQ==", "range_end": "Yg=="}),
    (KeySet.all(), {"key": "AA==", "range_end": "AA=="}),
])
def test_permissions_are_granted_and_revoked_on_exactly_the_keys_given(
        keys: bytes | KeySet, fields: dict[str, str]) -> None:
    grant = role_grant_permission_request("reader", keys, Permission.WRITE)
    assert sent(grant) == ("/auth/role/grant",
                           {"name": "reader", "perm": {**fields, "permType": "WRITE"}}, False)
    revoke = role_revoke_permission_request("reader", keys)
    assert sent(revoke) == ("/auth/role/revoke", {"role": "reader", **fields}, False)


@pytest.mark.parametrize(("permission", "sent_as"), [
    ("read", "READ"), ("Write", "WRITE"), ("READWRITE", "READWRITE"),
    (Permission.READ, "READ"), (Permission.READWRITE, "READWRITE"),
])
def test_a_permission_is_given_by_member_or_by_name_in_any_case(
        permission: Permission | str, sent_as: str) -> None:
    body = role_grant_permission_request("r", b"k", permission).body
    assert body["perm"]["permType"] == sent_as


def test_a_bad_permission_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match=r"^permission must be READ, WRITE or READWRITE: "
                                         r"'delete'$") as info:
        role_grant_permission_request("r", b"k", "delete")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(TypeError, match=r"^permission must be a Permission, not int$"):
        role_grant_permission_request("r", b"k", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        role_grant_permission_request("r", "k", "read")  # type: ignore[arg-type]


@pytest.mark.parametrize("call", [
    lambda user, password: authenticate_request(user, password),
    lambda user, password: user_add_request(user, password),
    lambda user, password: user_change_password_request(user, password),
])
def test_users_and_passwords_must_be_non_empty_str(
        call: Callable[[Any, Any], Request[Any]]) -> None:
    with pytest.raises(ValueError, match=r"^user must not be empty$"):
        call("", "pw")
    with pytest.raises(ValueError, match=r"^password must not be empty$"):
        call("alice", "")
    with pytest.raises(TypeError, match=r"^user must be a str, not bytes$"):
        call(b"alice", "pw")
    with pytest.raises(TypeError, match=r"^password must be a str, not NoneType$"):
        call("alice", None)


@pytest.mark.parametrize(("call", "what"), [
    (lambda name: role_add_request(name), "role"),
    (lambda name: role_get_request(name), "role"),
    (lambda name: role_delete_request(name), "role"),
    (lambda name: role_grant_permission_request(name, b"k", "read"), "role"),
    (lambda name: role_revoke_permission_request(name, b"k"), "role"),
    (lambda name: user_grant_role_request("alice", name), "role"),
    (lambda name: user_revoke_role_request("alice", name), "role"),
    (lambda name: user_grant_role_request(name, "reader"), "user"),
    (lambda name: user_revoke_role_request(name, "reader"), "user"),
    (lambda name: user_get_request(name), "user"),
    (lambda name: user_delete_request(name), "user"),
])
def test_user_and_role_names_must_be_non_empty_str(
        call: Callable[[Any], Request[Any]], what: str) -> None:
    with pytest.raises(ValueError, match=rf"^{what} must not be empty$"):
        call("")
    with pytest.raises(TypeError, match=rf"^{what} must be a str, not int$"):
        call(7)


# -- answers ----------------------------------------------------------------------


def test_a_login_answer_gives_the_token_and_header() -> None:
    parse = authenticate_request("alice", "pw").parse
    assert parse({"header": HEADER, "token": "tok.42"}) == \
        AuthResult(header=PARSED_HEADER, token="tok.42")
    # the probe reads a (never expected) success the same way
    assert auth_probe_request().parse({"token": "t"}).token == "t"


@pytest.mark.parametrize("answer", [{}, {"token": ""}, {"token": 5}, {"token": None}])
def test_a_login_answer_without_a_token_is_a_protocol_error(answer: dict[str, Any]) -> None:
    with pytest.raises(e.ProtocolError, match=r"^authenticate answered without a token$"):
        authenticate_request("alice", "pw").parse({"header": HEADER, **answer})


def test_auth_status_reads_enabled_and_the_auth_revision() -> None:
    parse = auth_status_request().parse
    assert parse({"header": HEADER, "enabled": True, "authRevision": "9"}) == \
        AuthStatus(header=PARSED_HEADER, enabled=True, auth_revision=9)
    # the gateway leaves out false and 0
    assert parse({"header": HEADER}) == AuthStatus(PARSED_HEADER, False, 0)
    with pytest.raises(e.ProtocolError, match="enabled"):
        parse({"enabled": "yes"})


def test_user_get_and_the_name_lists() -> None:
    assert user_get_request("a").parse({"header": HEADER, "roles": ["r1", "r2"]}) == \
        UserInfo(header=PARSED_HEADER, roles=("r1", "r2"))
    assert parse_user_get({"header": HEADER}).roles == ()  # a user without roles
    assert user_list_request().parse({"users": ["alice", "root"], "roles": ["x"]}) == \
        ("alice", "root")
    assert role_list_request().parse({"roles": ["reader"], "users": ["x"]}) == ("reader",)
    assert parse_names("users")({}) == ()


@pytest.mark.parametrize("raw", ["alice", [1], ["a", None], {"a": 1}])
def test_a_name_list_that_is_not_a_list_of_strings_is_a_protocol_error(raw: object) -> None:
    message = rf"^field 'roles' should be a list of strings, got {raw!r}$".replace("[", r"\[")
    with pytest.raises(e.ProtocolError, match=message):
        parse_user_get({"roles": raw})
    with pytest.raises(e.ProtocolError, match="'users'"):
        parse_names("users")({"users": raw})


def test_role_get_reads_each_permission() -> None:
    answer = {"header": HEADER, "perm": [
        {"key": "YXBwLw==", "range_end": "YXBwMA=="},  # READ, the zero value, left out
        {"key": "b25l", "permType": "WRITE"},
        {"key": "AA==", "range_end": "AA==", "permType": "READWRITE"},
        {"key": "eA==", "permType": "READ"},
    ]}
    assert role_get_request("r").parse(answer) == RoleInfo(header=PARSED_HEADER, permissions=(
        RolePermission(Permission.READ, b"app/", b"app0"),
        RolePermission(Permission.WRITE, b"one", b""),
        RolePermission(Permission.READWRITE, b"\0", b"\0"),
        RolePermission(Permission.READ, b"x", b""),
    ))
    assert parse_role_get({"header": HEADER}) == RoleInfo(PARSED_HEADER, ())
    assert parse_role_get({"perm": None}).permissions == ()


@pytest.mark.parametrize(("answer", "message"), [
    ({"perm": {"key": "YQ=="}}, r"^perm should be a JSON array, got \{'key': 'YQ=='\}$"),
    ({"perm": "YQ=="}, r"^perm should be a JSON array, got 'YQ=='$"),
    ({"perm": ["YQ=="]}, r"^a permission should be a JSON object, got 'YQ=='$"),
    ({"perm": [{"key": "YQ==", "permType": "DELETE"}]}, r"^unknown permission type 'DELETE'$"),
    ({"perm": [{"key": "YQ==", "permType": "read"}]}, r"^unknown permission type 'read'$"),
    ({"perm": [{"key": "YQ==", "permType": 1}]}, r"^unknown permission type 1$"),
    ({"perm": [{"key": "YQ==", "permType": None}]}, r"^unknown permission type None$"),
    # a list cannot even be looked up among the names: still a protocol error
    ({"perm": [{"key": "YQ==", "permType": ["READ"]}]},
     r"^unknown permission type \['READ'\]$"),
    ({"perm": [{"key": "***"}]}, r"'key' is not valid base64"),
    ({"perm": [{"key": "YQ==", "range_end": 5}]}, r"'range_end' should be a base64 string"),
])
def test_a_malformed_role_answer_is_a_protocol_error(answer: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(e.ProtocolError, match=message):
        parse_role_get(answer)


@pytest.mark.parametrize("req", [
    auth_enable_request, auth_disable_request,
    lambda: user_add_request("a", "p"), lambda: role_add_request("r"),
    lambda: user_grant_role_request("a", "r"),
    lambda: role_grant_permission_request("r", b"k", "read"),
    lambda: user_delete_request("a"), lambda: user_change_password_request("a", "p"),
    lambda: user_revoke_role_request("a", "r"), lambda: role_delete_request("r"),
    lambda: role_revoke_permission_request("r", b"k"),
])
def test_administration_answers_are_read_as_their_header(
        req: Callable[[], Request[Any]]) -> None:
    assert req().parse({"header": HEADER}) == PARSED_HEADER


# -- the auth probe of etcd 3.4 ------------------------------------------------------


@pytest.mark.parametrize(("error", "enabled"), [
    (e.FailedPrecondition("etcdserver: authentication is not enabled", http_status=412), False),
    (e.AuthenticationFailed("etcdserver: authentication failed, invalid user ID or password",
                            http_status=400), True),
    (e.InvalidArgument("etcdserver: invalid auth token", http_status=400), None),
    (e.Unavailable("etcdserver: leader changed", http_status=503), None),
])
def test_the_probe_error_tells_whether_auth_is_on(error: e.ServerError,
                                                   enabled: bool | None) -> None:
    assert parse_auth_probe_error(error) is enabled
