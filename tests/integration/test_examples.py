"""The examples run as documented against a real etcd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from etcdwamp.testing import EtcdCluster

ROOT = Path(__file__).resolve().parents[2]


def test_getting_started_runs(etcd: EtcdCluster) -> None:
    """The getting-started example runs to completion and prints what it did."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "getting_started.py"), "--url", etcd.url],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "get demo/greeting -> b'hello'" in done.stdout
    assert "3 users" in done.stdout
    assert "transaction committed" in done.stdout
    assert "deleted 4 keys" in done.stdout
