"""The one etcd auth set-up the tests share: users ``root`` (role root, password
``rootpw``) and ``app`` (password ``apppw``, read-write on ``app/``), then auth on."""

from __future__ import annotations

from loops import make_client

from etcdwamp import KeySet

__all__ = ["enable_auth"]


async def enable_auth(url: str, loop: str = "twisted") -> None:
    """Create ``root`` and ``app`` on the etcd at ``url`` and turn authentication
    on, with a client of ``loop`` (tests/integration/loops.py)."""
    admin = make_client(loop, url=url)
    try:
        await admin.user_add("root", "rootpw")
        await admin.user_grant_role("root", "root")
        await admin.role_add("app")
        await admin.role_grant_permission("app", KeySet(b"app/", prefix=True), "readwrite")
        await admin.user_add("app", "apppw")
        await admin.user_grant_role("app", "app")
        await admin.auth_enable()
    finally:
        await admin.close()
