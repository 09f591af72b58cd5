"""Time, peak memory and etcd's CPU of ``etcdwamp export`` over 1,000,000 keys (issue 11:
under 100 MB RSS; issue 25: at least 100,000 keys/s).

The keys (``<prefix>0000000`` .. ``<prefix>0999999``, 16-byte values) are
loaded with ``etcdwamp.asyncio.Client``: transactions of 128 puts (etcd's
``--max-txn-ops``), 8 outstanding. Then ``etcdwamp export --prefix <prefix>
-o FILE`` runs as a child process (the installed command line, as a user runs
it, default ``--page-size 1000``); its peak resident set is read from the
kernel when it exits (``os.wait4``: ``ru_maxrss`` of that child only), and
``/proc/<pid>/status`` is sampled every 20 ms meanwhile to show when the peak
is reached. The exported file is checked: one JSON line per key, in order.

Measured (etcd 3.4.23 from ``EtcdCluster``, 2 cores shared with other work)
---------------------------------------------------------------------------
1,000,000 keys (95 MB of JSON lines), default ``--page-size 1000``: **peak RSS
64.2 MB**, under the 100 MB limit; RSS is flat from the first page to the
last (59-61 MB in every sample), so it does not grow with the number of keys.
Where it goes:

- ~54 MB before the first request: the interpreter (~10 MB) and the imports
  (tracemalloc: 25.8 MB of Python objects). Twisted's reactor alone is
  ~33 MB of that, most of it ``posixbase`` importing pyOpenSSL and
  cryptography (their shared libraries) for TLS support; then twisted.web,
  treq, etcdwamp with its pmap codecs, tqdm.
- The export itself: the pages in flight. tracemalloc's peak of the Python
  heap during the export was 2.4 MB above the post-import level at
  ``--page-size 1000`` with one page in flight (the page's JSON answer, its
  decoded dicts and key-values, the output buffer), 15.7 MB at 10,000.

Time: with the old paging (``--paging old``: each page ``[after the last key,
range_end)`` with a limit) 102-158 s for 1,000,000 keys (6,300-9,800
records/s) and 121-124 s of etcd's CPU: etcd 3.4 answers a range with
``limit`` by walking its index over *every* key to ``range_end`` (to fill
``count``), so the export is O(n^2 / page size) on the server, whose CPU it is
bound by. With the windows of :mod:`etcdwamp.range_pages` (each sized to hold
about a page, three read ahead), in the same run: **8.8 s (114,000
records/s), etcd's CPU 10.7 s, the export's own 4.4 s, peak RSS 64.2 MB**;
old/windows: time 11.7x, etcd CPU 11.3x, peak RSS 1.00x. Repeated exports of
one loaded million took 8.9-10.8 s with three pages read ahead and 13.8-15.5 s
with one (other work kept the 2 cores' load at about 3). The rest is etcd's
JSON gateway: about 11 us of its CPU per key read and encoded, against
0.17 us per key walked.

Usage::

    PYTHONPATH=. python benchmarks/export_memory.py            # own etcd, 1,000,000 keys
    PYTHONPATH=. python benchmarks/export_memory.py --quick    # 20,000 keys (CI smoke run)
    PYTHONPATH=. python benchmarks/export_memory.py --paging both  # old paging, then windows
    PYTHONPATH=. python benchmarks/export_memory.py --url http://127.0.0.1:2379 --keys 200000

Exits 0 when the export completed, its file checked out and the peak RSS
stayed under ``--limit-mb`` (100); 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from etcdwamp import KeySet, OpSet, Transaction
from etcdwamp.asyncio import Client
from etcdwamp.testing import EtcdCluster

BATCH = 128  # puts per loading transaction (etcd's default --max-txn-ops)
LOADERS = 8
DELETE_SLICE = 50_000
VALUE = b"0123456789abcdef"


def _key(prefix: bytes, index: int) -> bytes:
    return prefix + b"%07d" % index


async def load(url: str, prefix: bytes, count: int) -> float:
    """Write ``count`` keys under ``prefix``; return the seconds it took."""
    started = time.perf_counter()
    async with Client(url, pool_size=LOADERS) as etcd:
        batches = iter(range(0, count, BATCH))

        async def loader() -> None:
            for start in batches:  # the loaders share one iterator
                ops = [OpSet(_key(prefix, i), VALUE) for i in range(start, min(start + BATCH,
                                                                                count))]
                result = await etcd.txn(Transaction(success=ops))
                if not result.succeeded:
                    raise RuntimeError(f"loading transaction at {start} failed: {result!r}")

        await asyncio.gather(*(loader() for _ in range(LOADERS)))
    return time.perf_counter() - started


async def delete(url: str, prefix: bytes, count: int) -> int:
    """Delete the loaded keys in slices: etcd applies one delete as one Raft
    entry, and a million keys at once outlast its request timeout."""
    deleted = 0
    async with Client(url) as etcd:
        for start in range(0, count, DELETE_SLICE):
            end = _key(prefix, start + DELETE_SLICE) if start + DELETE_SLICE < count else None
            keys = (KeySet(_key(prefix, start), range_end=end) if end is not None
                    else KeySet(_key(prefix, start), range_end=_prefix_end(prefix)))
            deleted += (await etcd.delete(keys)).deleted
    return deleted


def _prefix_end(prefix: bytes) -> bytes:
    # The prefix is ASCII and ends in "/", so its last byte is never 0xFF.
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _etcdwamp_command() -> list[str]:
    # The console script of the interpreter running this (the .venv's), else the module.
    script = Path(sys.executable).with_name("etcdwamp")
    if script.exists():
        return [str(script)]
    found = shutil.which("etcdwamp")
    return [found] if found else [sys.executable, "-m", "etcdwamp"]


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


# The command line with other paging settings (the old paging: each page to the range's
# end), for comparison.
_PAGING = ("import sys, etcdwamp.range_pages as r; r.WINDOWS = {windows}; "
           "r.READ_AHEAD = {read_ahead}; from etcdwamp.cli import main; "
           "sys.exit(main(sys.argv[1:]))")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 without one)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def export(url: str, prefix: bytes, output: str, page_size: int | None, *,
           old: bool = False, read_ahead: int | None = None
           ) -> tuple[int, float, float, list[tuple[float, int]], str]:
    """Run the export (``old``: with the old paging; ``read_ahead``: pages read ahead,
    if not the default); return (peak RSS KiB, seconds, CPU seconds, RSS samples,
    stderr)."""
    program = _etcdwamp_command()
    if old or read_ahead is not None:
        code = _PAGING.format(windows=not old, read_ahead=1 if read_ahead is None
                              else read_ahead)
        program = [sys.executable, "-c", code]
    command = [*program, "--endpoints", url, "export",
               "--prefix", prefix.decode("ascii"), "-o", output]
    if page_size is not None:
        command += ["--page-size", str(page_size)]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                rss = _rss_kib(child.pid)
                if rss is not None:
                    samples.append((time.perf_counter() - started, rss))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4 reports the child's own peak (Linux: KiB), not the maximum of
        # every child this process ever reaped as RUSAGE_CHILDREN would.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        errors.seek(0)
        stderr = errors.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {child.returncode}:\n{stderr}")
    return usage.ru_maxrss, seconds, usage.ru_utime + usage.ru_stime, samples, stderr


def check_output(path: str, prefix: bytes, count: int) -> None:
    expected_value = VALUE.decode("ascii")
    n = 0
    with open(path, encoding="utf-8") as lines:
        for n, line in enumerate(lines, start=1):
            record = json.loads(line)
            key = _key(prefix, n - 1).decode("ascii")
            if record["key"] != key or base64.b64decode(record["value"]) != VALUE:
                raise RuntimeError(f"line {n}: {record!r}, expected key {key!r}, "
                                   f"value {expected_value!r}")
    if n != count:
        raise RuntimeError(f"exported {n} records, expected {count}")


def run(url: str, count: int, limit_mb: float, page_size: int | None, *,
        strategies: Sequence[str] = ("windows",), etcd_pid: int | None = None,
        read_ahead: int | None = None, clean_up: bool = True) -> int:
    prefix = f"bench-export/{os.getpid()}-{time.time_ns()}/".encode()
    ok = True
    measured: dict[str, tuple[float, float, float]] = {}
    try:
        load_seconds = asyncio.run(load(url, prefix, count))
        print(f"loaded {count:,} keys in {load_seconds:.1f}s "
              f"({count / load_seconds:,.0f} keys/s, transactions of {BATCH})", flush=True)
        for strategy in strategies:
            with tempfile.TemporaryDirectory() as directory:
                output = os.path.join(directory, "export.jsonl")
                cpu_before = cpu_seconds(etcd_pid)
                peak_kib, seconds, own_cpu, samples, _ = export(
                    url, prefix, output, page_size, old=strategy == "old",
                    read_ahead=read_ahead)
                etcd_cpu = cpu_seconds(etcd_pid) - cpu_before
                size = os.path.getsize(output)
                check_output(output, prefix, count)
            peak_mb = peak_kib * 1024 / 1e6
            measured[strategy] = (seconds, peak_mb, etcd_cpu)
            timeline = ", ".join(f"{t:.1f}s {rss * 1024 / 1e6:.0f}"
                                 for t, rss in samples[:: max(len(samples) // 8, 1)])
            cpu = f", etcd CPU {etcd_cpu:.1f}s" if etcd_pid is not None else ""
            print(f"export ({strategy} paging): {count:,} records ({size / 1e6:.0f} MB of "
                  f"JSON lines) in {seconds:.1f}s ({count / seconds:,.0f} records/s), "
                  f"its own CPU {own_cpu:.1f}s{cpu}")
            print(f"RSS samples (time, MB): {timeline}")
            verdict = "under" if peak_mb < limit_mb else "OVER"
            print(f"peak RSS of etcdwamp export: {peak_mb:.1f} MB ({verdict} the "
                  f"{limit_mb:g} MB limit)", flush=True)
            ok = ok and peak_mb < limit_mb
        if "old" in measured and "windows" in measured:
            (t_old, rss_old, cpu_old), (t_new, rss_new, cpu_new) = (
                measured["old"], measured["windows"])
            cpu = f", etcd CPU {cpu_old / cpu_new:.1f}x" if etcd_pid is not None else ""
            print(f"old/windows: time {t_old / t_new:.1f}x, peak RSS {rss_old / rss_new:.2f}x"
                  f"{cpu}")
    finally:
        if clean_up:
            asyncio.run(delete(url, prefix, count))
    return 0 if ok else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", help="an etcd to use (default: start a throw-away one)")
    parser.add_argument("--quick", action="store_true", help="20,000 keys, for a smoke run")
    parser.add_argument("--keys", type=int, default=None, help="keys to export "
                        "(default 1,000,000, or 20,000 with --quick)")
    parser.add_argument("--limit-mb", type=float, default=100.0)
    parser.add_argument("--page-size", type=int, default=None,
                        help="passed to etcdwamp export (default: its own default)")
    parser.add_argument("--paging", choices=("windows", "old", "both"), default="windows",
                        help="windows (etcdwamp's), old (each page to the range's end, "
                        "O(n^2/page) on etcd), or both in one run, with their ratios")
    parser.add_argument("--read-ahead", type=int, default=None,
                        help="pages the export reads ahead (default: etcdwamp's, 1)")
    parser.add_argument("--etcd-pid", type=int, default=None,
                        help="with --url: the etcd process, to measure its CPU")
    args = parser.parse_args(argv)
    if args.keys is None:
        args.keys = 20_000 if args.quick else 1_000_000
    if args.keys < 1:
        parser.error("--keys must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    strategies = ("old", "windows") if args.paging == "both" else (args.paging,)
    if args.url:
        return run(args.url, args.keys, args.limit_mb, args.page_size,
                   strategies=strategies, etcd_pid=args.etcd_pid, read_ahead=args.read_ahead)
    with EtcdCluster(1) as etcd:
        process = etcd.members[0].process
        # A throw-away etcd goes with its keys.
        return run(etcd.url, args.keys, args.limit_mb, args.page_size, strategies=strategies,
                   etcd_pid=None if process is None else process.pid,
                   read_ahead=args.read_ahead, clean_up=False)


if __name__ == "__main__":
    sys.exit(main())
