"""The asyncio example runs under plain ``asyncio.run`` (no Twisted reactor) against etcd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from etcdwamp.testing import EtcdCluster

ROOT = Path(__file__).resolve().parents[2]


def test_asyncio_example_runs(etcd: EtcdCluster) -> None:
    """Every step of examples/asyncio_client.py happens: KV, watch, lock + lease,
    pmap, a cancelled acquire, and the clean-up."""
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "asyncio_client.py"),
                           "--url", etcd.url],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "(asyncio)" in out
    assert "get aio-demo/greeting -> b'hello'" in out
    assert "watched: [('PUT', 'aio-demo/counter')]" in out
    assert "after revoking the lease the owner key is gone" in out
    assert "pmap note: hello from asyncio" in out
    assert "second acquire cancelled after 0.5 s" in out
    assert "deleted" in out


def test_asyncio_client_does_not_install_a_reactor() -> None:
    """Importing and using etcdwamp.asyncio leaves Twisted's global reactor alone."""
    code = ("import asyncio, sys\n"
            "from etcdwamp.asyncio import Client\n"
            "async def main():\n"
            "    async with Client(url='http://127.0.0.1:9') as c:\n"
            "        pass\n"
            "asyncio.run(main())\n"
            "print('twisted.internet.reactor' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
