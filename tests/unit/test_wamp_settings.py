"""The component's settings from Crossbar's extra, and its error translation."""

from __future__ import annotations

from typing import Any

import pytest

from etcdwamp import errors as e
from etcdwamp import pmap
from etcdwamp.wamp.errors import ErrorUris, to_application_error
from etcdwamp.wamp.settings import Settings, SettingsError

GOOD: dict[str, Any] = {
    "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
    "maps": {"notes": {"slot": 1, "key": "string", "value": "json"},
             "users": {"slot": 2, "key": "uuid", "value": "cbor"}},
    "cbdir": "/somewhere/.crossbar",  # added by Crossbar itself
}


def test_good_extra() -> None:
    s = Settings.from_extra(GOOD)
    assert s.endpoints == ("http://127.0.0.1:2379",) and s.prefix == "etcd"
    assert [m.name for m in s.maps] == ["notes", "users"]
    assert isinstance(s.maps[1].build(), pmap.MapUuidCbor)


@pytest.mark.parametrize(("change", "message"), [
    ({"etcd": None}, "extra.etcd"),
    ({"etcd": {"endpoints": []}}, "endpoints"),
    ({"etcd": {"endpoints": ["127.0.0.1:2379"]}}, "endpoints"),
    ({"etcd": {"endpoints": ["http://a"], "user": "u"}}, "user and password"),
    ({"prefix": "Etcd-Prefix"}, "extra.prefix"),
    ({"maps": {"x": {"slot": 70000}}}, "extra.maps.x.slot"),
    ({"maps": {"a": {"slot": 1}, "b": {"slot": 1}}}, "already used"),
    ({"maps": {"x": {"slot": 1, "key": "float"}}}, "extra.maps.x.key"),
    ({"maps": {"x": {"slot": 1, "value": "xml"}}}, "extra.maps.x.value"),
    ({"maps": {"Bad Name": {"slot": 1}}}, "map names"),
    ({"range_page": 0}, "range_page"),
    ({"typo": 1}, "unknown extra fields: typo"),
])
def test_bad_extra_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_extra({**GOOD, **change})


@pytest.mark.parametrize(("exc", "suffix"), [
    (pmap.TransactionConflict("x"), "conflict"),
    (e.RequestTooLarge("x"), "too_large"),
    (e.TooManyOps("x"), "too_large"),
    (e.PermissionDenied("x"), "permission_denied"),
    (e.ConnectFailed("x"), "unavailable"),
    (e.Unavailable("x"), "unavailable"),
    (TypeError("x"), "invalid_argument"),
    (ValueError("x"), "invalid_argument"),
    (e.EmptyKey("x"), "invalid_argument"),
    (RuntimeError("bug"), "internal"),
])
def test_library_errors_become_stable_uris(exc: BaseException, suffix: str) -> None:
    err = to_application_error(ErrorUris("etcd"), exc)
    assert err.error == f"etcd.error.{suffix}"
    if suffix == "internal":
        assert "bug" not in str(err.args)  # no internals leak to callers
