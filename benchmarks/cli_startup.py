"""Wall time of one-shot ``etcdwamp`` commands against ``etcdctl`` doing the same (issue 21:
``etcdwamp get`` in at most 0.15 s).

Each command runs as a user runs it: the installed console script, a new process per
run, against the same etcd, the runs of every command interleaved so that a burst of
other work on the machine hits them alike. Printed per command: the median and the
fastest of the runs in milliseconds, and the median's ratio to ``etcdctl get``'s.
``python -c pass`` is the interpreter's own start-up, the floor of any Python command.

``get``, ``put`` and ``del`` run without Twisted (:mod:`etcdwamp.blocking`); ``status``
starts Twisted's reactor and HTTP client, shown for contrast.

Measured (etcd 3.4.23, 2 cores; 15 runs each). On a quiet machine (load 0.3)::

    command                 median ms   min ms    vs etcdctl get ratio
    python -c pass                 19       13                    0.82
    etcdctl get                    23       17                    1.00
    etcdwamp get                  105       71                    4.53
    etcdwamp put                  104       70                    4.50
    etcdwamp status               526      431                   22.66

and with four other processes running tests (load 4)::

    command                 median ms   min ms    vs etcdctl get ratio
    python -c pass                 29       21                    1.22
    etcdctl get                    24       13                    1.00
    etcdwamp get                  146      122                    6.07
    etcdwamp put                  159      120                    6.62
    etcdwamp status               858      780                   35.68

Usage::

    python benchmarks/cli_startup.py [--url http://127.0.0.1:2379] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from etcdwamp.testing import EtcdCluster


def _commands(url: str) -> list[tuple[str, list[str]]]:
    bin_dir = Path(sys.executable).parent
    etcdwamp = shutil.which("etcdwamp", path=str(bin_dir))
    if etcdwamp is None:
        raise SystemExit("the etcdwamp console script is not installed beside python")
    ours = [etcdwamp, "--endpoints", url]
    commands = [("python -c pass", [sys.executable, "-c", "pass"])]
    etcdctl = shutil.which("etcdctl")
    if etcdctl is not None:
        commands.append(("etcdctl get", [etcdctl, "--endpoints", url, "get", "bench/k"]))
    commands += [("etcdwamp get", [*ours, "get", "bench/k"]),
                 ("etcdwamp put", [*ours, "put", "bench/k", "v"]),
                 ("etcdwamp status", [*ours, "status"])]
    return commands


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def run(url: str, quick: bool) -> int:
    commands = _commands(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCDCTL_", "ETCDWAMP_"))}
    env["ETCDCTL_API"] = "3"
    _time(commands[-2][1], env)  # writes bench/k and warms the byte-code caches
    rounds = 3 if quick else 15
    times: dict[str, list[float]] = {name: [] for name, _ in commands}
    for _ in range(rounds):
        for name, argv in commands:
            times[name].append(_time(argv, env))
    names = [name for name, _ in commands]
    baseline_name = "etcdctl get" if "etcdctl get" in times else "python -c pass"
    baseline = statistics.median(times[baseline_name])
    print(f"{rounds} runs each; ratio: median against {baseline_name}'s")
    ratio = f"vs {baseline_name} ratio"
    print(f"{'command':<22}  {'median ms':>9}  {'min ms':>7}  {ratio:>22}")
    for name in names:
        median = statistics.median(times[name])
        print(f"{name:<22}  {median * 1000:9.0f}  {min(times[name]) * 1000:7.0f}  "
              f"{median / baseline:22.2f}")
    if "etcdctl get" not in times:
        print("etcdctl: skipped: not installed (Debian package etcd-client)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an etcd to use (default: start a throw-away one)")
    parser.add_argument("--quick", action="store_true", help="3 runs each, for a smoke run")
    args = parser.parse_args()
    if args.url:
        return run(args.url, args.quick)
    with EtcdCluster(1) as etcd:
        return run(etcd.url, args.quick)


if __name__ == "__main__":
    sys.exit(main())
