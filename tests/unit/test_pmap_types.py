"""The written-out map classes: complete, typed, and with zlmdb's byte layout."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

from etcdwamp import pmap
from etcdwamp.pmap import codecs
from etcdwamp.pmap.maps import _KEY_CODECS, _VALUE_CODECS, _NamedMap

U1 = uuid.UUID("11111111-2222-3333-4444-555555555555")
U2 = uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
# 2024-01-02T03:04:05.000000006Z in nanoseconds, and zlmdb's bytes for it
# (numpy.datetime64[ns].tobytes() reversed: signed 64-bit big-endian).
NS = 1_704_164_645_000_000_006
NS_BYTES = bytes(reversed(NS.to_bytes(8, "little", signed=True)))

# name -> (key codec names in order, value codec name): the composite family.
COMPOSITES: dict[str, tuple[tuple[str, ...], str]] = {
    "MapSlotUuidUuid": (("Slot", "Uuid"), "Uuid"),
    "MapUuidUuidCbor": (("Uuid", "Uuid"), "Cbor"),
    "MapUuidUuidUuid": (("Uuid", "Uuid"), "Uuid"),
    "MapUuidStringUuid": (("Uuid", "String"), "Uuid"),
    "MapUuidStringOid": (("Uuid", "String"), "Oid"),
    "MapUuidUuidStringUuid": (("Uuid", "Uuid", "String"), "Uuid"),
    "MapUuidUuidStringFlatBuffers": (("Uuid", "Uuid", "String"), "FlatBuffers"),
    "MapUuidUuidUuidStringUuid": (("Uuid", "Uuid", "Uuid", "String"), "Uuid"),
    "MapUuidUuidSet": (("Uuid",), "UuidSet"),
    "MapStringOidOid": (("String", "Oid"), "Oid"),
    "MapOidOidOid": (("Oid", "Oid"), "Oid"),
    "MapOidOidFlatBuffers": (("Oid", "Oid"), "FlatBuffers"),
    "MapOid3FlatBuffers": (("Oid", "Oid", "Oid"), "FlatBuffers"),
    "MapOidStringOid": (("Oid", "String"), "Oid"),
    "MapOidOidSet": (("Oid",), "OidSet"),
    "MapBytes32Uuid": (("Bytes32",), "Uuid"),
    "MapBytes32Bytes32": (("Bytes32",), "Bytes32"),
    "MapBytes32FlatBuffers": (("Bytes32",), "FlatBuffers"),
    "MapBytes32UuidFlatBuffers": (("Bytes32", "Uuid"), "FlatBuffers"),
    "MapBytes32Bytes32FlatBuffers": (("Bytes32", "Bytes32"), "FlatBuffers"),
    "MapBytes32StringFlatBuffers": (("Bytes32", "String"), "FlatBuffers"),
    "MapBytes20Bytes20": (("Bytes20",), "Bytes20"),
    "MapBytes20Uuid": (("Bytes20",), "Uuid"),
    "MapBytes20Bytes16": (("Bytes20",), "Bytes16"),
    "MapBytes20FlatBuffers": (("Bytes20",), "FlatBuffers"),
    "MapBytes20Bytes20FlatBuffers": (("Bytes20", "Bytes20"), "FlatBuffers"),
    "MapBytes20StringFlatBuffers": (("Bytes20", "String"), "FlatBuffers"),
    "MapBytes16FlatBuffers": (("Bytes16",), "FlatBuffers"),
    "MapTimestampFlatBuffers": (("Timestamp",), "FlatBuffers"),
    "MapTimestampUuidFlatBuffers": (("Timestamp", "Uuid"), "FlatBuffers"),
    "MapTimestampUuidCbor": (("Timestamp", "Uuid"), "Cbor"),
    "MapTimestampUuidStringFlatBuffers": (("Timestamp", "Uuid", "String"), "FlatBuffers"),
    "MapTimestampBytes32FlatBuffers": (("Timestamp", "Bytes32"), "FlatBuffers"),
    "MapTimestampStringFlatBuffers": (("Timestamp", "String"), "FlatBuffers"),
    "MapTimestampStringCbor": (("Timestamp", "String"), "Cbor"),
    "MapStringTimestampCbor": (("String", "Timestamp"), "Cbor"),
    "MapUuidTimestampBytes32": (("Uuid", "Timestamp"), "Bytes32"),
    "MapUuidTimestampFlatBuffers": (("Uuid", "Timestamp"), "FlatBuffers"),
    "MapUuidTimestampCbor": (("Uuid", "Timestamp"), "Cbor"),
    "MapOidTimestampOid": (("Oid", "Timestamp"), "Oid"),
    "MapOidTimestampFlatBuffers": (("Oid", "Timestamp"), "FlatBuffers"),
    "MapOidTimestampStringOid": (("Oid", "Timestamp", "String"), "Oid"),
    "MapBytes32Timestamp": (("Bytes32",), "Timestamp"),
    "MapBytes20Bytes20Timestamp": (("Bytes20",), "Bytes20Timestamp"),
    "MapBytes20TimestampBytes20": (("Bytes20", "Timestamp"), "Bytes20"),
    "MapBytes20TimestampUuid": (("Bytes20", "Timestamp"), "Uuid"),
    "MapBytes16TimestampUuid": (("Bytes16", "Timestamp"), "Uuid"),
}


def key_parts(m: pmap.PersistentMap[Any, Any]) -> tuple[str, ...]:
    codec = m.key_codec
    if isinstance(codec, codecs.CompositeKey):
        return tuple(p.name for p in codec.parts)
    return (codec.name,)


def test_every_simple_key_with_every_value_is_a_class() -> None:
    """4 key codecs x 8 value codecs = 32 classes, each with the codecs its name says."""
    for k in _KEY_CODECS:
        for v in _VALUE_CODECS:
            cls = getattr(pmap, f"Map{k}{v}")
            m = cls(7)
            assert key_parts(m) == (k,) and m.value_codec.name == v, cls
    assert len(_KEY_CODECS) * len(_VALUE_CODECS) == 32


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_family(name: str) -> None:
    parts, value = COMPOSITES[name]
    m = getattr(pmap, name)(3)
    assert key_parts(m) == parts and m.value_codec.name == value


def test_the_class_list_is_complete_and_nothing_else_is_there() -> None:
    """MAP_TYPES, the package's exports and the classes in maps.py are one set:
    the 32 simple maps, the composite family, and a Flatbuffers alias for every
    FlatBuffers map."""
    simple = {f"Map{k}{v}" for k in _KEY_CODECS for v in _VALUE_CODECS}
    canonical = simple | set(COMPOSITES)
    aliases = {n.replace("FlatBuffers", "Flatbuffers") for n in canonical
               if n.endswith("FlatBuffers")}
    assert set(pmap.MAP_TYPES) == canonical | aliases
    for alias in aliases:
        assert pmap.MAP_TYPES[alias] is pmap.MAP_TYPES[alias.replace("Flatbuffers",
                                                                      "FlatBuffers")]
    exported = {n for n in pmap.__all__ if n.startswith("Map")} - {"MapChange",
                                                                   "MapTransaction"}
    assert exported == set(pmap.MAP_TYPES)
    source = (Path(pmap.__file__).parent / "maps.py").read_text()
    written = set(re.findall(r"^class (Map\w+)\(", source, re.M))
    written |= set(re.findall(r"^(Map\w+) = Map", source, re.M))
    assert written - {"MapChange"} == set(pmap.MAP_TYPES)
    assert all(issubclass(c, _NamedMap) and c.__module__ == "etcdwamp.pmap"
               for c in pmap.MAP_TYPES.values())


def test_mypy_sees_the_classes_and_refuses_a_misspelled_one(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text("from etcdwamp import pmap\n"
                    "m = pmap.MapUuidCbor(1, marshal=lambda u: u, unmarshal=dict)\n"
                    "n = pmap.MapUuidUuidCbor(2)\n"
                    "s: pmap.PersistentMap[str, str] = pmap.MapStringString(3)\n")
    bad = tmp_path / "bad.py"
    bad.write_text("from etcdwamp import pmap\nm = pmap.MapUuidCbr(1)\n"
                   "k = pmap.MapStringString(1, marshal=None)\n")
    out, _, status = mypy_api.run(["--strict", "--no-incremental", str(good)])
    assert status == 0, out
    out, _, status = mypy_api.run(["--strict", "--no-incremental", str(bad)])
    assert status == 1
    assert 'has no attribute "MapUuidCbr"' in out
    assert 'Unexpected keyword argument "marshal"' in out


# -- byte layout (zlmdb / txaioetcd) ----------------------------------------------------

class FakeDb:
    prefix = b"P/"


@pytest.mark.parametrize("name, key, encoded", [
    ("MapSlotUuidUuid", (258, U1), b"\x01\x02" + U1.bytes),
    ("MapUuidUuidCbor", (U1, U2), U1.bytes + U2.bytes),
    ("MapUuidStringUuid", (U1, "näme"), U1.bytes + "näme".encode()),
    ("MapUuidUuidStringUuid", (U1, U2, "x"), U1.bytes + U2.bytes + b"x"),
    ("MapUuidUuidUuidStringUuid", (U1, U2, U1, ""), U1.bytes + U2.bytes + U1.bytes),
    ("MapStringOidOid", ("ab", 5), b"ab" + (5).to_bytes(8, "big")),
    ("MapOidOidOid", (1, 2), (1).to_bytes(8, "big") + (2).to_bytes(8, "big")),
    ("MapOid3FlatBuffers", (1, 2, 3), b"".join(i.to_bytes(8, "big") for i in (1, 2, 3))),
    ("MapOidStringOid", (9, "s"), (9).to_bytes(8, "big") + b"s"),
    ("MapBytes32UuidFlatBuffers", (b"h" * 32, U2), b"h" * 32 + U2.bytes),
    ("MapBytes20StringFlatBuffers", (b"a" * 20, "z"), b"a" * 20 + b"z"),
    ("MapTimestampUuidCbor", (NS, U1), NS_BYTES + U1.bytes),
    ("MapStringTimestampCbor", ("s", NS), b"s" + NS_BYTES),
    ("MapOidTimestampStringOid", (7, NS, "x"), (7).to_bytes(8, "big") + NS_BYTES + b"x"),
])
def test_composite_keys_have_the_zlmdb_layout_and_read_back(name: str, key: Any,
                                                            encoded: bytes) -> None:
    """The etcd key is db prefix + 2-byte slot + the parts back to back."""
    m = getattr(pmap, name)(0x0A0B)
    assert m.key_bytes(FakeDb(), key) == b"P/\x0a\x0b" + encoded
    assert m.key_codec.decode(encoded) == key


def test_set_values_have_the_zlmdb_layout() -> None:
    uuids = pmap.MapUuidUuidSet(1).value_codec
    assert uuids.decode(U2.bytes + U1.bytes) == {U1, U2}  # any order another writer used
    assert uuids.encode({U2, U1}) == U1.bytes + U2.bytes
    assert uuids.decode(b"") == set()
    oids = pmap.MapOidOidSet(1).value_codec
    assert oids.encode({3, 1}) == (1).to_bytes(8, "big") + (3).to_bytes(8, "big")
    assert oids.decode(oids.encode({1, 2**53, 2**64 - 1})) == {1, 2**53, 2**64 - 1}


def test_timestamp_values_and_composite_values() -> None:
    assert pmap.MapBytes32Timestamp(1).value_codec.encode(NS) == NS_BYTES
    pair = pmap.MapBytes20Bytes20Timestamp(1).value_codec
    assert pair.encode((b"k" * 20, NS)) == b"k" * 20 + NS_BYTES
    assert pair.decode(b"k" * 20 + NS_BYTES) == (b"k" * 20, NS)
    ts = codecs.TimestampKey()
    assert ts.decode(ts.encode(-1)) == -1
    times = [0, 1, 10**9, NS, 2**63 - 1]
    assert sorted(times, key=ts.encode) == times  # from 1970 on, byte order is time order


def test_fixed_size_composites_keep_tuple_order_in_byte_order() -> None:
    codec = pmap.MapUuidUuidCbor(1).key_codec
    keys = [(uuid.UUID(int=a), uuid.UUID(int=b)) for a in (0, 1, 2**127) for b in (5, 0, 3)]
    assert sorted(keys) == sorted(keys, key=codec.encode)


@pytest.mark.parametrize("name, key, error", [
    ("MapUuidUuidCbor", (U1,), ValueError),
    ("MapUuidUuidCbor", [U1, U2], TypeError),
    ("MapUuidUuidCbor", (U1, "x"), TypeError),
    ("MapSlotUuidUuid", (70000, U1), ValueError),
    ("MapSlotUuidUuid", (True, U1), TypeError),
    ("MapBytes32Uuid", b"short", ValueError),
    ("MapOidOidOid", (1, -1), ValueError),
    ("MapTimestampUuidCbor", (1.5, U1), TypeError),
    ("MapTimestampUuidCbor", (2**63, U1), ValueError),
])
def test_bad_composite_keys_are_typed_errors(name: str, key: Any, error: type) -> None:
    with pytest.raises(error):
        getattr(pmap, name)(1).key_codec.encode(key)


@pytest.mark.parametrize("codec, value, error", [
    (codecs.UuidSetValue(), [U1], TypeError),
    (codecs.UuidSetValue(), {"x"}, TypeError),
    (codecs.OidSetValue(), {-1}, ValueError),
    (codecs.Bytes16Value(), b"x" * 17, ValueError),
])
def test_bad_values_are_typed_errors(codec: Any, value: Any, error: type) -> None:
    with pytest.raises(error):
        codec.encode(value)


def test_truncated_data_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        pmap.MapUuidUuidCbor(1).key_codec.decode(U1.bytes)
    with pytest.raises(ValueError):
        pmap.MapUuidUuidSet(1).value_codec.decode(b"x" * 17)
    with pytest.raises(ValueError):
        codecs.CompositeKey(codecs.StringKey(), codecs.StringKey())
