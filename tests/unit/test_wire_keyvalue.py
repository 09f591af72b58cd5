"""Key-values parsed from a range: numbers decoded on first use, otherwise
indistinguishable from constructed ones."""

from __future__ import annotations

import base64
import dataclasses
import pickle

import pytest

from etcdwamp import errors as e
from etcdwamp.wire import KeyValue
from etcdwamp.wire.results import parse_range


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def parsed(**fields: str) -> KeyValue:
    kv = {"key": b64(b"k"), "create_revision": "5", "mod_revision": "6", "version": "2"}
    kv.update(fields)
    result = parse_range({"kvs": [kv], "count": "1"})
    return result.kvs[0]


def test_parsed_equals_constructed_and_hashes_alike() -> None:
    kv = parsed(value=b64(b"v"), lease="9")
    same = KeyValue(b"k", b"v", 5, 6, 2, 9)
    assert kv == same and same == kv and hash(kv) == hash(same)
    assert kv != KeyValue(b"k", b"v", 5, 7, 2, 9)
    assert repr(kv) == repr(same)
    assert (kv.create_revision, kv.mod_revision, kv.version, kv.lease) == (5, 6, 2, 9)


def test_omitted_value_and_lease_are_empty_and_zero() -> None:
    kv = parsed()
    assert kv.value == b"" and kv.lease == 0


def test_parsed_key_values_are_frozen_and_support_replace_and_pickle() -> None:
    kv = parsed(value=b64(b"v"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        kv.version = 3  # type: ignore[misc]
    assert dataclasses.replace(kv, key=b"x") == KeyValue(b"x", b"v", 5, 6, 2, 0)
    assert pickle.loads(pickle.dumps(kv)) == kv


def test_bad_base64_fails_at_parse_and_a_bad_number_when_read() -> None:
    with pytest.raises(e.ProtocolError, match="base64"):
        parsed(value="not base64!!")
    kv = parsed(mod_revision="six")
    assert kv.key == b"k"
    with pytest.raises(e.ProtocolError, match="mod_revision"):
        _ = kv.mod_revision
