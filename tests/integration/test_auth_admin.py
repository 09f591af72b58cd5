"""The whole auth administration set against a real etcd: a deployment's users
and roles set up, inspected, changed and torn down from Python, on both event
loops (tests/integration/loops.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from loops import ensure, make_client

from etcdwamp import KeySet
from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster
from etcdwamp.wire.auth import Permission, RolePermission


@ensure
async def test_users_and_roles_from_setup_to_teardown(
        etcd_factory: Callable[..., EtcdCluster], loop: str) -> None:
    cluster = etcd_factory(1)
    admin = make_client(loop, url=cluster.url, timeout=10.0)
    clients = [admin]

    def login(user: str, password: str) -> Client:
        c = make_client(loop, url=cluster.url, timeout=10.0, user=user, password=password)
        clients.append(c)
        return c

    try:
        assert (await admin.auth_status()).enabled is False
        await admin.user_add("root", "rootpw")
        await admin.role_add("root")
        await admin.user_grant_role("root", "root")
        await admin.user_add("alice", "a-pw")
        await admin.role_add("reader")
        await admin.role_grant_permission("reader", KeySet(b"app/", prefix=True), "READ")
        await admin.role_grant_permission("reader", b"notes", Permission.READWRITE)
        await admin.user_grant_role("alice", "reader")

        assert (await admin.user_get("alice")).roles == ("reader",)
        assert await admin.user_list() == ("alice", "root")
        assert await admin.role_list() == ("reader", "root")
        assert (await admin.role_get("reader")).permissions == (
            RolePermission(Permission.READ, b"app/", b"app0"),
            RolePermission(Permission.READWRITE, b"notes", b""),
        )
        with pytest.raises(e.FailedPrecondition, match="user name not found"):
            await admin.user_get("nobody")
        with pytest.raises(e.FailedPrecondition, match="role name not found"):
            await admin.role_get("nobody")

        await admin.put(b"app/x", b"1")
        await admin.auth_enable()
        root = login("root", "rootpw")
        assert (await root.auth_status()).enabled is True
        alice = login("alice", "a-pw")
        assert (await alice.get(b"app/x")).kvs[0].value == b"1"
        await alice.put(b"notes", b"mine")
        with pytest.raises(e.PermissionDenied):
            await alice.put(b"app/x", b"2")

        # a new password: the old one no longer logs in
        await root.user_change_password("alice", "a-pw-2")
        with pytest.raises(e.AuthenticationFailed):
            await login("alice", "a-pw").get(b"app/x")
        alice = login("alice", "a-pw-2")
        assert (await alice.get(b"notes")).kvs[0].value == b"mine"

        # permissions and roles taken back one at a time
        await root.role_revoke_permission("reader", b"notes")
        with pytest.raises(e.PermissionDenied):
            await alice.get(b"notes")
        assert (await alice.get(b"app/x")).count == 1
        await root.user_revoke_role("alice", "reader")
        assert (await root.user_get("alice")).roles == ()
        with pytest.raises(e.PermissionDenied):
            await alice.get(b"app/x")

        await root.user_delete("alice")
        await root.role_delete("reader")
        assert await root.user_list() == ("root",)
        assert await root.role_list() == ("root",)
        with pytest.raises(e.FailedPrecondition):
            await root.user_delete("alice")
        await root.auth_disable()
        assert (await admin.auth_status()).enabled is False
    finally:
        for c in clients:
            await c.close()


@ensure
async def test_bad_auth_input_is_refused_before_sending(etcd: EtcdCluster, loop: str) -> None:
    client = make_client(loop, url=etcd.url)
    try:
        with pytest.raises(ValueError):
            await client.user_get("")
        with pytest.raises(TypeError):
            await client.role_delete(b"r")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await client.role_revoke_permission("r", "k")  # type: ignore[arg-type]
    finally:
        await client.close()
