"""Authentication and the user/role administration of etcd's auth service."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError
from .encoding import b64
from .keyset import KeySet, as_keyset
from .requests import Request
from .results import Header, parse_header

__all__ = [
    "AuthResult",
    "Permission",
    "auth_disable_request",
    "auth_enable_request",
    "authenticate_request",
    "role_add_request",
    "role_grant_permission_request",
    "user_add_request",
    "user_grant_role_request",
]


class Permission(enum.Enum):
    READ = "READ"
    WRITE = "WRITE"
    READWRITE = "READWRITE"


@dataclass(frozen=True, slots=True)
class AuthResult:
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
    body = {"name": _name(user, "user"), "password": _name(password, "password")}
    return Request("/auth/authenticate", body, _parse_auth, idempotent=True)


def auth_enable_request() -> Request[Header]:
    return Request("/auth/enable", {}, parse_header, idempotent=True)


def auth_disable_request() -> Request[Header]:
    return Request("/auth/disable", {}, parse_header, idempotent=True)


def user_add_request(user: str, password: str) -> Request[Header]:
    body = {"name": _name(user, "user"), "password": _name(password, "password")}
    return Request("/auth/user/add", body, parse_header, idempotent=False)


def role_add_request(role: str) -> Request[Header]:
    return Request("/auth/role/add", {"name": _name(role, "role")}, parse_header,
                   idempotent=False)


def user_grant_role_request(user: str, role: str) -> Request[Header]:
    body = {"user": _name(user, "user"), "role": _name(role, "role")}
    return Request("/auth/user/grant", body, parse_header, idempotent=True)


def role_grant_permission_request(role: str, keys: bytes | KeySet,
                                  permission: Permission | str) -> Request[Header]:
    keyset = as_keyset(keys)
    key, range_end = keyset.resolve()
    perm: dict[str, Any] = {"key": b64(key)}
    if range_end is not None:
        perm["range_end"] = b64(range_end)
    if isinstance(permission, str):
        try:
            permission = Permission[permission.upper()]
        except KeyError:
            raise ValueError(f"permission must be READ, WRITE or READWRITE: {permission!r}")\
                from None
    perm["permType"] = permission.value
    body = {"name": _name(role, "role"), "perm": perm}
    return Request("/auth/role/grant", body, parse_header, idempotent=True)
