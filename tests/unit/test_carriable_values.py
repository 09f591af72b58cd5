"""Values every WAMP client can carry (etcdwamp.wamp.values), and a map's per-row marker
for a stored value no reader can have: pure code, no servers."""

from __future__ import annotations

import datetime
import decimal
import math
import uuid
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import formatEvent, globalLogPublisher

from etcdwamp.pmap import Database
from etcdwamp.wamp import values
from etcdwamp.wamp.maps import WampMap
from etcdwamp.wamp.presence import decode_presence
from etcdwamp.wamp.settings import MapSpec
from etcdwamp.wamp.values import (
    BAD_VALUE_MESSAGE,
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    BadValueLog,
    check_carriable,
)
from etcdwamp.wire import KeyValue


def wamp_serializers() -> tuple[Any, ...]:
    """Autobahn's JSON, CBOR and msgpack serializers (what the router and clients use)."""
    # Imported here, Twisted first: autobahn.wamp.serializer binds txaio's
    # time_ns when first imported, and bound before this process picked its
    # framework it breaks every later WAMP connection of the test run.
    import autobahn.twisted  # noqa: F401
    from autobahn.wamp.serializer import (
        CBORObjectSerializer,
        JsonObjectSerializer,
        MsgPackObjectSerializer,
    )

    return JsonObjectSerializer(), CBORObjectSerializer(), MsgPackObjectSerializer()

safe_ints = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
safe_text = st.text(st.characters(blacklist_categories=("Cs",))).filter(
    lambda s: not s.startswith("\x00"))
scalars = st.one_of(st.none(), st.booleans(), safe_ints,
                    st.floats(allow_nan=False, allow_infinity=False), safe_text, st.binary())
carriable = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(safe_text, inner, max_size=4)),
    max_leaves=20)


def as_lists(value: Any) -> Any:
    """``value`` as a reader gets it back: tuples arrive as lists."""
    if isinstance(value, (list, tuple)):
        return [as_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: as_lists(v) for k, v in value.items()}
    return value


def refusal(value: Any) -> tuple[type[Exception], str]:
    with pytest.raises((TypeError, ValueError)) as info:
        check_carriable(value)
    return info.type, str(info.value)


@given(carriable)
def test_an_accepted_value_travels_through_every_serializer_unchanged(value: Any) -> None:
    """What check_carriable accepts, JSON, CBOR and msgpack each write, and read back equal."""
    check_carriable(value)
    for serializer in wamp_serializers():
        payload = serializer.serialize([value])
        assert serializer.unserialize(payload) == [[as_lists(value)]], serializer.NAME


@given(st.one_of(st.integers(min_value=MAX_SAFE_INTEGER + 1),
                 st.integers(max_value=-MAX_SAFE_INTEGER - 1)))
def test_an_integer_beyond_javascripts_safe_range_is_refused(n: int) -> None:
    kind, message = refusal({"items": [0, 1, 2, {"n": n}]})
    assert kind is ValueError
    assert message.startswith("value.items[3].n: an integer beyond")
    assert str(n) not in message  # the caller's number is not echoed


def test_the_edges_of_the_safe_range_are_accepted() -> None:
    check_carriable([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, True, False, 0.5, -0.0])
    assert refusal(2**53)[0] is ValueError
    assert refusal(2**70)[1].startswith("value: an integer beyond")


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused(number: float) -> None:
    kind, message = refusal({"a": [number]})
    assert (kind, message) == (ValueError,
                               "value.a[0]: NaN and infinities cannot travel as JSON")


@pytest.mark.parametrize(("value", "type_name"), [
    ({1, 2}, "set"),
    (frozenset(), "frozenset"),
    (datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), "datetime"),
    (datetime.date(2024, 1, 1), "date"),
    (cbor2.CBORTag(4242, "x"), "CBORTag"),
    (cbor2.undefined, "UndefinedType"),
    (decimal.Decimal("1.5"), "Decimal"),
    (uuid.UUID(int=1), "UUID"),
    (bytearray(b"x"), "bytearray"),
    (object(), "object"),
])
def test_types_some_serializer_cannot_carry_are_refused_by_name(value: Any,
                                                                type_name: str) -> None:
    kind, message = refusal({"items": [value]})
    assert kind is TypeError
    assert message.startswith(f"value.items[0]: {type_name} cannot be carried to every client")


def test_what_cbor_decodes_from_tags_is_refused() -> None:
    """A CBOR caller's tagged items (a datetime, a set, an unknown tag, undefined) arrive as
    Python objects; none is carriable."""
    for tagged in (cbor2.dumps(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)),
                   cbor2.dumps({1, 2}), cbor2.dumps(cbor2.CBORTag(4242, 1)),
                   cbor2.dumps(cbor2.undefined)):
        assert refusal(cbor2.loads(tagged))[0] is TypeError


@pytest.mark.parametrize("key", [1, b"k", None, (1, 2), True])
def test_map_keys_must_be_strings(key: Any) -> None:
    kind, message = refusal({"a": {key: 1}})
    assert kind is TypeError
    assert message.startswith(f"value.a: a map key is a {type(key).__name__}")


def test_strings_json_readers_would_misread_are_refused() -> None:
    """WAMP's JSON marks bytes by a leading NUL; a lone surrogate is not UTF-8."""
    assert refusal(["ok", "\x00abc"]) == (
        ValueError, "value[1]: a string starting with NUL (JSON clients read it as bytes)")
    assert refusal({"\x00k": 1})[1].startswith("value['\\x00k']: a string starting with NUL")
    assert refusal({"s": "a\ud800"})[1].startswith("value.s: a string that is not valid UTF-8")
    check_carriable("a\x00b")  # only a leading NUL is special


def test_nesting_is_bounded() -> None:
    def nested(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = [value]
        return value

    check_carriable(nested(MAX_DEPTH))
    kind, message = refusal(nested(MAX_DEPTH + 1))
    assert kind is ValueError
    assert message == "value" + "[0]" * MAX_DEPTH + ": nested too deep (lists and maps may " \
        f"nest {MAX_DEPTH} levels)"
    # Far deeper than the interpreter's stack: refused, not a RecursionError.
    assert refusal(nested(100_000))[0] is ValueError


def test_paths_name_odd_and_long_keys_readably() -> None:
    long_key = "k" * 100
    message = refusal({"with space": {long_key: math.nan}})[1]
    assert message.startswith("value['with space']['" + "k" * 40 + "...']: NaN")


@given(carriable, st.sampled_from([2**60, math.nan, {3}, cbor2.undefined]), st.data())
def test_one_bad_part_anywhere_is_found_at_its_path(value: Any, bad: Any,
                                                    data: st.DataObject) -> None:
    """A carriable value with one bad part put in a list: refused, naming that list's index."""
    holder = data.draw(st.lists(carriable, max_size=3))
    at = data.draw(st.integers(0, len(holder)))
    holder.insert(at, bad)
    with pytest.raises((TypeError, ValueError)) as info:
        check_carriable({"ok": value, "list": holder}, "ops[0].value")
    assert str(info.value).startswith(f"ops[0].value.list[{at}]: ")


anything = st.recursive(
    st.one_of(scalars, st.integers(), st.floats(), st.text(), st.just("\x00x"),
              st.sets(st.integers(), max_size=2), st.datetimes(), st.just(cbor2.undefined),
              st.builds(cbor2.CBORTag, st.integers(6, 2**16), st.integers())),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner),
                            st.dictionaries(st.one_of(st.text(), st.integers()), inner,
                                            max_size=3)),
    max_leaves=12)


@given(anything, st.integers(0, 4))
def test_the_quick_check_and_the_one_naming_the_path_agree(value: Any, depth: int) -> None:
    """check_carriable decides with a quick walk and only then looks for the path: both
    walks must judge every value alike, or a bad value would pass unnamed."""
    try:
        values._check(value, "value", depth)
    except (TypeError, ValueError):
        refused = True
    else:
        refused = False
    assert values._carriable(value, depth) is not refused


# -- BadValueLog ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_sighting_is_logged_once() -> None:
    log = BadValueLog(Clock())
    assert log.admit(("m", b"k", 5)) == 0
    assert log.admit(("m", b"k", 5)) is None
    assert log.admit(("m", b"k", 6)) == 0  # a new revision is a new bad value


def test_the_log_rate_is_bounded_and_the_rest_counted() -> None:
    clock = Clock()
    log = BadValueLog(clock, interval=60, burst=2)
    assert [log.admit(n) for n in range(5)] == [0, 0, None, None, None]
    clock.now = 59.9
    assert log.admit(5) is None
    clock.now = 60
    assert log.admit(6) == 4  # the next line tells how many were held back
    assert log.admit(7) == 0
    assert log.admit(8) is None


def test_the_log_forgets_the_oldest_sightings() -> None:
    log = BadValueLog(Clock(), burst=100, remember=2)
    for n in (1, 2, 3):
        assert log.admit(n) == 0
    assert log.admit(3) is None
    assert log.admit(1) == 0  # forgotten: logged again


# -- WampMap: the put-side check and the per-row marker ----------------------------------------


class NoClient:
    """A Database's client: its limits are read, nothing is ever sent."""

    max_txn_ops = 128
    max_request_bytes = 1536 * 1024


def wamp_map(value_type: str, key_type: str = "string") -> WampMap:
    spec = MapSpec(name="m", slot=1, key_type=key_type, value_type=value_type)
    return WampMap(spec, Database(NoClient(), prefix=b"app/"),  # type: ignore[arg-type]
                   bad_value="p.error.bad_value", bad_values=BadValueLog(Clock()))


def stored(m: WampMap, key: bytes, value: bytes, revision: int = 7) -> KeyValue:
    return KeyValue(m.base + key, value, revision, revision, 1, 0)


@pytest.mark.parametrize("value_type", ["json", "cbor"])
def test_value_in_refuses_what_not_every_client_carries_naming_the_path(value_type: str) -> None:
    m = wamp_map(value_type)
    with pytest.raises(ValueError, match=r"^ops\[2\]\.value\.n: an integer beyond"):
        m.value_in({"n": 2**70}, "ops[2].value")
    with pytest.raises(TypeError, match=r"^value\.s: set cannot be carried"):
        m.value_in({"s": {1}})
    raw = m.value_in({"n": MAX_SAFE_INTEGER})
    assert m.readable(stored(m, b"k", raw)) == ({"n": MAX_SAFE_INTEGER}, None)


def test_string_maps_refuse_nul_led_keys_and_values() -> None:
    m = wamp_map("string")
    with pytest.raises(ValueError, match=r"^value: a string starting with NUL"):
        m.value_in("\x00abc")
    with pytest.raises(ValueError, match=r"^key: a string starting with NUL"):
        m.key_in("\x00abc")


def test_oid_maps_still_carry_big_oids_as_decimal_strings() -> None:
    m = wamp_map("oid")
    raw = m.value_in(str(2**64 - 1))
    assert m.record(stored(m, b"k", raw)) == {"key": "k", "value": str(2**64 - 1),
                                              "revision": 7}


@pytest.mark.parametrize(("value_type", "raw"), [
    ("json", b"{not json"),
    ("json", b'{"n": 1180591620717411303424}'),
    ("json", b"[NaN]"),
    ("json", b"\xff"),
    ("cbor", b"\xff\xff"),
    ("cbor", cbor2.dumps({"when": cbor2.CBORTag(1, 0)})),
    ("cbor", cbor2.dumps({"t": cbor2.CBORTag(4242, 1)})),
    ("cbor", cbor2.dumps({2: "int key"})),
    ("string", b"\xff\xfe"),
    ("string", b"\x00abc"),
    ("uuid", b"short"),
])
def test_a_stored_value_no_reader_can_have_is_one_marked_row(value_type: str,
                                                             raw: bytes) -> None:
    m = wamp_map(value_type)
    assert m.record(stored(m, b"bad", raw)) == {
        "key": "bad", "value": None, "revision": 7,
        "error": {"uri": "p.error.bad_value", "message": BAD_VALUE_MESSAGE}}


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """The log events emitted during the test."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(events.append)


@pytest.mark.parametrize(("key_type", "raw_key"), [
    ("string", b"\xff\xfe"),
    ("string", b"\x00abc"),
    ("uuid", b"short"),
])
def test_a_stored_key_no_reader_can_have_is_one_marked_row(key_type: str,
                                                           raw_key: bytes) -> None:
    m = wamp_map("json", key_type)
    marked = {"key": None, "value": None, "revision": 7,
              "error": {"uri": "p.error.bad_value", "message": BAD_VALUE_MESSAGE}}
    assert m.record(stored(m, raw_key, b'"fine"')) == dict(marked, value="fine")
    assert m.record(stored(m, raw_key, b'"fine"'), value=False) == marked


def test_a_bad_value_is_logged_once_with_its_key_and_never_its_content(
        logged: list[dict[str, Any]]) -> None:
    m = wamp_map("json")
    kv = stored(m, b"bad", b'{"secret": NaN}')
    for _ in range(3):
        m.record(kv)
    lines = [e for e in logged if "bad_value marker" in e.get("log_format", "")]
    assert len(lines) == 1
    text = formatEvent(lines[0])
    assert "'bad'" in text and "revision 7" in text
    assert "secret" not in text and "NaN" not in text


def test_a_stored_presence_value_no_reader_can_have_is_left_out() -> None:
    """Presence keys hold CBOR {authid, value}; one written behind the component's back
    with what not every client carries reads as unknown, as undecodable ones always did."""
    kv = KeyValue(b"p/5/k", cbor2.dumps({"authid": "a", "value": {1, 2}}), 3, 3, 1, 0)
    assert decode_presence(b"p/", kv) == {"session": 5, "authid": None, "key": "k",
                                          "value": None, "revision": 3}
    kv = KeyValue(b"p/5/k", cbor2.dumps({"authid": "a", "value": [1]}), 3, 3, 1, 0)
    assert decode_presence(b"p/", kv)["value"] == [1]
