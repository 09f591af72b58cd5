"""The examples run as documented against a real etcd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from etcdwamp.testing import EtcdCluster

ROOT = Path(__file__).resolve().parents[2]


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
