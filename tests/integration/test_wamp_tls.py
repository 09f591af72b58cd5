"""The component talks to etcd over https: verifying the server against a CA,
with a client certificate where etcd requires one, and with a user login whose
password is read from the environment (``"${VAR}"``).

etcd refuses the two together through its JSON gateway ("CommonName of client
sending a request against gateway will be ignored"): with auth enabled a client
certificate's CN would be the user, which the gateway cannot pass on. And an
etcd given a CA (``--trusted-ca-file``) asks every client for a certificate. So
the client certificate is tried on an https etcd, the login on a plain one.
Both with the component embedded in the router (Twisted) and outside it on asyncio.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from wamp_helpers import (
    CONFIG,
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    registered,
)

from etcdwamp import KeySet
from etcdwamp.client import Client
from etcdwamp.testing import CrossbarNode, EtcdCluster, TLSFiles, make_test_pki

ensure = pytest_twisted.ensureDeferred



@pytest.fixture
def pki() -> Iterator[TLSFiles]:
    with tempfile.TemporaryDirectory(prefix="etcdwamp-pki-") as directory:
        yield make_test_pki(directory)


@pytest.mark.parametrize("mode", ["client-certificate", "login"])
@ensure
async def test_component_reaches_a_guarded_etcd(mode: str, pki: TLSFiles,
                                    etcd_factory: Callable[..., EtcdCluster],
                                    component_loop: str) -> None:
    password = secrets.token_urlsafe(16)
    etcd: dict[str, object] = {}
    if mode == "client-certificate":
        files = replace(pki, client_cert_auth=True)
        cluster = etcd_factory(1, tls=files)
        assert cluster.url.startswith("https://")
        etcd.update(ca_file=files.ca_cert, cert_file=files.client_cert,
                    key_file=files.client_key)
    else:
        cluster = etcd_factory(1)
        admin = Client(reactor, url=cluster.url)
        await admin.user_add("root", secrets.token_urlsafe(16))
        await admin.user_grant_role("root", "root")
        await admin.role_add("web")
        for keys in (KeySet(b"tlsapp/", prefix=True), KeySet(b"tlspub", prefix=True)):
            await admin.role_grant_permission("web", keys, "readwrite")
        await admin.user_add("web", password)
        await admin.user_grant_role("web", "web")
        await admin.auth_enable()
        await admin.close()
        etcd.update(user="web", password="${ETCDWAMP_TEST_ETCD_PW}")
    node = CrossbarNode(str(CONFIG), cluster.urls, env={"ETCDWAMP_TEST_ETCD_PW": password},
                        extra_overrides={"etcd": etcd, "db_prefix": "tlsapp/",
                                         "election": "tlspub", "kv_prefixes": [],
                                         "presence": None},
                        component_loop=component_loop)
    # The password is nowhere in the node's files: only in its environment.
    written = [Path(node.cbdir) / "config.json"]
    if node.component_config is not None:
        written.append(Path(node.component_config))
    assert all(password not in path.read_text() for path in written)
    try:
        node.start()
        s = await connect(await registered(node))
    except BaseException:
        node.stop()
        raise
    try:
        put = await s.call("etcd.map.notes.put", "k", {"over": "tls"})
        got = await s.call("etcd.map.notes.get", "k")
        assert got == {"key": "k", "value": {"over": "tls"}, "revision": put["revision"]}
        status = await s.call("etcd.status")
        assert status["revision"] >= put["revision"]
    finally:
        await disconnect(s)
        node.stop()


@ensure
async def test_wrong_etcd_credentials_fail_start_up_with_the_cause(
        etcd_factory: Callable[..., EtcdCluster], component_loop: str) -> None:
    """A component whose etcd login fails does not look ready: it logs the cause at
    start-up and registers nothing (instead of "component ready" and every call failing)."""
    cluster = etcd_factory(1)
    admin = Client(reactor, url=cluster.url)
    await admin.user_add("root", secrets.token_urlsafe(16))
    await admin.user_grant_role("root", "root")
    await admin.user_add("web", secrets.token_urlsafe(16))
    await admin.auth_enable()
    await admin.close()
    node = CrossbarNode(str(CONFIG), cluster.urls, env={"ETCDWAMP_TEST_ETCD_PW": "wrong"},
                        extra_overrides={"etcd": {"user": "web",
                                                  "password": "${ETCDWAMP_TEST_ETCD_PW}"},
                                         "db_prefix": "badlogin/", "election": "badpub",
                                         "kv_prefixes": [], "presence": None},
                        component_loop=component_loop)
    try:
        with pytest.raises(RuntimeError, match="failed the start-up check: "
                                               "AuthenticationFailed"):
            node.start()
        # It registered nothing: "N procedures under etcd" is logged once registered.
        assert "procedures under" not in node.log_tail(100_000)
    finally:
        node.stop()
