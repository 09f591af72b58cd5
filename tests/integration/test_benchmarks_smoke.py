"""Smoke run of every benchmark: it runs to the end and prints its table.

Speed is not asserted here (see benchmarks/ and the README); this only keeps the
benchmark scripts working. Columns that need packages the project does not
depend on (aetcd, txaioetcd) may be skipped, and then say so.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from etcdwamp.testing import EtcdCluster

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, etcd: EtcdCluster, *extra: str) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick",
                           "--url", etcd.url, *extra],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("script", ["watch.py", "pmap.py", "wamp.py", "cli_startup.py"])
def test_benchmark_quick_run(etcd: EtcdCluster, script: str) -> None:
    out = _run(script, etcd)
    header = [line for line in out.splitlines() if line.rstrip().endswith("ratio")]
    assert header, f"no ratio table printed:\n{out}"


def test_client_benchmark_measures_both_loops(etcd: EtcdCluster) -> None:
    """benchmarks/client.py prints a ratio table per loop with etcdwamp's columns
    (coalescing off and on) against that loop's plain baseline, every row filled,
    and each optional competitor column either measured or skipped with a reason;
    with ``--metrics``, the client with Prometheus metrics against without; the
    watch row's p50 and p99 per implementation, and its p50 in the summary."""
    out = _run("client.py", etcd, "--metrics")
    lines = out.splitlines()
    for loop, baseline, ours in (("Twisted", "plain treq", "etcdwamp"),
                                 ("asyncio", "plain aiohttp", "etcdwamp.asyncio")):
        start = next((i for i, line in enumerate(lines)
                      if line.startswith(f"{loop}: row") and line.rstrip().endswith("ratio")
                      and "CPU" not in line), None)
        assert start is not None, f"no {loop} ratio table:\n{out}"
        header = lines[start]
        assert f"{baseline} ops/s" in header and f"{ours} ratio" in header, header
        assert f"{ours} coalesce=True ratio" in header, header
        assert f"{ours} metrics ratio" in header, header
        overhead = next((line for line in lines
                         if line.startswith(f"metrics overhead, {loop}, ")), None)
        assert overhead is not None and len(re.findall(r"CPU per put ratio \d", overhead)) == 2, \
            f"no {loop} metrics overhead line:\n{out}"
        body = lines[start + 2:start + 9]
        assert [row.split("  ")[0] for row in body] == [
            "sequential put (200)", "sequential get (200)", "put, 64 outstanding (1,000)",
            "get, 64 outstanding (1,000)", "prefix range of 1,000 keys (4 reads)",
            "sequential txn (100)", "watch put -> event (100)"], "\n".join(body)
        latency = lines.index(f"{loop}: watch put -> event (100)  p50 ms  p99 ms")
        latencies = {}
        for row in lines[latency + 2:]:
            found = re.fullmatch(r"(\S.*?) +([0-9.]+) +([0-9.]+)", row)
            if found is None:
                break
            latencies[found.group(1)] = (float(found.group(2)), float(found.group(3)))
        assert {baseline, ours, f"{ours} metrics"} <= set(latencies), out
        assert all(0 < p50 <= p99 for p50, p99 in latencies.values()), out
        for row in body:  # every implementation's rate is a positive number
            assert all(float(n.replace(",", "")) > 0
                       for n in re.findall(r"\b\d[\d,]*\.\d+\b", row)), row
    for column, package in (("txaioetcd (patched)", "txaioetcd"), ("aetcd (gRPC)", "aetcd")):
        measured = any(f"{column} ratio" in line for line in lines)
        skipped = any(line.startswith(f"{column}: skipped: ") and package in line
                      for line in lines)
        assert measured != skipped, f"{column}: neither measured nor skipped:\n{out}"
    summary = next(line for line in lines if line.startswith("| watch put->event p50 ms |"))
    assert len(re.findall(r"\| [0-9]+\.[0-9]{2} ", summary)) >= 6, summary


def test_export_memory_quick_run(etcd: EtcdCluster) -> None:
    """benchmarks/export_memory.py exports its keys through the command line with the
    old paging and with windows, reports each child's peak RSS and etcd's CPU (exit 0
    only when under the limit), and their ratios."""
    process = etcd.members[0].process
    assert process is not None
    out = _run("export_memory.py", etcd, "--paging", "both", "--etcd-pid", str(process.pid))
    for paging in ("old", "windows"):
        assert f"export ({paging} paging): 20,000 records" in out, out
    assert len(re.findall(r"etcd CPU [0-9.]+s", out)) == 2, out
    match = re.search(r"peak RSS of etcdwamp export: ([0-9.]+) MB \(under", out)
    assert match is not None and float(match.group(1)) > 0, out
    assert re.search(r"old/windows: time [0-9.]+x, peak RSS [0-9.]+x, etcd CPU [0-9.]+x",
                     out), out


def test_nodes_benchmark_measures_one_and_two_nodes_and_fits_the_costs(
        etcd: EtcdCluster) -> None:
    """benchmarks/nodes.py --quick: a row for 1 and for 2 nodes behind HAProxy, the
    subscribers and writer spread evenly (7 connections: 4/3), events delivered, and
    etcd's watchers and watch streams growing with the nodes; one row per subscriber
    count of the one-node sweep, each delivering its puts' events to every subscriber;
    a fit per process group and the model's two readings."""
    out = _run("nodes.py", etcd)
    part1 = {int(m.group(1)): m for m in re.finditer(
        r"^\s+(\d) +(\S+) +(\d+)/(\d+) +([\d,]+) +([\d,]+) +([\d.]+)/([\d.]+) ", out,
        re.M)}
    assert sorted(part1) == [1, 2], out
    assert part1[1].group(2) == "7" and part1[2].group(2) in ("4/3", "3/4"), out
    watchers = [int(part1[n].group(3)) for n in (1, 2)]
    streams = [int(part1[n].group(4)) for n in (1, 2)]
    assert 0 < watchers[0] < watchers[1] and 0 < streams[0] < streams[1], out
    for row in part1.values():
        puts, delivered = (float(row.group(i).replace(",", "")) for i in (5, 6))
        assert puts > 0 and delivered > 0, out
        assert 0 < float(row.group(7)) <= float(row.group(8)), out
    sweep = {int(m.group(1)): (float(m.group(2).replace(",", "")),
                               float(m.group(3).replace(",", "")))
             for m in re.finditer(r"^20 puts/s, (\d+) subscribers +([\d,]+) +([\d,]+) ",
                                  out, re.M)}
    assert sorted(sweep) == [0, 10, 30], out
    for subscribers, (puts, delivered) in sweep.items():
        # Every put's event reached every subscriber within the measured interval.
        assert puts > 0 and delivered == pytest.approx(puts * subscribers, rel=0.05), out
    for group in ("nodes", "haproxy", "bench"):
        assert re.search(rf"^  {group} +a = +-?[\d.]+ us per put, b = +-?[\d.]+ us", out,
                         re.M), out
    assert "etcd     n/a (etcd not started here)" in out, out
    assert re.search(r"10 nodes x 1,000 .* a node: +[\d,.]+ events/s", out), out
    assert re.search(r"10 nodes x 10,000 .* a node: +[\d,.]+ events/s", out), out


def test_wamp_metrics_overhead_prints_its_ratio() -> None:
    """benchmarks/wamp.py --metrics-overhead (its own etcd and two nodes) prints both
    rates and their ratio."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / "wamp.py"), "--quick",
                           "--metrics-overhead"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"metrics off [0-9.]+/s, on [0-9.]+/s, ratio on/off [0-9.]+ ",
                     done.stdout), done.stdout


def test_grpc_h2_benchmark_prints_both_clients() -> None:
    """benchmarks/grpc_h2.py --quick (in memory, no etcd) prints µs per call for our
    H2Connection and the h2 library, and the ratio."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / "grpc_h2.py"), "--quick"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in re.finditer(
        r"^(etcdwamp\.grpc\.h2|h2 library) +([0-9.]+) +[0-9.]+ +([0-9.]+)$", done.stdout,
        re.M)}
    assert sorted(rows) == ["etcdwamp.grpc.h2", "h2 library"], done.stdout
    assert rows["h2 library"][1] == 1.0 and all(us > 0 for us, _ in rows.values()), done.stdout


def test_many_watches_counts_every_event_on_both_transports(etcd: EtcdCluster) -> None:
    """benchmarks/many_watches.py: watches on each transport and loop, each gets its one
    event (the script asserts it), and a row per transport and loop with the per-watch
    ratio."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / "many_watches.py"), "--url",
                           etcd.url, "-n", "300", "--gateway-n", "50"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for loop in ("twisted", "asyncio"):
        assert re.search(rf"^{loop} +gateway +50 ", done.stdout, re.M), done.stdout
        assert re.search(rf"^{loop} +grpc +300 ", done.stdout, re.M), done.stdout
        assert f"{loop}, per watch, grpc / gateway: creation time" in done.stdout, done.stdout


def test_wamp_transports_reads_the_whole_map_on_both() -> None:
    """benchmarks/wamp_transports.py --quick (its own etcd and two nodes): map.get and
    get_and_watch rows with the gRPC/gateway ratio (the script checks every row came)."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / "wamp_transports.py"), "--quick"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^map\.get/s.* [0-9.]+ +[0-9.]+ +[0-9.]+$", done.stdout, re.M), done.stdout
    assert re.search(r"^get_and_watch of 1,000 rows.* [0-9.]+$", done.stdout, re.M), done.stdout


def test_client_benchmark_grpc_columns(etcd: EtcdCluster) -> None:
    """benchmarks/client.py --grpc adds the gRPC columns and etcd's CPU per operation."""
    out = _run("client.py", etcd, "--grpc", "--only", "asyncio", "--rounds", "1")
    assert "etcdwamp.asyncio grpc" in out and "etcd CPU per sequential put, ms" in out, out
    assert re.search(r"^etcdwamp\.asyncio grpc +[0-9.]+ +[0-9.]+$", out, re.M), out
