"""Authentication (users, roles, token renewal) and TLS against real etcd
servers, on both event loops (tests/integration/loops.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator

import pytest
from auth_setup import enable_auth
from loops import ensure, make_client
from waiting import until

from etcdwamp import KeySet
from etcdwamp import errors as e
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster, TLSFiles, make_test_pki
from etcdwamp.watch import WatchBatch

TOKEN_TTL = 2


@pytest.fixture
def auth_etcd(etcd_factory: Callable[..., EtcdCluster]) -> EtcdCluster:
    """An etcd whose auth tokens live TOKEN_TTL seconds."""
    return etcd_factory(1, extra_args=["--auth-token", "simple",
                                       "--auth-token-ttl", str(TOKEN_TTL)])


async def wait_for_token_expiry(root: Client) -> None:
    """Return once every token issued before the call has expired on etcd.

    etcd extends a simple token on every use, so the client whose token should
    expire must stay idle meanwhile; ``root`` (another user, another token)
    watches time pass for it: a lease granted now that outlives the token TTL
    (plus etcd's 1s token sweep) is gone only once those tokens are."""
    witness = await root.lease(TOKEN_TTL + 2)
    key = b"app/witness-%d" % witness.id
    await root.put(key, b"", lease=witness.id)

    async def witness_expired() -> bool:
        return (await root.get(key, count_only=True)).count == 0

    await until(witness_expired, timeout=30, why="etcd did not expire the witness lease")


@ensure
async def test_users_roles_and_permission_denied(auth_etcd: EtcdCluster, loop: str) -> None:
    await enable_auth(auth_etcd.url, loop)
    root = make_client(loop, url=auth_etcd.url, user="root", password="rootpw")
    app = make_client(loop, url=auth_etcd.url, user="app", password="apppw")
    anonymous = make_client(loop, url=auth_etcd.url)
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
async def test_wrong_password_is_authentication_failed(auth_etcd: EtcdCluster,
                                                       loop: str) -> None:
    await enable_auth(auth_etcd.url, loop)
    bad = make_client(loop, url=auth_etcd.url, user="app", password="wrong")
    try:
        with pytest.raises(e.AuthenticationFailed):
            await bad.get(b"app/x")
    finally:
        await bad.close()


@ensure
async def test_expired_token_is_renewed_transparently(auth_etcd: EtcdCluster,
                                                      loop: str) -> None:
    """The app's token expires on etcd (--auth-token-ttl); its next call
    authenticates again by itself and succeeds."""
    await enable_auth(auth_etcd.url, loop)
    app = make_client(loop, url=auth_etcd.url, user="app", password="apppw")
    root = make_client(loop, url=auth_etcd.url, user="root", password="rootpw")
    try:
        await app.put(b"app/k", b"1")
        first_token = app._token
        assert first_token is not None
        await wait_for_token_expiry(root)
        await app.put(b"app/k", b"2")
        assert app._token is not None and app._token != first_token
        assert (await app.get(b"app/k")).kvs[0].value == b"2"

        # The old token really was refused (the renewal was needed, not chosen).
        stale = make_client(loop, url=auth_etcd.url)
        stale._token = first_token
        try:
            with pytest.raises(e.Unauthenticated):
                await stale.get(b"app/k")
        finally:
            await stale.close()
    finally:
        await app.close()
        await root.close()


@ensure
async def test_watch_with_auth(auth_etcd: EtcdCluster, loop: str) -> None:
    await enable_auth(auth_etcd.url, loop)
    app = make_client(loop, url=auth_etcd.url, user="app", password="apppw")
    got: list[WatchBatch] = []
    watch = await app.watch(KeySet(b"app/", prefix=True), got.append)
    try:
        await app.put(b"app/w", b"v")
        await until(lambda: got, why="no watch event with auth")
        assert got[0].events[0].kv.key == b"app/w"
    finally:
        await watch.cancel()
        await app.close()


async def put_when_back(client: Client, key: bytes, value: bytes) -> None:
    """Write once etcd answers again (it is restarting)."""
    async def written() -> bool:
        try:
            await client.put(key, value)
        except (e.TransportError, e.Unavailable):
            return False
        return True

    await until(written, timeout=60, why="etcd did not come back")


@ensure
async def test_watch_reconnect_after_its_token_expired(auth_etcd: EtcdCluster,
                                                       loop: str) -> None:
    """The watch's token expires while its stream runs (etcd checks it only
    when a watch is created); the stream then breaks (etcd restarts): the
    reconnect must authenticate again and resume, not end with an auth error.
    Another user writes, so no request of the watching client renews its token."""
    await enable_auth(auth_etcd.url, loop)
    member = auth_etcd.members[0]
    app = make_client(loop, url=member.url, user="app", password="apppw", timeout=2.0,
                 connect_timeout=1.0)
    root = make_client(loop, url=member.url, user="root", password="rootpw", timeout=2.0,
                  connect_timeout=1.0)
    got: list[WatchBatch] = []
    watch = await app.watch(KeySet(b"app/w/", prefix=True), got.append)
    ended: list[object] = []
    watch.finished.addBoth(ended.append)
    try:
        await root.put(b"app/w/before", b"1")
        await until(lambda: got, why="no event before the restart")
        await wait_for_token_expiry(root)
        member.kill()
        member.start()
        await put_when_back(root, b"app/w/after", b"2")
        # Reconnect delays are at most a few seconds: allow several of them.
        await until(lambda: len(got) == 2 or ended, timeout=20,
                    why=lambda: f"events: {got}, reconnects: {watch.reconnects}")
        assert not ended, f"the watch ended: {ended}"
        assert [ev.kv.key for b in got for ev in b.events] == [b"app/w/before",
                                                                b"app/w/after"]
        assert watch.reconnects >= 1
    finally:
        await watch.cancel()
        await app.close()
        await root.close()


@pytest.fixture
def pki() -> Iterator[TLSFiles]:
    with tempfile.TemporaryDirectory(prefix="etcdwamp-pki-") as directory:
        yield make_test_pki(directory)


@ensure
async def test_https_with_ca_and_client_certificate(
        pki: TLSFiles, etcd_factory: Callable[..., EtcdCluster], loop: str) -> None:
    """etcd requires client certificates; the client verifies the server against
    the CA. Without the client certificate, or without trusting the CA, every
    call fails with a TransportError."""
    from dataclasses import replace

    files = replace(pki, client_cert_auth=True)
    cluster = etcd_factory(1, tls=files)
    assert cluster.url.startswith("https://")
    client = make_client(loop, url=cluster.url, ca_file=files.ca_cert,
                         cert_file=files.client_cert, key_file=files.client_key)
    no_cert = make_client(loop, url=cluster.url, ca_file=files.ca_cert, timeout=3.0)
    untrusting = make_client(loop, url=cluster.url, cert_file=files.client_cert,
                             key_file=files.client_key, timeout=3.0)
    try:
        await client.put(b"tls/k", b"secret")
        assert (await client.get(b"tls/k")).kvs[0].value == b"secret"

        with pytest.raises(e.TransportError) as refused:
            await no_cert.get(b"tls/k")
        assert "no TLS there" not in str(refused.value)  # TLS it was, and it refused us

        # The system trust store does not know our test CA. The handshake
        # fails before the request is sent, so even a write is ConnectFailed
        # (it would fail over), not an OutcomeUnknown.
        with pytest.raises(e.ConnectFailed, match="certificate verify failed"):
            await untrusting.put(b"tls/k", b"never")
        assert (await client.get(b"tls/k")).kvs[0].value == b"secret"
    finally:
        for c in (client, no_cert, untrusting):
            await c.close()
