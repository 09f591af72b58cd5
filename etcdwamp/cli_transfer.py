"""``etcdwamp export`` / ``etcdwamp import``: a key prefix or a map to JSON lines/CSV and back.

Records are ``{"key": ..., "value": ...}`` (JSON lines) or ``key,value`` rows
(CSV). Raw keys and values are encoded as chosen: ``utf8``, ``base64`` or
``hex``. With ``--map SLOT --map-type MapUuidCbor`` (or ``--key-type Uuid
--value-type Cbor``) records hold the map's own keys and values as JSON:
strings, ints and JSON values as they are, UUIDs as strings, bytes as base64,
composite keys as lists, sets as sorted lists. Values that need not be JSON
(CBOR, pickle, FlatBuffers) are exported as the base64 of their stored bytes,
so that an import writes back exactly what was exported.

``export -o FILE`` writes a temporary file beside FILE and renames it over
FILE only when the export is complete: a failed export leaves FILE as it was.

Imports write in chunks of ``--chunk`` keys (etcd's txn limit, 128), each chunk
atomic, the whole not. ``--checkpoint FILE`` records how many records were
written, so a failed import run again with the same checkpoint resumes after
the last written chunk. ``--dry-run`` writes nothing and prints what would
change, each key as the map's own key (or in ``--key-encoding``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from tqdm import tqdm

from .cli_transfer_args import ENCODINGS, TransferError, add_arguments
from .client import Client
from .pmap import MAP_TYPES
from .pmap.codecs import (
    BinaryKey,
    BinaryValue,
    Bytes16Key,
    Bytes16Value,
    Bytes20Key,
    Bytes20Value,
    Bytes32Key,
    Bytes32Value,
    CompositeKey,
    JsonValue,
    KeyCodec,
    OidKey,
    OidSetValue,
    OidValue,
    SlotKey,
    StringKey,
    StringValue,
    TimestampKey,
    TimestampValue,
    UuidKey,
    UuidSetValue,
    UuidValue,
    ValueCodec,
)
from .wire import KeySet, OpSet, Transaction

__all__ = ["ENCODINGS", "MapJson", "RecordError", "TransferError", "add_arguments",
           "do_export", "do_import", "read_records"]

_TEXT = (StringKey, StringValue)
_INT = (OidKey, OidValue, TimestampKey, TimestampValue, SlotKey)
_UUID = (UuidKey, UuidValue)
_BYTES = (BinaryKey, BinaryValue, Bytes16Key, Bytes16Value, Bytes20Key, Bytes20Value,
          Bytes32Key, Bytes32Value)


class RecordError(TransferError):
    """One input record is bad: says which record (1-based) on which line."""

    def __init__(self, record: int, line: int, detail: str) -> None:
        super().__init__(f"record {record} (line {line}): {detail}")
        self.record = record
        self.line = line


def encode_field(data: bytes, encoding: str) -> str:
    """Raw bytes as text: ``utf8``, ``base64`` or ``hex``."""
    if encoding == "utf8":
        return data.decode("utf-8")
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    return data.hex()


def decode_field(text: str, encoding: str) -> bytes:
    """The inverse of :func:`encode_field`; raises ``ValueError`` for bad text."""
    if encoding == "utf8":
        return text.encode("utf-8")
    if encoding == "base64":
        return base64.b64decode(text, validate=True)
    return bytes.fromhex(text)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{what} is not valid base64: {exc}") from None


def _to_json(codec: object, value: Any) -> Any:
    if isinstance(codec, CompositeKey):
        return [_to_json(part, v) for part, v in zip(codec.parts, value, strict=True)]
    if isinstance(codec, _UUID):
        return str(value)
    if isinstance(codec, _BYTES):
        return _b64(value)
    if isinstance(codec, UuidSetValue):
        return sorted(str(u) for u in value)
    if isinstance(codec, OidSetValue):
        return sorted(value)
    return value  # text, ints, JSON


def _from_json(codec: object, data: Any, what: str) -> Any:
    if isinstance(codec, CompositeKey):
        if not isinstance(data, list) or len(data) != len(codec.parts):
            raise ValueError(f"{what} must be a list of {len(codec.parts)} parts")
        return tuple(_from_json(p, d, what) for p, d in zip(codec.parts, data, strict=True))
    if isinstance(codec, _TEXT):
        if not isinstance(data, str):
            raise ValueError(f"{what} must be a string, got {type(data).__name__}")
        return data
    if isinstance(codec, _INT):
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValueError(f"{what} must be an integer, got {type(data).__name__}")
        return data
    if isinstance(codec, _UUID):
        return uuid.UUID(str(data))
    if isinstance(codec, _BYTES):
        return _unb64(data, what)
    if isinstance(codec, UuidSetValue):
        return {uuid.UUID(str(u)) for u in data}
    if isinstance(codec, OidSetValue):
        return {int(i) for i in data}
    return data  # JSON


def _is_plain(codec: object) -> bool:
    """True if a value codec's decoded values have a faithful JSON form (see _to_json)."""
    if isinstance(codec, CompositeKey):
        return all(_is_plain(p) for p in codec.parts)
    return isinstance(codec, (*_TEXT, *_INT, *_UUID, *_BYTES, UuidSetValue, OidSetValue,
                              JsonValue))


class MapJson:
    """A map's keys and values in the JSON form of its records (see the module doc)."""

    def __init__(self, key_codec: KeyCodec[Any], value_codec: ValueCodec[Any]) -> None:
        self.key_codec = key_codec
        self.value_codec = value_codec
        self.opaque_values = not _is_plain(value_codec)

    @classmethod
    def for_type(cls, name: str) -> MapJson:
        """For a map class by name (``"MapUuidCbor"``); ``KeyError`` if there is none."""
        cls_: Any = MAP_TYPES[name]  # the named classes take just the slot
        instance = cls_(0)
        return cls(instance.key_codec, instance.value_codec)

    def key_out(self, data: bytes) -> Any:
        """A stored key (after the slot) as its record field."""
        return _to_json(self.key_codec, self.key_codec.decode(data))

    def value_out(self, data: bytes) -> Any:
        """A stored value as its record field."""
        if self.opaque_values:
            return _b64(data)
        return _to_json(self.value_codec, self.value_codec.decode(data))

    def key_in(self, obj: Any) -> bytes:
        """A record's key field as the stored key; ``ValueError`` if it has the wrong shape."""
        return self.key_codec.encode(_from_json(self.key_codec, obj, "key"))

    def value_in(self, obj: Any) -> bytes:
        """A record's value field as the stored value; ``ValueError`` if it has the wrong
        shape."""
        if self.opaque_values:
            return _unb64(obj, "value")
        return self.value_codec.encode(_from_json(self.value_codec, obj, "value"))


@dataclass
class Codec:
    """Turns etcd key/value bytes into record fields and back."""

    prefix: bytes
    key_encoding: str
    value_encoding: str
    mapped: MapJson | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Codec:
        prefix = args.prefix.encode("utf-8")
        mapped = None
        if args.map is not None:
            name = args.map_type
            if name is None:
                if not args.key_type or not args.value_type:
                    raise TransferError("--map needs --map-type, or --key-type and --value-type")
                name = f"Map{args.key_type}{args.value_type}"
            elif args.key_type or args.value_type:
                raise TransferError("give --map-type or --key-type/--value-type, not both")
            if name not in MAP_TYPES:
                raise TransferError(f"no map type {name!r} (see etcdwamp.pmap.MAP_TYPES)")
            prefix += args.map.to_bytes(2, "big")
            mapped = MapJson.for_type(name)
        elif args.map_type or args.key_type or args.value_type:
            raise TransferError("--map-type, --key-type and --value-type need --map SLOT")
        return cls(prefix, args.key_encoding, args.value_encoding, mapped)

    def export(self, key: bytes, value: bytes) -> tuple[Any, Any]:
        if self.mapped is None:
            return encode_field(key, self.key_encoding), encode_field(value, self.value_encoding)
        return self.mapped.key_out(key[len(self.prefix):]), self.mapped.value_out(value)

    def import_(self, key: Any, value: Any) -> tuple[bytes, bytes]:
        if self.mapped is None:
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError("key and value must be strings")
            return (decode_field(key, self.key_encoding),
                    decode_field(value, self.value_encoding))
        return self.prefix + self.mapped.key_in(key), self.mapped.value_in(value)

    def show_key(self, key: bytes) -> str:
        """A key as the user wrote it: the map's key as JSON, or in ``--key-encoding``."""
        if self.mapped is None:
            return encode_field(key, self.key_encoding)
        return json.dumps(self.mapped.key_out(key[len(self.prefix):]), ensure_ascii=False)


def _progress(total: int | None, unit: str) -> Any:
    # Only on a terminal: logs and pipes get the one summary line instead.
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=not sys.stderr.isatty(),
                dynamic_ncols=True, leave=False)


class _AtomicOutput:
    """A text file written beside ``path`` and renamed over it only by ``commit()``."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part",
                                        dir=directory)
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(self.tmp, mode)  # mkstemp's 0600 would otherwise replace the usual mode
        self.stream: IO[str] = os.fdopen(fd, "w", encoding="utf-8", newline="")

    def commit(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.stream.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


async def do_export(client: Client, args: argparse.Namespace) -> int:
    """Write every key under the prefix (or map) to ``--output`` or stdout."""
    codec = Codec.from_args(args)
    target = _AtomicOutput(args.output) if args.output not in (None, "-") else None
    out = target.stream if target is not None else sys.stdout
    writer = csv.writer(out) if args.format == "csv" else None
    keyset = KeySet(codec.prefix, prefix=True)
    n = 0
    try:
        # The bar's total costs etcd a walk over the range: only for a bar shown.
        total = ((await client.get(keyset, count_only=True)).count if sys.stderr.isatty()
                 else None)
        with _progress(total, "rec") as bar:
            async for kv in client.range_iter(keyset, page_size=args.page_size):
                try:
                    key, value = codec.export(kv.key, kv.value)
                except Exception as exc:  # a codec's own error (struct, UUID, UTF-8, ...)
                    raise TransferError(f"key {kv.key!r} cannot be exported as "
                                        f"{args.map_type or 'this map'}: {exc}") from None
                if writer is not None:
                    writer.writerow([key, json.dumps(value) if codec.mapped else value])
                else:
                    out.write(_json_line(key, value))
                n += 1
                bar.update(1)
        if target is not None:
            target.commit()
        else:
            out.flush()
    except BaseException:
        if target is not None:
            target.discard()
        raise
    print(f"exported {n} records", file=sys.stderr)
    return 0


_JSON = json.JSONEncoder(ensure_ascii=False)
_quote = json.encoder.encode_basestring  # what _JSON writes a str as, without the dict around


def _json_line(key: Any, value: Any) -> str:
    """One JSON lines record, as ``json.dumps({"key": key, "value": value},
    ensure_ascii=False)`` writes it; two strings (the raw case) without building a dict,
    a quarter of the export's time per record otherwise."""
    if type(key) is str and type(value) is str:
        return '{"key": ' + _quote(key) + ', "value": ' + _quote(value) + "}\n"
    return _JSON.encode({"key": key, "value": value}) + "\n"


def read_records(path: str, fmt: str, mapped: bool) -> Iterator[tuple[int, int, Any, Any]]:
    """``(record number, line number, key, value)`` for each record of the file (``-``: stdin).

    :raises RecordError: a record cannot be parsed
    :raises OSError: the file cannot be read
    """
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8", newline="")  # noqa: SIM115
    record = 0
    try:
        if fmt == "csv":
            reader = csv.reader(stream)
            for row in reader:
                if not row:
                    continue
                record += 1
                line = reader.line_num
                if len(row) != 2:
                    raise RecordError(record, line, f"a CSV row needs 2 fields, got {len(row)}")
                value: Any = row[1]
                if mapped:
                    try:
                        value = json.loads(row[1])
                    except ValueError:
                        raise RecordError(record, line, "the value is not JSON") from None
                yield record, line, row[0], value
        else:
            for line, text in enumerate(stream, 1):
                if not text.strip():
                    continue
                record += 1
                try:
                    obj = json.loads(text)
                    key, value = obj["key"], obj["value"]
                except (ValueError, KeyError, TypeError):
                    raise RecordError(record, line, "not a {\"key\": ..., \"value\": ...} "
                                      "JSON object") from None
                yield record, line, key, value
    except UnicodeDecodeError as exc:
        raise RecordError(record + 1, 0, f"not UTF-8 text: {exc}") from None
    finally:
        if stream is not sys.stdin:
            stream.close()


def _count_records(path: str) -> int | None:
    if path == "-":
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


async def do_import(client: Client, args: argparse.Namespace) -> int:
    """Write the records of ``input`` (``-``: stdin) in chunks of ``--chunk`` keys."""
    codec = Codec.from_args(args)
    done_before = 0
    if args.checkpoint and os.path.exists(args.checkpoint):
        with open(args.checkpoint, encoding="ascii") as f:
            text = f.read().strip()
        if not text.isdigit():
            raise TransferError(f"{args.checkpoint}: not a checkpoint (a record count)")
        done_before = int(text)
        print(f"resuming after {done_before} records", file=sys.stderr)
    total = _count_records(args.input)
    added = changed = same = 0
    last = 0
    chunk: list[tuple[bytes, bytes]] = []
    first_in_chunk = 0

    async def flush() -> None:
        nonlocal added, changed, same
        if not chunk:
            return
        try:
            if args.dry_run:
                for key, value in chunk:
                    current = (await client.get(key)).first
                    if current is None:
                        added += 1
                        print(f"+ {codec.show_key(key)}")
                    elif current.value != value:
                        changed += 1
                        print(f"~ {codec.show_key(key)}")
                    else:
                        same += 1
            else:
                await client.txn(Transaction(success=[OpSet(k, v) for k, v in chunk]))
                if args.checkpoint:
                    _write_checkpoint(args.checkpoint, last)
        except BrokenPipeError:
            raise  # the reader of a dry run went away (| head): not an import failure
        except Exception as exc:
            # Name the records of the failed chunk: the ones before it are written.
            raise TransferError(f"records {first_in_chunk}-{last}: "
                                f"{type(exc).__name__}: {exc}") from exc
        chunk.clear()

    with _progress(total, "rec") as bar:
        if done_before:
            bar.update(min(done_before, total or done_before))
        for record, line, key, value in read_records(args.input, args.format,
                                                     codec.mapped is not None):
            if record <= done_before:
                continue
            try:
                pair = codec.import_(key, value)
            except (ValueError, TypeError, binascii.Error) as exc:
                raise RecordError(record, line, str(exc)) from None
            if not chunk:
                first_in_chunk = record
            chunk.append(pair)
            last = record
            if len(chunk) >= args.chunk:
                await flush()
            bar.update(1)
        await flush()
    if args.dry_run:
        print(f"dry run: {added} new, {changed} changed, {same} unchanged; nothing written",
              file=sys.stderr)
    else:
        print(f"imported {max(last - done_before, 0)} records", file=sys.stderr)
        if args.checkpoint and os.path.exists(args.checkpoint):
            os.remove(args.checkpoint)
    return 0


def _write_checkpoint(path: str, n: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(str(n))
    os.replace(tmp, path)  # atomic: a crash leaves the old or the new count
