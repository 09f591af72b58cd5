"""Authentication and the user/role administration of etcd's auth service."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import errors as e
from ..errors import ProtocolError
from .encoding import b64, get_bool, get_bytes, get_int
from .keyset import KeySet, as_keyset
from .requests import Request
from .results import Header, parse_header

__all__ = [
    "AUTH_STATUS_PATH",
    "AuthResult",
    "AuthStatus",
    "Permission",
    "RoleInfo",
    "RolePermission",
    "UserInfo",
    "auth_disable_request",
    "auth_enable_request",
    "auth_probe_request",
    "auth_status_request",
    "authenticate_request",
    "parse_auth_probe_error",
    "parse_names",
    "parse_role_get",
    "parse_user_get",
    "role_add_request",
    "role_delete_request",
    "role_get_request",
    "role_grant_permission_request",
    "role_list_request",
    "role_revoke_permission_request",
    "user_add_request",
    "user_change_password_request",
    "user_delete_request",
    "user_get_request",
    "user_grant_role_request",
    "user_list_request",
    "user_revoke_role_request",
]


class Permission(enum.Enum):
    """What a role may do with a key range: read, write, or both."""

    READ = "READ"
    WRITE = "WRITE"
    READWRITE = "READWRITE"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """A successful login: ``token`` goes in the Authorization header of later requests."""

    header: Header
    token: str


def _parse_auth(obj: Mapping[str, Any]) -> AuthResult:
    token = obj.get("token")
    if not isinstance(token, str) or not token:
        raise ProtocolError("authenticate answered without a token")
    return AuthResult(header=parse_header(obj), token=token)


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


def authenticate_request(user: str, password: str) -> Request[AuthResult]:
    """An ``/auth/authenticate`` call that logs ``user`` in with ``password``.

    Raises ``TypeError``/``ValueError`` for a non-str or empty user or password; etcd's answer
    to wrong credentials is :class:`AuthenticationFailed`.
    """
    body = {"name": _name(user, "user"), "password": _name(password, "password")}
    return Request("/auth/authenticate", body, _parse_auth, idempotent=True)


def auth_enable_request() -> Request[Header]:
    """An ``/auth/enable`` call turning authentication on (etcd needs a root user first)."""
    # Not idempotent: a member that hung applies a copy it buffered late, after
    # later changes: resent elsewhere, that copy would undo them.
    return Request("/auth/enable", {}, parse_header, idempotent=False)


def auth_disable_request() -> Request[Header]:
    """An ``/auth/disable`` call turning authentication off."""
    # Not idempotent (a late disable turns auth off again): see auth_enable_request.
    return Request("/auth/disable", {}, parse_header, idempotent=False)


def user_add_request(user: str, password: str) -> Request[Header]:
    """An ``/auth/user/add`` call creating ``user`` with ``password``; not resent on an unknown
    outcome. Raises ``TypeError``/``ValueError`` for a non-str or empty user or password.
    """
    body = {"name": _name(user, "user"), "password": _name(password, "password")}
    return Request("/auth/user/add", body, parse_header, idempotent=False)


def role_add_request(role: str) -> Request[Header]:
    """An ``/auth/role/add`` call creating ``role``; not resent on an unknown outcome."""
    return Request("/auth/role/add", {"name": _name(role, "role")}, parse_header,
                   idempotent=False)


def user_grant_role_request(user: str, role: str) -> Request[Header]:
    """An ``/auth/user/grant`` call giving ``user`` the role ``role``."""
    body = {"user": _name(user, "user"), "role": _name(role, "role")}
    # Not idempotent (a late grant undoes a revoke): see auth_enable_request.
    return Request("/auth/user/grant", body, parse_header, idempotent=False)


def _key_range(keys: bytes | KeySet) -> dict[str, Any]:
    key, range_end = as_keyset(keys).resolve()
    fields: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        fields["range_end"] = b64(range_end)
    return fields


def role_grant_permission_request(role: str, keys: bytes | KeySet,
                                  permission: Permission | str) -> Request[Header]:
    """An ``/auth/role/grant`` call letting ``role`` use ``keys`` (a key or :class:`KeySet`) with
    ``permission`` (a :class:`Permission` or its name).

    Raises ``TypeError``/``ValueError`` for a bad role, key or permission.
    """
    perm = _key_range(keys)
    if isinstance(permission, str):
        try:
            permission = Permission[permission.upper()]
        except KeyError:
            raise ValueError(f"permission must be READ, WRITE or READWRITE: {permission!r}")\
                from None
    if not isinstance(permission, Permission):
        raise TypeError(f"permission must be a Permission, not {type(permission).__name__}")
    perm["permType"] = permission.value
    body = {"name": _name(role, "role"), "perm": perm}
    # Not idempotent (a late grant undoes a revoke): see auth_enable_request.
    return Request("/auth/role/grant", body, parse_header, idempotent=False)


# -- the rest of the administration set ---------------------------------------


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user's roles."""

    header: Header
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RolePermission:
    """A permission of a role: ``range_end`` is ``b""`` for one key (etcd's
    ``"\\0"`` end, meaning every key from ``key`` on, is kept as it came)."""

    permission: Permission
    key: bytes
    range_end: bytes


@dataclass(frozen=True, slots=True)
class RoleInfo:
    """A role's permissions."""

    header: Header
    permissions: tuple[RolePermission, ...]


@dataclass(frozen=True, slots=True)
class AuthStatus:
    """Whether authentication is on. ``auth_revision`` is 0 when the member
    could not say (etcd 3.4's gateway has no AuthStatus: see :func:`auth_probe_request`)."""

    header: Header
    enabled: bool
    auth_revision: int


def _strings(obj: Mapping[str, Any], name: str) -> tuple[str, ...]:
    raw = obj.get(name)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ProtocolError(f"field {name!r} should be a list of strings, got {raw!r}")
    return tuple(raw)


def parse_user_get(obj: Mapping[str, Any]) -> UserInfo:
    """An AuthUserGetResponse. Raises :class:`ProtocolError` for a malformed one."""
    return UserInfo(header=parse_header(obj), roles=_strings(obj, "roles"))


def parse_names(field: str) -> Callable[[Mapping[str, Any]], tuple[str, ...]]:
    """A parser of the ``users`` or ``roles`` list answers."""
    def parse(obj: Mapping[str, Any]) -> tuple[str, ...]:
        return _strings(obj, field)
    return parse


def parse_role_get(obj: Mapping[str, Any]) -> RoleInfo:
    """An AuthRoleGetResponse (a missing permission type is READ, etcd's zero value).

    Raises :class:`ProtocolError` for a malformed answer or an unknown permission type.
    """
    raw = obj.get("perm") or []
    if not isinstance(raw, list):
        raise ProtocolError(f"perm should be a JSON array, got {raw!r}")
    perms = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise ProtocolError(f"a permission should be a JSON object, got {item!r}")
        # READ is the enum's zero value, which the gateway leaves out.
        name = item.get("permType", "READ")
        try:
            kind = Permission[name] if isinstance(name, str) else None
        except KeyError:
            kind = None
        if kind is None:
            raise ProtocolError(f"unknown permission type {name!r}")
        perms.append(RolePermission(permission=kind, key=get_bytes(item, "key"),
                                    range_end=get_bytes(item, "range_end")))
    return RoleInfo(header=parse_header(obj), permissions=tuple(perms))


def user_get_request(user: str) -> Request[UserInfo]:
    """An ``/auth/user/get`` call for the roles of ``user``."""
    return Request("/auth/user/get", {"name": _name(user, "user")}, parse_user_get,
                   idempotent=True)


def user_list_request() -> Request[tuple[str, ...]]:
    """An ``/auth/user/list`` call for the names of every user."""
    return Request("/auth/user/list", {}, parse_names("users"), idempotent=True)


def user_delete_request(user: str) -> Request[Header]:
    """An ``/auth/user/delete`` call removing ``user``; not resent on an unknown outcome."""
    return Request("/auth/user/delete", {"name": _name(user, "user")}, parse_header,
                   idempotent=False)


def user_change_password_request(user: str, password: str) -> Request[Header]:
    """An ``/auth/user/changepw`` call setting ``user``'s password to ``password``."""
    body = {"name": _name(user, "user"), "password": _name(password, "password")}
    # Not idempotent (a late change restores an older password): see auth_enable_request.
    return Request("/auth/user/changepw", body, parse_header, idempotent=False)


def user_revoke_role_request(user: str, role: str) -> Request[Header]:
    """An ``/auth/user/revoke`` call taking the role ``role`` from ``user``; not resent on an
    unknown outcome.
    """
    body = {"name": _name(user, "user"), "role": _name(role, "role")}
    return Request("/auth/user/revoke", body, parse_header, idempotent=False)


def role_get_request(role: str) -> Request[RoleInfo]:
    """An ``/auth/role/get`` call for the permissions of ``role``."""
    return Request("/auth/role/get", {"role": _name(role, "role")}, parse_role_get,
                   idempotent=True)


def role_list_request() -> Request[tuple[str, ...]]:
    """An ``/auth/role/list`` call for the names of every role."""
    return Request("/auth/role/list", {}, parse_names("roles"), idempotent=True)


def role_delete_request(role: str) -> Request[Header]:
    """An ``/auth/role/delete`` call removing ``role``; not resent on an unknown outcome."""
    return Request("/auth/role/delete", {"role": _name(role, "role")}, parse_header,
                   idempotent=False)


def role_revoke_permission_request(role: str, keys: bytes | KeySet) -> Request[Header]:
    """An ``/auth/role/revoke`` call taking ``role``'s permission on exactly ``keys`` away; not
    resent on an unknown outcome.
    """
    body = {"role": _name(role, "role"), **_key_range(keys)}
    return Request("/auth/role/revoke", body, parse_header, idempotent=False)


#: AuthStatus exists from etcd 3.5 on; 3.4's gateway answers 404 Not Found.
AUTH_STATUS_PATH = "/auth/status"


def _parse_auth_status(obj: Mapping[str, Any]) -> AuthStatus:
    return AuthStatus(header=parse_header(obj), enabled=get_bool(obj, "enabled"),
                      auth_revision=get_int(obj, "authRevision"))


def auth_status_request() -> Request[AuthStatus]:
    """An ``/auth/status`` call: whether auth is enabled (etcd 3.5+; 3.4 answers 404)."""
    return Request(AUTH_STATUS_PATH, {}, _parse_auth_status, idempotent=True)


#: a user nobody creates, so authenticating as it fails either way, and why it
#: fails tells whether auth is on
_PROBE_USER = "etcdwamp-auth-probe"


def auth_probe_request() -> Request[AuthResult]:
    """Authenticate as a user that cannot exist, for etcd 3.4, which has no
    AuthStatus: the answer is always an error, and :func:`parse_auth_probe_error`
    reads the status from it."""
    return Request("/auth/authenticate", {"name": _PROBE_USER, "password": "x"}, _parse_auth,
                   idempotent=True)


def parse_auth_probe_error(error: e.ServerError) -> bool | None:
    """Whether auth is enabled, judged from the error of :func:`auth_probe_request`
    (None: the error says neither)."""
    if "authentication is not enabled" in error.message:
        return False
    if isinstance(error, e.AuthenticationFailed):
        return True
    return None
