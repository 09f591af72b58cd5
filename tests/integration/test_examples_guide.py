"""The user guide's examples (watch, lease keep-alive, lock, election, auth + TLS,
inlineCallbacks) run as documented against real etcd servers."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_twisted
from auth_setup import enable_auth

from etcdwamp.testing import EtcdCluster, TLSFiles, make_test_pki

ROOT = Path(__file__).resolve().parents[2]


def run_example(path: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / path), *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_watch_example_prints_every_change_in_order(etcd: EtcdCluster) -> None:
    lines = run_example("watch.py", "--url", etcd.url).splitlines()
    assert [line.split(" (revision")[0] for line in lines[:4]] == [
        "PUT demo/watch/a = 1", "PUT demo/watch/b = 2", "PUT demo/watch/a = 3",
        "DELETE demo/watch/a"]
    revisions = [int(line.split("revision ")[1].rstrip(")")) for line in lines[:4]]
    assert revisions == sorted(revisions) and len(set(revisions)) == 4
    assert lines[4] == "saw 4 changes"


def test_lease_example_keeps_the_key_past_its_ttl(etcd: EtcdCluster) -> None:
    out = run_example("lease_keepalive.py", "--url", etcd.url)
    assert "key still there" in out and "lease revoked: key gone" in out


def test_lock_example_serializes_the_workers(etcd: EtcdCluster) -> None:
    lines = run_example("lock.py", "--url", etcd.url).splitlines()
    steps = sorted(line.split(": ")[1] for line in lines[:3])
    assert steps == ["0 -> 1 written", "1 -> 2 written", "2 -> 3 written"]
    tokens = [int(line.split("fencing token ")[1].split(")")[0]) for line in lines[:3]]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3
    assert lines[3] == "counter = 3"


def test_election_example_hands_over_leadership(etcd: EtcdCluster) -> None:
    lines = run_example("election.py", "--url", etcd.url).splitlines()
    assert lines[0] == "leader: instance-a"
    assert lines[1] == "instance-b waiting: True"
    assert lines[2].startswith("after resign, leader: instance-b")


def test_inline_callbacks_example(etcd: EtcdCluster) -> None:
    out = run_example("inline_callbacks.py", "--url", etcd.url)
    assert "get demo/ic/a -> b'1'" in out
    assert "create-once: first True, second False" in out
    assert "deleted 2 keys" in out


@pytest.fixture
def pki() -> Iterator[TLSFiles]:
    with tempfile.TemporaryDirectory(prefix="etcdwamp-example-pki-") as directory:
        yield make_test_pki(directory)


def test_auth_tls_example_with_a_client_certificate(
        etcd_factory: Callable[..., EtcdCluster], pki: TLSFiles) -> None:
    cluster = etcd_factory(1, tls=replace(pki, client_cert_auth=True))
    out = run_example("auth_tls.py", "--url", cluster.url, "--ca-file", pki.ca_cert,
                      "--cert-file", pki.client_cert, "--key-file", pki.client_key)
    assert out == "app/auth-tls-demo = written over https (without login)\n"


@pytest_twisted.ensureDeferred
async def test_auth_tls_example_with_a_user_login(
        etcd_factory: Callable[..., EtcdCluster]) -> None:
    cluster = etcd_factory(1)
    await enable_auth(cluster.url)
    out = run_example("auth_tls.py", "--url", cluster.url, "--user", "app",
                      "--password", "apppw")
    assert out == "app/auth-tls-demo = written over http (as app)\n"
