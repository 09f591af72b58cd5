"""Authentication (users, roles, token renewal) and TLS against real etcd servers."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from etcdwamp import KeySet
from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster, TLSFiles, make_test_pki
from etcdwamp.watch import WatchBatch

ensure = pytest_twisted.ensureDeferred

TOKEN_TTL = 2


@pytest.fixture
def auth_etcd(etcd_factory: Callable[..., EtcdCluster]) -> EtcdCluster:
    """An etcd whose auth tokens live TOKEN_TTL seconds."""
    return etcd_factory(1, extra_args=["--auth-token", "simple",
                                       "--auth-token-ttl", str(TOKEN_TTL)])


async def enable_auth(url: str) -> None:
    admin = Client(reactor, url=url)
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


@ensure
async def test_users_roles_and_permission_denied(auth_etcd: EtcdCluster) -> None:
    await enable_auth(auth_etcd.url)
    root = Client(reactor, url=auth_etcd.url, user="root", password="rootpw")
    app = Client(reactor, url=auth_etcd.url, user="app", password="apppw")
    anonymous = Client(reactor, url=auth_etcd.url)
    try:
        await root.put(b"other/x", b"root only")
        await app.put(b"app/x", b"mine")
        assert (await app.get(b"app/x")).kvs[0].value == b"mine"
        with pytest.raises(e.PermissionDenied):
            await app.get(b"other/x")
        with pytest.raises(e.PermissionDenied):
            await app.put(b"other/y", b"nope")
        with pytest.raises(e.ServerError):
            await anonymous.get(b"app/x")
        assert (await root.get(b"other/y")).count == 0
    finally:
        for c in (root, app, anonymous):
            await c.close()


@ensure
async def test_wrong_password_is_authentication_failed(auth_etcd: EtcdCluster) -> None:
    await enable_auth(auth_etcd.url)
    bad = Client(reactor, url=auth_etcd.url, user="app", password="wrong")
    try:
        with pytest.raises(e.AuthenticationFailed):
            await bad.get(b"app/x")
    finally:
        await bad.close()


@ensure
async def test_expired_token_is_renewed_transparently(auth_etcd: EtcdCluster) -> None:
    await enable_auth(auth_etcd.url)
    app = Client(reactor, url=auth_etcd.url, user="app", password="apppw")
    try:
        await app.put(b"app/k", b"1")
        first_token = app._token
        await deferLater(reactor, TOKEN_TTL + 1.5)
        await app.put(b"app/k", b"2")  # the old token is expired by now
        assert app._token is not None and app._token != first_token
        assert (await app.get(b"app/k")).kvs[0].value == b"2"
    finally:
        await app.close()


@ensure
async def test_watch_with_auth(auth_etcd: EtcdCluster) -> None:
    await enable_auth(auth_etcd.url)
    app = Client(reactor, url=auth_etcd.url, user="app", password="apppw")
    got: list[WatchBatch] = []
    watch = await app.watch(KeySet(b"app/", prefix=True), got.append)
    try:
        await app.put(b"app/w", b"v")
        for _ in range(100):
            if got:
                break
            await deferLater(reactor, 0.05)
        assert got and got[0].events[0].kv.key == b"app/w"
    finally:
        await watch.cancel()
        await app.close()


@pytest.fixture
def pki() -> Iterator[TLSFiles]:
    with tempfile.TemporaryDirectory(prefix="etcdwamp-pki-") as directory:
        yield make_test_pki(directory)


@ensure
async def test_https_with_ca_and_client_certificate(
        pki: TLSFiles, etcd_factory: Callable[..., EtcdCluster]) -> None:
    """etcd requires client certificates; the client verifies the server against the CA."""
    from dataclasses import replace

    files = replace(pki, client_cert_auth=True)
    cluster = etcd_factory(1, tls=files)
    assert cluster.url.startswith("https://")
    client = Client(reactor, url=cluster.url, ca_file=files.ca_cert,
                    cert_file=files.client_cert, key_file=files.client_key)
    try:
        await client.put(b"tls/k", b"secret")
        assert (await client.get(b"tls/k")).kvs[0].value == b"secret"
    finally:
        await client.close()

    no_cert = Client(reactor, url=cluster.url, ca_file=files.ca_cert, timeout=3.0)
    try:
        with pytest.raises(e.TransportError):
            await no_cert.get(b"tls/k")
    finally:
        await no_cert.close()

    untrusting = Client(reactor, url=cluster.url, cert_file=files.client_cert,
                        key_file=files.client_key, timeout=3.0)
    try:  # the system trust store does not know our test CA
        with pytest.raises(e.TransportError):
            await untrusting.get(b"tls/k")
    finally:
        await untrusting.close()
