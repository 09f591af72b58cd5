"""Smoke run of every benchmark: it runs to the end and prints its ratio table.

Speed is not asserted here (see benchmarks/ and the README); this only keeps the
benchmark scripts working.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from etcdwamp.testing import EtcdCluster

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize("script", ["client.py", "watch.py", "pmap.py", "wamp.py"])
def test_benchmark_quick_run(etcd: EtcdCluster, script: str) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick",
                           "--url", etcd.url],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    header = [line for line in done.stdout.splitlines() if line.rstrip().endswith("ratio")]
    assert header, f"no ratio table printed:\n{done.stdout}"
