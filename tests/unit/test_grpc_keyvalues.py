"""The key-values of a gRPC range answer: a sequence that builds each on first use and
otherwise behaves as the tuple of the same key-values."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdwamp.grpc import codec
from etcdwamp.grpc.keyvalues import KeyValues
from etcdwamp.grpc.pb import kv_pb2, rpc_pb2
from etcdwamp.wire import KeySet, KeyValue, RangeResult, range_request

FIRST = KeyValue(b"a", b"1", 2, 3, 4, 5)
SECOND = KeyValue(b"b", b"", 6, 6, 1, 0)


def messages(*kvs: KeyValue) -> object:
    """The repeated ``kvs`` field of a parsed RangeResponse holding ``kvs``."""
    message = rpc_pb2.RangeResponse(kvs=[kv_pb2.KeyValue(**dataclasses.asdict(kv))
                                         for kv in kvs])
    return rpc_pb2.RangeResponse.FromString(message.SerializeToString()).kvs


def decoded(*kvs: KeyValue) -> RangeResult:
    """A range answer holding ``kvs`` as the codec decodes it from etcd's bytes."""
    message = rpc_pb2.RangeResponse(header={"revision": 9}, count=len(kvs),
                                    kvs=[kv_pb2.KeyValue(**dataclasses.asdict(kv))
                                         for kv in kvs])
    result = codec.decode(range_request(KeySet(b"a", b"c")), message.SerializeToString())
    assert isinstance(result, RangeResult)
    return result


def test_the_codec_hands_a_range_answer_over_as_key_values() -> None:
    result = decoded(FIRST, SECOND)
    assert type(result.kvs) is KeyValues and isinstance(result.kvs, Sequence)
    assert result.kvs == (FIRST, SECOND) and result.first == FIRST


def test_len_builds_nothing_and_an_index_builds_one_key_value_once() -> None:
    kvs = KeyValues(messages(FIRST, SECOND))
    assert len(kvs) == 2 and kvs
    assert kvs._built is None
    got = kvs[1]
    assert type(got) is KeyValue and got == SECOND
    assert kvs._built == [None, SECOND]
    assert kvs[1] is got and kvs[-1] is got  # cached, whichever index names it
    assert [kv is got for kv in kvs] == [False, True]  # iterating reuses it too


def test_bad_indexes_fail_as_a_tuples_do() -> None:
    kvs = KeyValues(messages(FIRST))
    with pytest.raises(IndexError):
        kvs[1]
    with pytest.raises(IndexError):
        kvs[-2]
    with pytest.raises(TypeError):
        kvs["0"]  # type: ignore[call-overload]


def test_an_empty_answer_is_empty_and_false() -> None:
    kvs = decoded().kvs
    assert len(kvs) == 0 and not kvs and kvs == () and kvs == [] and list(kvs) == []
    assert decoded().first is None and repr(kvs) == "()"


def test_results_compare_and_hash_across_transports() -> None:
    """A gRPC result equals the gateway's result of the same answer, as ``kvs`` equals its
    tuple, both ways round and as a set member."""
    grpc = decoded(FIRST, SECOND)
    gateway = RangeResult(grpc.header, (FIRST, SECOND), False, 2)
    assert grpc == gateway and gateway == grpc and hash(grpc) == hash(gateway)
    assert grpc == decoded(FIRST, SECOND) and grpc != decoded(FIRST)
    assert {grpc, gateway} == {gateway}
    assert (FIRST, SECOND) == grpc.kvs and [FIRST, SECOND] == grpc.kvs  # noqa: SIM300
    assert grpc.kvs != (SECOND, FIRST) and grpc.kvs != (FIRST,) and grpc.kvs != "ab"


def test_copies_and_pickles_are_plain_tuples() -> None:
    result = decoded(FIRST, SECOND)
    for made in (copy.copy(result.kvs), copy.deepcopy(result.kvs),
                 pickle.loads(pickle.dumps(result.kvs))):
        assert type(made) is tuple and made == (FIRST, SECOND)
    again = pickle.loads(pickle.dumps(result))
    assert again == result and type(again.kvs) is tuple


def test_replace_with_a_slice_gives_a_tuple_result() -> None:
    result = decoded(FIRST, SECOND)
    cut = dataclasses.replace(result, kvs=result.kvs[:1])
    assert cut.kvs == (FIRST,) and type(cut.kvs) is tuple


key_values = st.builds(KeyValue, st.binary(min_size=1, max_size=6), st.binary(max_size=6),
                       st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1),
                       st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
indexes = st.integers(-12, 12) | st.none()


@given(st.lists(key_values, max_size=10), st.lists(key_values, max_size=10),
       indexes, indexes, indexes.filter(lambda step: step != 0))
def test_key_values_behave_as_the_tuple_of_their_key_values(
        kvs: list[KeyValue], others: list[KeyValue],
        start: int | None, stop: int | None, step: int | None) -> None:
    """Length, items, slices, search, equality, hash and repr are the tuple's, whatever
    was built before."""
    expected = tuple(kvs)
    lazy = KeyValues(messages(*kvs))
    if kvs and start is not None and -len(kvs) <= start < len(kvs):
        assert lazy[start] == expected[start]  # some built, some not, from here on
    assert lazy[start:stop:step] == expected[start:stop:step]
    assert type(lazy[start:stop:step]) is tuple
    assert len(lazy) == len(expected) and bool(lazy) == bool(expected)
    assert tuple(lazy) == expected and tuple(reversed(lazy)) == expected[::-1]
    assert lazy == expected and expected == lazy and lazy == list(expected)
    assert lazy == KeyValues(messages(*kvs))
    assert hash(lazy) == hash(expected) and repr(lazy) == repr(expected)
    assert (lazy == tuple(others)) == (expected == tuple(others))
    assert (lazy != KeyValues(messages(*others))) == (expected != tuple(others))
    for kv in others[:2] + kvs[:1]:
        assert (kv in lazy) == (kv in expected)
        assert lazy.count(kv) == expected.count(kv)
        if kv in expected:
            assert lazy.index(kv) == expected.index(kv)
