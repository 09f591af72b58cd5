"""``etcdwamp export`` / ``import`` as a user runs them, against a real etcd."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest_twisted

from etcdwamp import Client, Database, KeySet, pmap
from etcdwamp.cli import Progress
from etcdwamp.testing import EtcdCluster

ensure = pytest_twisted.ensureDeferred


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etcdwamp.cli", *args],
                          capture_output=True, text=True, timeout=600, check=False)


async def count(client: Client, prefix: bytes) -> int:
    return (await client.get(KeySet(prefix, prefix=True), count_only=True)).count


@ensure
async def test_round_trip_100000_keys(etcd: EtcdCluster, client: Client, prefix: bytes,
                                      tmp_path: Path) -> None:
    """Export 100,000 keys to JSON lines, delete them, import them back: identical."""
    db = Database(client)
    n = 100_000
    await db.put_many((prefix + b"k%06d" % i, b"\x00v" + str(i).encode()) for i in range(n))
    dump = tmp_path / "dump.jsonl"
    out = cli("export", "--url", etcd.url, "--prefix", prefix.decode(), "-o", str(dump))
    assert out.returncode == 0, out.stderr
    assert f"exported {n} records" in out.stderr
    lines = dump.read_text().splitlines()
    assert len(lines) == n
    assert json.loads(lines[0]) == {"key": prefix.decode() + "k000000",
                                    "value": "AHYw"}  # base64 of b"\x00v0"

    before = [(kv.key, kv.value) async for kv in client.range_iter(KeySet(prefix, prefix=True))]
    await client.delete(KeySet(prefix, prefix=True))
    assert await count(client, prefix) == 0
    back = cli("import", "--url", etcd.url, str(dump))
    assert back.returncode == 0, back.stderr
    assert f"imported {n} records" in back.stderr
    after = [(kv.key, kv.value) async for kv in client.range_iter(KeySet(prefix, prefix=True))]
    assert after == before


@ensure
async def test_csv_hex_round_trip(etcd: EtcdCluster, client: Client, prefix: bytes,
                                  tmp_path: Path) -> None:
    for i in range(300):
        await client.put(prefix + bytes([i % 256, 0xFF]) + b"%d" % i, bytes([i % 256]) * 3)
    dump = tmp_path / "dump.csv"
    enc = ["--key-encoding", "hex", "--value-encoding", "hex", "--format", "csv"]
    prefix_arg = ["--prefix", prefix.decode()]
    assert cli("export", "--url", etcd.url, *prefix_arg, *enc, "-o", str(dump)).returncode == 0
    before = [(kv.key, kv.value) async for kv in client.range_iter(KeySet(prefix, prefix=True))]
    await client.delete(KeySet(prefix, prefix=True))
    done = cli("import", "--url", etcd.url, *enc, str(dump))
    assert done.returncode == 0, done.stderr
    after = [(kv.key, kv.value) async for kv in client.range_iter(KeySet(prefix, prefix=True))]
    assert after == before and len(after) == 300


@ensure
async def test_dry_run_prints_the_diff_and_writes_nothing(etcd: EtcdCluster, client: Client,
                                                          prefix: bytes,
                                                          tmp_path: Path) -> None:
    await client.put(prefix + b"same", b"1")
    await client.put(prefix + b"changed", b"old")
    records = [("same", "1"), ("changed", "new"), ("added", "x")]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"key": prefix.decode() + k, "value": v}) + "\n"
                            for k, v in records))
    done = cli("import", "--url", etcd.url, "--value-encoding", "utf8", "--dry-run", str(data))
    assert done.returncode == 0, done.stderr
    assert "1 new, 1 changed, 1 unchanged; nothing written" in done.stderr
    assert done.stdout.count("+ ") == 1 and done.stdout.count("~ ") == 1
    assert await count(client, prefix) == 2
    assert (await client.get(prefix + b"changed")).kvs[0].value == b"old"


@ensure
async def test_failed_import_resumes_from_checkpoint(etcd: EtcdCluster, client: Client,
                                                     prefix: bytes, tmp_path: Path) -> None:
    """A bad record stops the import after the chunks before it; fixing the file and
    running again with the same checkpoint writes the rest, nothing twice."""
    good = [json.dumps({"key": prefix.decode() + f"r{i:04d}", "value": "dg=="})
            for i in range(1000)]
    broken = list(good)
    broken[600] = json.dumps({"key": prefix.decode() + "r0600", "value": "not base64!"})
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(broken) + "\n")
    checkpoint = tmp_path / "import.checkpoint"
    failed = cli("import", "--url", etcd.url, "--checkpoint", str(checkpoint), str(data))
    assert failed.returncode == 2 and "record 601" in failed.stderr
    assert checkpoint.read_text() == "512"  # 4 chunks of 128
    assert await count(client, prefix) == 512

    data.write_text("\n".join(good) + "\n")
    resumed = cli("import", "--url", etcd.url, "--checkpoint", str(checkpoint), str(data))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after 512 records" in resumed.stderr
    assert "imported 488 records" in resumed.stderr
    assert await count(client, prefix) == 1000
    assert not checkpoint.exists()


@ensure
async def test_map_export_decodes_keys_and_values(etcd: EtcdCluster, client: Client,
                                                  prefix: bytes, tmp_path: Path) -> None:
    db = Database(client, prefix=prefix)
    table = pmap.MapOidJson(5)
    async with db.begin(write=True) as txn:
        for i in (3, 1, 2):
            table[txn, i] = {"n": i}
    args = ["--prefix", prefix.decode(), "--map", "5", "--key-type", "Oid",
            "--value-type", "Json"]
    dump = tmp_path / "map.jsonl"
    assert cli("export", "--url", etcd.url, *args, "-o", str(dump)).returncode == 0
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert rows == [{"key": i, "value": {"n": i}} for i in (1, 2, 3)]
    async with db.begin(write=True) as txn:
        await table.delete_range(txn)
    assert cli("import", "--url", etcd.url, *args, str(dump)).returncode == 0
    async with db.begin() as txn:
        assert [kv async for kv in table.select(txn)] == [(i, {"n": i}) for i in (1, 2, 3)]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_rate_and_eta_on_a_terminal() -> None:
    stream = _Tty()
    progress = Progress(1000, stream)
    progress.update(250, force=True)
    text = stream.getvalue()
    assert text.startswith("\r[#######") and "250/1000" in text
    assert "/s" in text and "ETA" in text
    quiet = io.StringIO()
    Progress(1000, quiet).update(250, force=True)
    assert quiet.getvalue() == ""  # not a terminal: no bar in logs or pipes
