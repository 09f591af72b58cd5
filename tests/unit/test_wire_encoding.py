"""The gateway's scalar encodings: what is accepted, and what a bad value is told."""

from __future__ import annotations

from typing import Any

import pytest

from etcdwamp import errors as e
from etcdwamp.wire.encoding import (
    INT64_MAX,
    b64,
    get_bool,
    get_bytes,
    get_int,
    require_bytes,
    require_int,
    set_flags,
    text_or_bytes,
)


@pytest.mark.parametrize("convert", [require_bytes, text_or_bytes])
def test_bytes_like_values_become_bytes(convert: Any) -> None:
    for value in (b"k\x00v", bytearray(b"k\x00v"), memoryview(b"k\x00v")):
        out = convert(value, "key")
        assert out == b"k\x00v" and type(out) is bytes


def test_bytes_refusals_name_the_argument_and_the_type_given() -> None:
    with pytest.raises(TypeError) as info:
        require_bytes(3, "key")
    assert str(info.value) == "key must be bytes, not int"
    with pytest.raises(TypeError, match=r"^value must be bytes, not str \(encode it"):
        require_bytes("v", "value")
    with pytest.raises(TypeError) as info:
        text_or_bytes([b"k"], "key")
    assert str(info.value) == "key must be a string or bytes, not list"


def test_text_is_taken_as_utf8() -> None:
    assert text_or_bytes("grüße", "key") == "grüße".encode()


def test_int_bounds_are_inclusive_and_refusals_say_which() -> None:
    assert require_int(INT64_MAX, "revision") == INT64_MAX
    assert require_int(5, "limit", minimum=5, maximum=5) == 5
    with pytest.raises(ValueError) as info:
        require_int(6, "limit", minimum=0, maximum=5)
    assert str(info.value) == "limit must be between 0 and 5, got 6"
    with pytest.raises(TypeError) as info:
        require_int("5", "limit")
    assert str(info.value) == "limit must be an int, not str"
    with pytest.raises(TypeError) as info:
        require_int(True, "limit")
    assert str(info.value) == "limit must be an int, not bool"


def test_flags_go_in_only_when_true_and_a_non_bool_is_named() -> None:
    body: dict[str, Any] = {}
    set_flags(body, prev_kv=True, keys_only=False)
    assert body == {"prev_kv": True}
    with pytest.raises(TypeError) as info:
        set_flags(body, count_only=1)
    assert str(info.value) == "count_only must be a bool, not int"
    assert body == {"prev_kv": True}


def test_bytes_travel_as_base64_text() -> None:
    assert b64(b"\xff\x00") == "/wA="
    assert get_bytes({"key": "/wA="}, "key") == b"\xff\x00"
    assert get_bytes({}, "key") == b""


def test_base64_with_characters_outside_the_alphabet_is_refused_not_skipped() -> None:
    """Lenient base64 would drop the stray characters and hand back other bytes."""
    with pytest.raises(e.ProtocolError) as info:
        get_bytes({"value": "Zm9v!!"}, "value")
    assert str(info.value) == "field 'value' is not valid base64: 'Zm9v!!'"
    with pytest.raises(e.ProtocolError) as info:
        get_bytes({"value": 12}, "value")
    assert str(info.value) == "field 'value' should be a base64 string, got 12"


def test_int64_fields_are_strings_or_numbers() -> None:
    assert get_int({"revision": "9223372036854775807"}, "revision") == INT64_MAX
    assert get_int({"revision": 7}, "revision") == 7
    assert get_int({}, "revision") == 0


@pytest.mark.parametrize(("raw", "message"), [
    (True, "field 'revision' should be an integer, got True"),
    (1.5, "field 'revision' should be an integer, got 1.5"),
    ("0x10", "field 'revision' is not an integer: '0x10'"),
])
def test_bad_int64_fields_are_named_with_their_value(raw: Any, message: str) -> None:
    with pytest.raises(e.ProtocolError) as info:
        get_int({"revision": raw}, "revision")
    assert str(info.value) == message


def test_bool_fields() -> None:
    assert get_bool({"created": True}, "created") is True
    assert get_bool({}, "created") is False
    with pytest.raises(e.ProtocolError) as info:
        get_bool({"created": "true"}, "created")
    assert str(info.value) == "field 'created' should be a boolean, got 'true'"


def test_a_field_read_from_something_not_an_object_names_what_came() -> None:
    with pytest.raises(e.ProtocolError) as info:
        get_int(["7"], "revision")  # type: ignore[arg-type]
    assert str(info.value) == "expected a JSON object, got list"
