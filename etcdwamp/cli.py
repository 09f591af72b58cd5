"""``etcdwamp export`` / ``etcdwamp import``: a key prefix or a map to JSON lines/CSV and back.

Records are ``{"key": ..., "value": ...}`` (JSON lines) or ``key,value`` rows
(CSV), each field encoded as chosen: ``utf8``, ``base64`` or ``hex`` for raw
bytes; with ``--map SLOT --key-type T --value-type T`` keys and values are the
map's decoded Python values (JSON-typed values stay JSON).

Imports write in chunks of ``--chunk`` keys (etcd's txn limit, 128), each chunk
atomic, the whole not. ``--checkpoint FILE`` records how many records were
written, so a failed import run again with the same checkpoint resumes after
the last written chunk. ``--dry-run`` writes nothing and prints what would
change.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from typing import IO, Any

from twisted.internet import defer, task

from .client import Client
from .pmap.maps import _KEY_CODECS, _VALUE_CODECS
from .wire import KeySet, OpSet, Transaction

__all__ = ["main"]

ENCODINGS = ("utf8", "base64", "hex")


def encode_field(data: bytes, encoding: str) -> str:
    if encoding == "utf8":
        return data.decode("utf-8")
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    return data.hex()


def decode_field(text: str, encoding: str) -> bytes:
    if encoding == "utf8":
        return text.encode("utf-8")
    if encoding == "base64":
        return base64.b64decode(text, validate=True)
    return bytes.fromhex(text)


class Codec:
    """Turns etcd key/value bytes into export fields and back."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.prefix = args.prefix.encode("utf-8")
        self.key_encoding = args.key_encoding
        self.value_encoding = args.value_encoding
        self.map_key = self.map_value = None
        if args.map is not None:
            if not args.key_type or not args.value_type:
                raise SystemExit("--map needs --key-type and --value-type")
            self.prefix += int(args.map).to_bytes(2, "big")
            self.map_key = _KEY_CODECS[args.key_type]()
            self.map_value = _VALUE_CODECS[args.value_type]()

    def export(self, key: bytes, value: bytes) -> tuple[Any, Any]:
        if self.map_key is None or self.map_value is None:
            return encode_field(key, self.key_encoding), encode_field(value, self.value_encoding)
        return (_jsonable(self.map_key.decode(key[len(self.prefix):])),
                _jsonable(self.map_value.decode(value)))

    def import_(self, key: Any, value: Any) -> tuple[bytes, bytes]:
        if self.map_key is None or self.map_value is None:
            return (decode_field(str(key), self.key_encoding),
                    decode_field(str(value), self.value_encoding))
        kname = type(self.map_key).__name__
        if kname == "UuidKey":
            key = uuid.UUID(str(key))
        elif kname == "OidKey":
            key = int(key)
        elif kname == "BinaryKey":
            key = base64.b64decode(str(key))
        vname = type(self.map_value).__name__
        if vname == "UuidValue":
            value = uuid.UUID(str(value))
        elif vname == "OidValue":
            value = int(value)
        elif vname in ("BinaryValue", "FlatBuffersValue", "PickleValue", "CborValue"):
            return self.prefix + self.map_key.encode(key), base64.b64decode(str(value))
        return self.prefix + self.map_key.encode(key), self.map_value.encode(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


class Progress:
    """A one-line progress bar with rate and ETA, only on a terminal."""

    def __init__(self, total: int | None, stream: IO[str]) -> None:
        self.total, self.stream = total, stream
        self.enabled = stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < 0.2):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            eta = (self.total - done) / rate if rate else 0.0
            text = f"[{bar:<30}] {done}/{self.total} {rate:,.0f}/s ETA {eta:,.0f}s"
        else:
            text = f"{done} records {rate:,.0f}/s"
        self.stream.write("\r" + text)
        self.stream.flush()

    def finish(self, done: int) -> None:
        self.update(done, force=True)
        if self.enabled:
            self.stream.write("\n")


async def do_export(reactor: Any, args: argparse.Namespace) -> int:
    client = Client(reactor, url=args.url)
    codec = Codec(args)
    out: IO[str] = (open(args.output, "w", encoding="utf-8", newline="")  # noqa: SIM115
                    if args.output else sys.stdout)
    writer = csv.writer(out) if args.format == "csv" else None
    keyset = KeySet(codec.prefix, prefix=True)
    total = (await client.get(keyset, count_only=True)).count
    progress = Progress(total, sys.stderr)
    n = 0
    try:
        async for kv in client.range_iter(keyset, page_size=args.page_size):
            key, value = codec.export(kv.key, kv.value)
            if writer is not None:
                writer.writerow([key, json.dumps(value) if codec.map_value else value])
            else:
                out.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
            n += 1
            progress.update(n)
    finally:
        progress.finish(n)
        if out is not sys.stdout:
            out.close()
        await client.close()
    print(f"exported {n} records", file=sys.stderr)
    return 0


def read_records(path: str, fmt: str, mapped: bool) -> Iterator[tuple[Any, Any]]:
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8", newline="")  # noqa: SIM115
    try:
        if fmt == "csv":
            for row in csv.reader(stream):
                if len(row) != 2:
                    raise ValueError(f"CSV row needs 2 fields, got {len(row)}: {row!r}")
                yield row[0], json.loads(row[1]) if mapped else row[1]
        else:
            for lineno, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    yield obj["key"], obj["value"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"line {lineno}: not a {{key, value}} record") from exc
    finally:
        if stream is not sys.stdin:
            stream.close()


def _count_lines(path: str) -> int | None:
    if path == "-":
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


async def do_import(reactor: Any, args: argparse.Namespace) -> int:
    client = Client(reactor, url=args.url)
    codec = Codec(args)
    done_before = 0
    if args.checkpoint and os.path.exists(args.checkpoint):
        with open(args.checkpoint, encoding="ascii") as f:
            done_before = int(f.read().strip() or 0)
        print(f"resuming after {done_before} records", file=sys.stderr)
    progress = Progress(_count_lines(args.input), sys.stderr)
    added = changed = same = 0
    n = 0
    chunk: list[tuple[bytes, bytes]] = []

    async def flush() -> None:
        nonlocal added, changed, same
        if not chunk:
            return
        if args.dry_run:
            for key, value in chunk:
                current = (await client.get(key)).first
                if current is None:
                    added += 1
                    print(f"+ {encode_field(key, 'base64')}")
                elif current.value != value:
                    changed += 1
                    print(f"~ {encode_field(key, 'base64')}")
                else:
                    same += 1
        else:
            await client.txn(Transaction(success=[OpSet(k, v) for k, v in chunk]))
            if args.checkpoint:
                _write_checkpoint(args.checkpoint, n)
        chunk.clear()

    try:
        for key, value in read_records(args.input, args.format, codec.map_value is not None):
            n += 1
            if n <= done_before:
                continue
            chunk.append(codec.import_(key, value))
            if len(chunk) >= args.chunk:
                await flush()
            progress.update(n)
        await flush()
    except (ValueError, binascii.Error, TypeError) as exc:
        print(f"error: record {n}: {exc}", file=sys.stderr)
        return 2
    finally:
        progress.finish(n)
        await client.close()
    if args.dry_run:
        print(f"dry run: {added} new, {changed} changed, {same} unchanged; nothing written",
              file=sys.stderr)
    else:
        print(f"imported {n - done_before} records", file=sys.stderr)
        if args.checkpoint and os.path.exists(args.checkpoint):
            os.remove(args.checkpoint)
    return 0


def _write_checkpoint(path: str, n: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(str(n))
    os.replace(tmp, path)  # atomic: a crash leaves the old or the new count


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="etcdwamp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("export", "import"):
        s = sub.add_parser(name)
        s.add_argument("--url", default="http://127.0.0.1:2379")
        s.add_argument("--prefix", default="", help="key prefix (or the Database prefix)")
        s.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
        s.add_argument("--key-encoding", choices=ENCODINGS, default="utf8")
        s.add_argument("--value-encoding", choices=ENCODINGS, default="base64")
        s.add_argument("--map", type=int, help="a pmap slot under --prefix")
        s.add_argument("--key-type", choices=sorted(_KEY_CODECS))
        s.add_argument("--value-type", choices=sorted(_VALUE_CODECS))
        if name == "export":
            s.add_argument("-o", "--output", help="file (default: stdout)")
            s.add_argument("--page-size", type=int, default=1000)
        else:
            s.add_argument("input", help="file, or - for stdin")
            s.add_argument("--chunk", type=int, default=128,
                           help="keys per txn (at most etcd's --max-txn-ops)")
            s.add_argument("--dry-run", action="store_true")
            s.add_argument("--checkpoint", help="file recording progress, for resuming")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = do_export if args.command == "export" else do_import
    result: list[int] = []

    async def run(reactor: Any) -> None:
        result.append(await command(reactor, args))

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as exc:
        if exc.code:
            return int(exc.code) if isinstance(exc.code, int) else 1
    return result[0] if result else 1



if __name__ == "__main__":
    sys.exit(main())
