"""Key and value codecs one by one: the exact bytes they write (other readers,
zlmdb and txaioetcd among them, depend on them), that what they write reads
back, and that input they cannot hold is refused before anything is written."""

from __future__ import annotations

import json
import math
import pickle
import random
import threading
import uuid
import zlib
from typing import Any

import cbor2
import flatbuffers
import pytest
from flatbuffers import encode, number_types, packer
from flatbuffers.table import Table

from etcdwamp import pmap
from etcdwamp.pmap import codecs

U1 = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")


# -- numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [codecs.OidKey(), codecs.OidValue()])
def test_oids_are_8_bytes_big_endian_from_0_to_2_64_minus_1(codec: Any) -> None:
    assert codec.encode(0) == b"\x00" * 8
    assert codec.encode(258) == b"\x00" * 6 + b"\x01\x02"
    assert codec.encode(2**64 - 1) == b"\xff" * 8
    for oid in (0, 1, 2**53 + 1, 2**64 - 1):
        assert codec.decode(codec.encode(oid)) == oid


@pytest.mark.parametrize(("codec", "what"), [(codecs.OidKey(), "key"),
                                             (codecs.OidValue(), "value")])
def test_oids_refuse_what_is_no_oid(codec: Any, what: str) -> None:
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match=rf"{what} must be an OID in \[0, 2\*\*64 - 1\]"):
            codec.encode(bad)
    for wrong in (True, 1.0, "1", None):
        with pytest.raises(TypeError, match=f"{what} must be an int"):
            codec.encode(wrong)


def test_an_oid_key_has_exactly_8_bytes() -> None:
    for length in (7, 9):
        with pytest.raises(ValueError, match=f"an OID key has 8 bytes, got {length}"):
            codecs.OidKey().decode(b"\x01" * length)


def test_slots_are_2_bytes_big_endian_from_0_to_65535() -> None:
    slot = codecs.SlotKey()
    assert (slot.encode(0), slot.encode(258), slot.encode(65535)) == (
        b"\x00\x00", b"\x01\x02", b"\xff\xff")
    assert slot.decode(b"\x01\x02") == 258
    for bad in (-1, 65536):
        with pytest.raises(ValueError, match=r"a slot must be in \[0, 65535\]"):
            slot.encode(bad)
    with pytest.raises(TypeError, match="an int"):
        slot.encode(False)
    for length in (1, 3):
        with pytest.raises(ValueError, match=f"a slot has 2 bytes, got {length}"):
            slot.decode(b"\x00" * length)
    # A map in slot 0 is valid (zlmdb numbers slots from 0 too).
    assert pmap.MapOidCbor(0).key_bytes(_Db(), 1) == b"P/\x00\x00" + (1).to_bytes(8, "big")


class _Db:
    prefix = b"P/"


def test_timestamps_span_64_signed_bits() -> None:
    ts = codecs.TimestampKey()
    assert ts.encode(-(2**63)) == b"\x80" + b"\x00" * 7
    assert ts.encode(2**63 - 1) == b"\x7f" + b"\xff" * 7
    assert ts.encode(-1) == b"\xff" * 8
    for bad in (-(2**63) - 1, 2**63):
        with pytest.raises(ValueError, match="64 signed bits"):
            ts.encode(bad)
    with pytest.raises(TypeError, match="nanoseconds"):
        ts.encode(True)
    with pytest.raises(ValueError, match="a timestamp has 8 bytes, got 7"):
        ts.decode(b"\x00" * 7)


# -- bytes, strings, UUIDs -------------------------------------------------------------


@pytest.mark.parametrize(("codec", "what"), [(codecs.BinaryKey(), "key"),
                                             (codecs.BinaryValue(), "value")])
def test_binary_is_stored_as_it_is(codec: Any, what: str) -> None:
    for data in (b"", b"\x00\xffk", bytearray(b"ab"), memoryview(b"ab")):
        encoded = codec.encode(data)
        assert type(encoded) is bytes and encoded == bytes(data)
        assert codec.decode(encoded) == bytes(data)
    with pytest.raises(TypeError, match=f"{what} must be bytes, not str"):
        codec.encode("ab")


@pytest.mark.parametrize(("codec", "what"), [(codecs.StringKey(), "key"),
                                             (codecs.StringValue(), "value")])
def test_strings_are_utf_8(codec: Any, what: str) -> None:
    assert codec.encode("näme") == b"n\xc3\xa4me"
    assert codec.decode(b"n\xc3\xa4me") == "näme"
    with pytest.raises(TypeError, match=f"{what} must be str, not bytes"):
        codec.encode(b"x")
    with pytest.raises(ValueError, match=f"{what} is not encodable as UTF-8"):
        codec.encode("\ud800")
    with pytest.raises(UnicodeDecodeError):
        codec.decode(b"\xff")


@pytest.mark.parametrize(("codec", "what"), [(codecs.UuidKey(), "key"),
                                             (codecs.UuidValue(), "value")])
def test_uuids_are_their_16_bytes(codec: Any, what: str) -> None:
    assert codec.encode(U1) == U1.bytes
    assert codec.decode(U1.bytes) == U1
    with pytest.raises(TypeError, match=f"{what} must be a uuid.UUID, not str"):
        codec.encode(str(U1))
    with pytest.raises(ValueError):
        codec.decode(U1.bytes[:15])


@pytest.mark.parametrize(("codec", "size"), [(codecs.Bytes16Key(), 16),
                                             (codecs.Bytes20Value(), 20),
                                             (codecs.Bytes32Key(), 32)])
def test_fixed_size_bytes(codec: Any, size: int) -> None:
    data = bytes(range(size))
    assert codec.encode(data) == data and codec.decode(data) == data
    assert type(codec.encode(bytearray(data))) is bytes
    name = f"Bytes{size}"
    with pytest.raises(ValueError, match=f"{name} needs exactly {size} bytes, got {size + 1}"):
        codec.encode(data + b"x")
    with pytest.raises(ValueError, match=f"{name} has {size} bytes, got {size - 1}"):
        codec.decode(data[1:])
    with pytest.raises(TypeError):
        codec.encode("x" * size)


# -- serialised values -------------------------------------------------------------------


class Point:
    """An application object stored through marshal/unmarshal."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


def marshal(p: Point) -> dict[str, int]:
    return {"x": p.x, "y": p.y}


def unmarshal(d: dict[str, int]) -> Point:
    return Point(d["x"], d["y"])


def test_json_values_are_compact_utf_8() -> None:
    codec = codecs.JsonValue()
    assert codec.encode({"a": [1, "ü"], "b": None}) == '{"a":[1,"ü"],"b":null}'.encode()
    assert codec.decode(b'{"a": [1, "\\u00fc"]}') == {"a": [1, "ü"]}


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_json_refuses_nan_and_infinities(number: float) -> None:
    """Other readers (browsers' JSON.parse among them) choke on NaN."""
    with pytest.raises(TypeError, match="Json cannot encode float"):
        codecs.JsonValue().encode(number)
    with pytest.raises(TypeError, match="Json cannot encode dict"):
        codecs.JsonValue().encode({"x": number})


@pytest.mark.parametrize(("codec", "dump"), [
    (codecs.JsonValue, lambda d: json.dumps(d, separators=(",", ":")).encode()),
    (codecs.CborValue, cbor2.dumps),
    (codecs.PickleValue, lambda d: pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL)),
])
def test_marshal_and_unmarshal_convert_application_objects(codec: Any, dump: Any) -> None:
    plain = codec(marshal=marshal, unmarshal=unmarshal)
    data = plain.encode(Point(1, 2))
    assert data == dump({"x": 1, "y": 2})
    assert plain.decode(data) == Point(1, 2)
    # Without them the data itself is stored and read back.
    assert codec().decode(data) == {"x": 1, "y": 2}
    assert codec(marshal=marshal).decode(data) == {"x": 1, "y": 2}


def _local_function() -> Any:
    return lambda: 0


@pytest.mark.parametrize(("codec", "value", "message"), [
    (codecs.JsonValue(), Point(1, 2), "Json cannot encode Point"),
    (codecs.JsonValue(), {(1, 2): 3}, "Json cannot encode dict"),
    (codecs.CborValue(), Point(1, 2), "Cbor cannot encode Point"),
    (codecs.PickleValue(), threading.Lock(), "Pickle cannot encode lock"),
    (codecs.PickleValue(), _local_function(), "Pickle cannot encode function"),
])
def test_what_a_format_cannot_hold_is_a_type_error(codec: Any, value: Any,
                                                   message: str) -> None:
    with pytest.raises(TypeError, match=f"^{message}: ") as refused:
        codec.encode(value)
    assert refused.value.__cause__ is not None  # the serialiser's own error, for the log


def test_pickle_values_round_trip_python_objects() -> None:
    codec = codecs.PickleValue()
    value = {"when": (1, 2.5), "ids": {U1}, "raw": b"\x00"}
    data = codec.encode(value)
    assert data == pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    assert codec.decode(data) == value
    assert codec.name == "Pickle"


def _build_counter(n: int, builder: flatbuffers.Builder) -> int:
    builder.StartObject(1)
    builder.PrependInt32Slot(0, n, 0)
    return int(builder.EndObject())


def _read_counter(buf: bytes) -> int:
    table = Table(bytearray(buf), encode.Get(packer.uoffset, buf, 0))
    field = table.Offset(4)
    return int(table.Get(number_types.Int32Flags, field + table.Pos)) if field else 0


def test_flatbuffers_values_build_finished_buffers_and_cast_them_back() -> None:
    codec = codecs.FlatBuffersValue(build=_build_counter, cast=_read_counter)
    data = codec.encode(41)
    assert type(data) is bytes
    expected = flatbuffers.Builder(0)
    expected.Finish(_build_counter(41, expected))
    assert data == bytes(expected.Output())
    assert codec.decode(data) == 41
    assert codecs.FlatBuffersValue().decode(data) == data  # no cast: the buffer


def test_flatbuffers_values_without_build_take_finished_buffers_only() -> None:
    codec = codecs.FlatBuffersValue()
    finished = b"\x0c\x00\x00\x00\x08\x00\x0c\x00\x04\x00\x08\x00"
    assert codec.encode(finished) == finished
    assert type(codec.encode(bytearray(finished))) is bytes
    with pytest.raises(TypeError, match="takes finished buffers"):
        codec.encode(41)


# -- compression -------------------------------------------------------------------------


def test_compressed_values_below_min_size_are_stored_raw_behind_a_flag() -> None:
    codec = codecs.Compressed(codecs.BinaryValue())
    small = b"a" * 63
    assert codec.encode(small) == b"\x00" + small
    assert codec.decode(b"\x00" + small) == small
    assert codec.encode(b"") == b"\x00"
    assert codec.decode(b"\x00") == b""


def test_compressed_values_from_min_size_are_zlib_level_6_when_that_is_smaller() -> None:
    codec = codecs.Compressed(codecs.BinaryValue())
    value = b"a" * 64
    assert codec.encode(value) == b"\x01" + zlib.compress(value, 6)
    assert codec.decode(codec.encode(value)) == value
    # Random bytes do not shrink: stored as they are.
    noise = random.Random(7).randbytes(200)
    assert codec.encode(noise) == b"\x00" + noise
    assert codec.decode(codec.encode(noise)) == noise


def test_compression_level_and_threshold_are_the_caller_s() -> None:
    value = b"abc" * 40
    strong = codecs.Compressed(codecs.BinaryValue(), level=9, min_size=500)
    assert strong.encode(value) == b"\x00" + value  # 120 bytes: under min_size
    assert strong.encode(value * 5) == b"\x01" + zlib.compress(value * 5, 9)
    # Level 0 stores without compressing: never smaller, so raw.
    assert codecs.Compressed(codecs.BinaryValue(), level=0).encode(value) == b"\x00" + value


def test_compressed_wraps_the_inner_codec() -> None:
    codec = codecs.Compressed(codecs.JsonValue())
    assert codec.name == "Json+zlib"
    doc = {"k": "v" * 100}
    assert codec.decode(codec.encode(doc)) == doc
    assert zlib.decompress(codec.encode(doc)[1:]) == codecs.JsonValue().encode(doc)
    with pytest.raises(TypeError, match="Json cannot encode"):
        codec.encode(math.nan)
    assert isinstance(pmap.MapOidJson(1, compress=True).value_codec, codecs.Compressed)
    assert isinstance(pmap.MapOidJson(1).value_codec, codecs.JsonValue)


def test_compressed_reads_bare_zlib_streams_as_zlmdb_wrote_them() -> None:
    codec = codecs.Compressed(codecs.JsonValue())
    doc = {"k": "v"}
    for level in (1, 6, 9):  # the header's second byte depends on the level
        assert codec.decode(zlib.compress(json.dumps(doc).encode(), level)) == doc


def test_compressed_values_stay_raw_unless_compression_saves_a_byte() -> None:
    # 51 random bytes and 13 "a": zlib level 6 makes exactly 64 bytes of them too.
    value = random.Random(1).randbytes(51) + b"a" * 13
    assert len(zlib.compress(value, 6)) == len(value)
    codec = codecs.Compressed(codecs.BinaryValue())
    assert codec.encode(value) == b"\x00" + value


@pytest.mark.parametrize("data", [b"", b"\x02abc", b"\x78", b"\x78\x00", b"{}"])
def test_compressed_refuses_bytes_it_did_not_write(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"^compressed value has an unknown flag byte$"):
        codecs.Compressed(codecs.BinaryValue()).decode(data)


@pytest.mark.parametrize("data", [
    b"\x01" + zlib.compress(b"a" * 100)[:-4],  # flagged, cut short
    b"\x01garbage",
    b"\x78\x9c",  # a bare zlib header and nothing after it
    zlib.compress(b"a" * 100)[:-1],
])
def test_a_broken_zlib_stream_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"^compressed value is not a valid zlib stream: "):
        codecs.Compressed(codecs.BinaryValue()).decode(data)


UU = codecs.CompositeKey(codecs.UuidKey(), codecs.UuidKey())
US = codecs.CompositeKey(codecs.UuidKey(), codecs.StringKey())


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: codecs.OidKey().encode(True), TypeError, "key must be an int (OID), not bool"),
    (lambda: codecs.SlotKey().encode("1"), TypeError, "key must be an int (slot), not str"),
    (lambda: codecs.Bytes32Key().encode("x"), TypeError, "key must be bytes, not str"),
    (lambda: codecs.TimestampKey().encode(1.5), TypeError,
     "timestamp must be an int (nanoseconds since the epoch), not float"),
    (lambda: codecs.CompositeKey(codecs.StringKey()), ValueError,
     "a composite key has at least two parts"),
    (lambda: codecs.CompositeKey(codecs.StringKey(), codecs.StringKey()), ValueError,
     "at most one part of a composite key may vary in size"),
    (lambda: UU.encode([U1, U1]), TypeError, "key must be a tuple of 2, not list"),
    (lambda: UU.encode((U1,)), ValueError, "UuidUuid key needs 2 parts, got 1"),
    (lambda: UU.encode_prefix([U1]), TypeError, "prefix must be a tuple, not list"),
    (lambda: UU.encode_prefix((U1, U1, U1)), ValueError, "UuidUuid key has 2 parts, got 3"),
    (lambda: UU.decode(U1.bytes), ValueError, "UuidUuid key has 32 bytes, got 16"),
    (lambda: US.decode(b"x"), ValueError, "UuidString key has at least 16 bytes, got 1"),
    (lambda: codecs.UuidSetValue().encode([U1]), TypeError,
     "value must be a set of UUIDs, not list"),
    (lambda: codecs.UuidSetValue().encode({"x"}), TypeError,
     "set member must be a uuid.UUID, not str"),
    (lambda: codecs.UuidSetValue().decode(b"x" * 17), ValueError,
     "a UUID set has a multiple of 16 bytes, got 17"),
    (lambda: codecs.OidSetValue().encode([1]), TypeError, "value must be a set of OIDs, not list"),
    (lambda: codecs.OidSetValue().encode({"1"}), TypeError,
     "set member must be an int (OID), not str"),
    (lambda: codecs.OidSetValue().encode({-1}), ValueError,
     "set member must be an OID in [0, 2**64 - 1], got -1"),
    (lambda: codecs.OidSetValue().decode(b"x" * 9), ValueError,
     "an OID set has a multiple of 8 bytes, got 9"),
    (lambda: codecs.FlatBuffersValue().encode(41), TypeError,
     "FlatBuffers map without build= takes finished buffers (bytes)"),
])
def test_refusals_say_what_was_expected_and_what_came(call: Any, error: type[Exception],
                                                      message: str) -> None:
    with pytest.raises(error) as refused:
        call()
    assert str(refused.value) == message


def test_a_prefix_may_name_fewer_parts_than_the_key() -> None:
    """``prefix=`` reads of a composite map name its first parts only."""
    assert UU.encode_prefix((U1,)) == U1.bytes
    assert UU.encode_prefix(()) == b""
    assert US.encode_prefix((U1, "ab")) == U1.bytes + b"ab"
