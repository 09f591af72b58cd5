"""``etcdwamp export`` / ``import`` through the installed console script, against a real etcd."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import cbor2
import pytest_twisted
from test_cli import ETCDWAMP, cli, one_error_line

from etcdwamp import Client, Database, KeySet, pmap
from etcdwamp.testing import EtcdCluster, free_port

ensure = pytest_twisted.ensureDeferred


async def count(client: Client, prefix: bytes) -> int:
    return (await client.get(KeySet(prefix, prefix=True), count_only=True)).count


async def snapshot(client: Client, prefix: bytes) -> list[tuple[bytes, bytes]]:
    return [(kv.key, kv.value) async for kv in client.range_iter(KeySet(prefix, prefix=True))]


def test_the_script_is_the_installed_one() -> None:
    assert Path(ETCDWAMP).name == "etcdwamp"


@ensure
async def test_round_trip_100000_keys(etcd: EtcdCluster, client: Client, prefix: bytes,
                                      tmp_path: Path) -> None:
    """Export 100,000 keys to JSON lines, delete them, import them back: identical."""
    db = Database(client)
    n = 100_000
    await db.put_many((prefix + b"k%06d" % i, b"\x00v" + str(i).encode()) for i in range(n))
    dump = tmp_path / "dump.jsonl"
    out = cli("--endpoints", etcd.url, "export", "--prefix", prefix.decode(), "-o", str(dump))
    assert out.returncode == 0, out.stderr
    assert f"exported {n} records" in out.stderr
    lines = dump.read_text().splitlines()
    assert len(lines) == n
    assert json.loads(lines[0]) == {"key": prefix.decode() + "k000000",
                                    "value": "AHYw"}  # base64 of b"\x00v0"
    before = await snapshot(client, prefix)
    await client.delete(KeySet(prefix, prefix=True))
    assert await count(client, prefix) == 0
    back = cli("--endpoints", etcd.url, "import", str(dump))
    assert back.returncode == 0, back.stderr
    assert f"imported {n} records" in back.stderr
    assert await snapshot(client, prefix) == before


@ensure
async def test_csv_hex_round_trip(etcd: EtcdCluster, client: Client, prefix: bytes,
                                  tmp_path: Path) -> None:
    for i in range(300):
        await client.put(prefix + bytes([i % 256, 0xFF]) + b"%d" % i, bytes([i % 256]) * 3)
    dump = tmp_path / "dump.csv"
    enc = ["--key-encoding", "hex", "--value-encoding", "hex", "--format", "csv"]
    done = cli("export", "--endpoints", etcd.url, "--prefix", prefix.decode(), *enc,
               "-o", str(dump))
    assert done.returncode == 0, done.stderr
    before = await snapshot(client, prefix)
    await client.delete(KeySet(prefix, prefix=True))
    done = cli("import", "--endpoints", etcd.url, *enc, str(dump))
    assert done.returncode == 0, done.stderr
    after = await snapshot(client, prefix)
    assert after == before and len(after) == 300


@ensure
async def test_old_url_option_still_works(etcd: EtcdCluster, client: Client, prefix: bytes,
                                          tmp_path: Path) -> None:
    await client.put(prefix + b"k", b"v")
    dump = tmp_path / "dump.jsonl"
    done = cli("export", "--url", etcd.url, "--prefix", prefix.decode(), "-o", str(dump))
    assert done.returncode == 0, done.stderr
    assert json.loads(dump.read_text()) == {"key": prefix.decode() + "k", "value": "dg=="}


@ensure
async def test_failed_export_leaves_the_old_dump_alone(etcd: EtcdCluster, client: Client,
                                                       prefix: bytes, tmp_path: Path) -> None:
    """A failing export (here: a map key that does not decode) keeps FILE as it was and
    leaves no temporary file behind."""
    dump = tmp_path / "dump.jsonl"
    dump.write_text("the previous dump\n")
    db = Database(client, prefix=prefix)
    table = pmap.MapOidString(1)
    async with db.begin(write=True) as txn:
        for i in range(50):
            table[txn, i] = "ok"
    await client.put(prefix + b"\x00\x01" + b"bad", b"x")  # 3 bytes: not an Oid key
    args = ["--prefix", prefix.decode(), "--map", "1", "--map-type", "MapOidString"]
    failed = cli("--endpoints", etcd.url, "export", *args, "-o", str(dump))
    assert "cannot be exported" in one_error_line(failed)
    unreachable = cli("--endpoints", f"127.0.0.1:{free_port()}", "--timeout", "3", "export",
                      "-o", str(dump))
    one_error_line(unreachable)
    assert dump.read_text() == "the previous dump\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.jsonl"]


@ensure
async def test_map_uuid_cbor_exports_and_imports_byte_for_byte(
        etcd: EtcdCluster, client: Client, prefix: bytes, tmp_path: Path) -> None:
    """CBOR values (here with bytes inside, which JSON cannot hold) export as the base64
    of their stored bytes; keys as UUID strings; the import writes back the same bytes."""
    db = Database(client, prefix=prefix)
    table = pmap.MapUuidCbor(7)
    ids = sorted(uuid.UUID(int=i * 7919) for i in range(1, 6))
    async with db.begin(write=True) as txn:
        for n, key in enumerate(ids):
            table[txn, key] = {"n": n, "blob": bytes([n]) * 3}
    args = ["--prefix", prefix.decode(), "--map", "7", "--map-type", "MapUuidCbor"]
    dump = tmp_path / "map.jsonl"
    done = cli("--endpoints", etcd.url, "export", *args, "-o", str(dump))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [row["key"] for row in rows] == [str(k) for k in ids]
    assert cbor2.loads(base64.b64decode(rows[2]["value"])) == {"n": 2, "blob": b"\x02" * 3}
    before = await snapshot(client, prefix)
    await client.delete(KeySet(prefix, prefix=True))
    done = cli("--endpoints", etcd.url, "import", *args, str(dump))
    assert done.returncode == 0, done.stderr
    assert await snapshot(client, prefix) == before


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
    assert cli("--endpoints", etcd.url, "export", *args, "-o", str(dump)).returncode == 0
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert rows == [{"key": i, "value": {"n": i}} for i in (1, 2, 3)]
    async with db.begin(write=True) as txn:
        await table.delete_range(txn)
    assert cli("--endpoints", etcd.url, "import", *args, str(dump)).returncode == 0
    async with db.begin() as txn:
        assert [kv async for kv in table.select(txn)] == [(i, {"n": i}) for i in (1, 2, 3)]


@ensure
async def test_composite_key_map_round_trip(etcd: EtcdCluster, client: Client, prefix: bytes,
                                            tmp_path: Path) -> None:
    db = Database(client, prefix=prefix)
    table = pmap.MapUuidStringUuid(9)
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    async with db.begin(write=True) as txn:
        table[txn, (a, "x")] = b
    args = ["--prefix", prefix.decode(), "--map", "9", "--map-type", "MapUuidStringUuid"]
    dump = tmp_path / "map.jsonl"
    assert cli("--endpoints", etcd.url, "export", *args, "-o", str(dump)).returncode == 0
    assert json.loads(dump.read_text()) == {"key": [str(a), "x"], "value": str(b)}
    before = await snapshot(client, prefix)
    await client.delete(KeySet(prefix, prefix=True))
    assert cli("--endpoints", etcd.url, "import", *args, str(dump)).returncode == 0
    assert await snapshot(client, prefix) == before


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
    done = cli("--endpoints", etcd.url, "import", "--value-encoding", "utf8", "--dry-run",
               str(data))
    assert done.returncode == 0, done.stderr
    assert "1 new, 1 changed, 1 unchanged; nothing written" in done.stderr
    assert done.stdout.splitlines() == [f"~ {prefix.decode()}changed", f"+ {prefix.decode()}added"]
    assert await count(client, prefix) == 2
    assert (await client.get(prefix + b"changed")).kvs[0].value == b"old"


@ensure
async def test_dry_run_shows_map_keys_in_their_own_type(etcd: EtcdCluster, client: Client,
                                                        prefix: bytes, tmp_path: Path) -> None:
    db = Database(client, prefix=prefix)
    table = pmap.MapUuidString(3)
    known = uuid.UUID(int=10)
    async with db.begin(write=True) as txn:
        table[txn, known] = "old"
    new = uuid.UUID(int=11)
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"key": str(known), "value": "new"}) + "\n"
                    + json.dumps({"key": str(new), "value": "v"}) + "\n")
    done = cli("--endpoints", etcd.url, "import", "--prefix", prefix.decode(), "--map", "3",
               "--map-type", "MapUuidString", "--dry-run", str(data))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f'~ "{known}"', f'+ "{new}"']


@ensure
async def test_failed_import_names_the_record_and_resumes_from_checkpoint(
        etcd: EtcdCluster, client: Client, prefix: bytes, tmp_path: Path) -> None:
    """A bad record stops the import after the chunks before it and is named by its
    record and line number (blank lines are not records); fixing the file and running
    again with the same checkpoint writes the rest, nothing twice."""
    good = [json.dumps({"key": prefix.decode() + f"r{i:04d}", "value": "dg=="})
            for i in range(1000)]
    broken = list(good)
    broken[600] = json.dumps({"key": prefix.decode() + "r0600", "value": "not base64!"})
    data = tmp_path / "in.jsonl"
    # Two blank lines before the bad record: record 601 is on line 603.
    data.write_text("\n".join(broken[:10]) + "\n\n\n" + "\n".join(broken[10:]) + "\n")
    checkpoint = tmp_path / "import.checkpoint"
    failed = cli("--endpoints", etcd.url, "import", "--checkpoint", str(checkpoint), str(data))
    assert "record 601 (line 603)" in one_error_line(failed)
    assert checkpoint.read_text() == "512"  # 4 chunks of 128
    assert await count(client, prefix) == 512

    data.write_text("\n".join(good) + "\n")
    resumed = cli("--endpoints", etcd.url, "import", "--checkpoint", str(checkpoint), str(data))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after 512 records" in resumed.stderr
    assert "imported 488 records" in resumed.stderr
    assert await count(client, prefix) == 1000
    assert not checkpoint.exists()


def test_bad_csv_row_is_named(etcd: EtcdCluster, tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text("a,YQ==\nb,Yg==\nc\n")
    failed = cli("--endpoints", etcd.url, "import", "--format", "csv", str(data))
    assert "record 3 (line 3): a CSV row needs 2 fields, got 1" in one_error_line(failed)


@ensure
async def test_progress_bar_only_on_a_terminal(etcd: EtcdCluster, client: Client,
                                               prefix: bytes, tmp_path: Path) -> None:
    import fcntl
    import os
    import struct
    import subprocess
    import termios

    from test_cli import clean_env

    for i in range(50):
        await client.put(prefix + b"%02d" % i, b"v")
    args = [ETCDWAMP, "--endpoints", etcd.url, "export", "--prefix", prefix.decode(),
            "-o", str(tmp_path / "dump.jsonl")]
    piped = subprocess.run(args, capture_output=True, text=True, env=clean_env(), timeout=60,
                           check=False)
    assert piped.returncode == 0 and piped.stderr == "exported 50 records\n", piped.stderr
    controller, terminal = os.openpty()
    # A real terminal has a size; tqdm draws nothing in a zero-width one.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        on_tty = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=terminal,
                                env=clean_env(), timeout=60, check=False)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert on_tty.returncode == 0
    assert b"/50 [" in shown and b"rec/s]" in shown, shown
    assert b"exported 50 records" in shown
