"""The examples run as documented against a real etcd (and a real Crossbar for the
asyncio WAMP component)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor
from waiting import until
from wamp_helpers import callees, connect, disconnect

from etcdwamp import Client
from etcdwamp.testing import CrossbarNode, EtcdCluster

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "crossbar" / ".crossbar" / "config.json"


def run_example(path: str, url: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / path), "--url", url],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_getting_started_runs(etcd: EtcdCluster) -> None:
    """The getting-started example runs to completion and prints what it did."""
    done = run_example("getting_started.py", etcd.url)
    assert "get demo/greeting -> b'hello'" in done.stdout
    assert "3 users" in done.stdout
    assert "transaction committed" in done.stdout
    assert "deleted 4 keys" in done.stdout


def test_readme_pmap_example_runs(etcd: EtcdCluster) -> None:
    """The pmap example (the README's getting-started, verbatim) stores, reads, renames."""
    done = run_example("pmap_users.py", etcd.url)
    assert "read back: User(" in done.stdout and "name='alice'" in done.stdout
    assert "after rename: Alice" in done.stdout


def test_flatbuffers_example_runs(etcd: EtcdCluster) -> None:
    """The FlatBuffers map round-trips a table built with the flatc-generated code."""
    done = run_example("flatbuffers/users.py", etcd.url)
    assert ("{'name': 'alice', 'email': 'alice@example.com', 'age': 33, "
            "'tags': ['admin', 'ops']}") in done.stdout


@pytest_twisted.ensureDeferred
async def test_asyncio_component_example_serves_and_leaves_on_sigterm(
        etcd: EtcdCluster, prefix: bytes, tmp_path: Path) -> None:
    """examples/asyncio_component.py joins a router that hosts no component, serves the
    demo's procedures (a write reaches etcd), and leaves the realm in order on SIGTERM."""
    node = CrossbarNode(str(CONFIG), etcd.urls, component_loop="asyncio", instances=0)
    output = tmp_path / "example.out"
    example: subprocess.Popen[bytes] | None = None
    client = Client(reactor, etcd.url)
    try:
        node.start()
        with open(output, "wb") as out:
            example = subprocess.Popen(
                [sys.executable, str(ROOT / "examples" / "asyncio_component.py"),
                 "--router", node.backend_url, "--etcd", etcd.url],
                stdout=out, stderr=subprocess.STDOUT, env=node.env)
        await until(lambda: "serving etcd.* as session" in output.read_text(),
                    why=lambda: output.read_text() + node.log_tail(20))
        assert await callees(node, "etcd.map.notes.put") == 1
        s = await connect(node)
        try:
            key = prefix.decode().replace("/", "_")
            put = await s.call("etcd.map.notes.put", key, {"from": "test"})
            stored = (await client.get(b"demo/maps/\x00\x01" + key.encode())).kvs
            assert [(kv.value, kv.mod_revision) for kv in stored] == [
                (b'{"from":"test"}', put["revision"])]
        finally:
            await disconnect(s)
        example.send_signal(signal.SIGTERM)
        await until(lambda: example.poll() is not None, why=output.read_text)
        assert example.returncode == 0, output.read_text()
        assert "left the realm: wamp.close.normal" in output.read_text()
        assert await callees(node, "etcd.map.notes.put") == 0
    finally:
        if example is not None and example.poll() is None:
            example.kill()
            example.wait()
        await client.close()
        node.stop()


def test_asyncio_component_runner_refuses_invalid_settings(tmp_path: Path) -> None:
    """python -m etcdwamp.asyncio.component validates extra as strictly as the hosted
    component: a misspelt key exits 2 naming it (and the closest valid one), before any
    connection is tried."""
    config = tmp_path / "extra.json"
    config.write_text('{"etcd": {"endpoints": ["http://127.0.0.1:1"]}, "mpas": {}}')
    done = subprocess.run(
        [sys.executable, "-m", "etcdwamp.asyncio.component", "--router",
         "ws://127.0.0.1:1/backend", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "ETCDWAMP_BACKEND_TICKET": "unused"})
    assert done.returncode == 2
    assert "extra: unknown key 'mpas' (did you mean 'maps'?)" in done.stderr
