"""Key-values of a gRPC range answer: read from their messages on first use, otherwise
indistinguishable from constructed ones."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from etcdwamp.grpc import codec
from etcdwamp.grpc.keyvalues import lazy_key_values
from etcdwamp.grpc.pb import kv_pb2, rpc_pb2
from etcdwamp.wire import KeySet, KeyValue, range_request

FIELDS = ("key", "value", "create_revision", "mod_revision", "version", "lease")


def answer_kvs() -> tuple[KeyValue, ...]:
    """The key-values of a range answer decoded by the codec, none read yet."""
    message = rpc_pb2.RangeResponse(
        header={"revision": 9},
        kvs=[kv_pb2.KeyValue(key=b"a", value=b"1", create_revision=2, mod_revision=3,
                             version=4, lease=5),
             kv_pb2.KeyValue(key=b"b", create_revision=6, mod_revision=6, version=1)],
        count=2)
    result = codec.decode(range_request(KeySet(b"a", b"c")), message.SerializeToString())
    return result.kvs


@pytest.mark.parametrize("name", FIELDS)
def test_any_first_read_gives_every_field(name: str) -> None:
    kv = answer_kvs()[0]
    assert type(kv) is not KeyValue  # not decoded yet
    getattr(kv, name)
    assert type(kv) is KeyValue  # read once: a plain key-value from then on
    assert tuple(getattr(kv, f) for f in FIELDS) == (b"a", b"1", 2, 3, 4, 5)


def test_unread_key_values_equal_hash_and_print_as_constructed_ones() -> None:
    first, second = answer_kvs()
    assert first == KeyValue(b"a", b"1", 2, 3, 4, 5)
    assert KeyValue(b"b", b"", 6, 6, 1, 0) == second
    assert first != second
    again = answer_kvs()[0]
    assert hash(again) == hash(KeyValue(b"a", b"1", 2, 3, 4, 5))
    assert repr(answer_kvs()[1]) == repr(KeyValue(b"b", b"", 6, 6, 1, 0))
    assert isinstance(answer_kvs()[0], KeyValue)


def test_unread_key_values_are_frozen() -> None:
    kv = answer_kvs()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        kv.version = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del kv.key  # type: ignore[misc]
    assert kv.version == 4


def test_unread_key_values_copy_pickle_and_replace_to_plain_ones() -> None:
    expected = KeyValue(b"a", b"1", 2, 3, 4, 5)
    for made in (pickle.loads(pickle.dumps(answer_kvs()[0])), copy.copy(answer_kvs()[0]),
                 copy.deepcopy(answer_kvs()[0])):
        assert type(made) is KeyValue and made == expected
    replaced = dataclasses.replace(answer_kvs()[0], value=b"2")
    assert type(replaced) is KeyValue
    assert replaced == KeyValue(b"a", b"2", 2, 3, 4, 5)


def test_an_empty_answer_has_no_key_values() -> None:
    assert lazy_key_values(rpc_pb2.RangeResponse().kvs) == ()
