"""The component's rules, decided before etcd is asked (a client that must
not be called proves nothing is sent for a refused call)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError

from etcdwamp.pmap import Database
from etcdwamp.wamp.access import Access
from etcdwamp.wamp.errors import ErrorUris
from etcdwamp.wamp.kv import KvService
from etcdwamp.wamp.maps import MapService
from etcdwamp.wamp.reads import InflightBudget, ReadBounds
from etcdwamp.wamp.settings import Settings

ensure = pytest_twisted.ensureDeferred
URIS = ErrorUris("etcd")
DENIED = "etcd.error.permission_denied"


class Untouchable:
    """Stands for the etcd client: any request fails the test."""

    max_txn_ops = 128
    max_request_bytes = 1536 * 1024

    def __getattr__(self, name: str) -> Any:
        def request(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"etcd was asked ({name}) for a call that should be refused")
        return request


def details(role: str | None, authid: str | None = "someone") -> Any:
    return SimpleNamespace(caller=1, caller_authid=authid, caller_authrole=role, progress=None)


SETTINGS = Settings.from_extra({
    "etcd": {"endpoints": ["http://127.0.0.1:1"]},
    "db_prefix": "app/",
    "maps": {"team": {"slot": 1, "read": ["staff"], "write": ["staff"]},
             "mine": {"slot": 2, "owner": True},
             "frozen": {"slot": 3, "write": []}},
    "kv_prefixes": ["raw/", {"prefix": "raw/admin/", "read": ["admin"], "write": ["admin"],
                                "nested": True}],
})


def services() -> tuple[MapService, KvService]:
    client: Any = Untouchable()
    access = Access(URIS)
    reads = ReadBounds(InflightBudget(2**20))
    maps = MapService(client, Database(client, prefix=b"app/"), SETTINGS.maps, access, URIS,
                      reads)
    kv = KvService(client, SETTINGS.kv_prefixes, access, URIS, reads)
    return maps, kv


async def refused(call: Any) -> str:
    with pytest.raises(ApplicationError) as info:
        await call
    return str(info.value.error)


@pytest.mark.parametrize("role", ["guest", None])
@ensure
async def test_map_rules_refuse_before_etcd(role: str | None) -> None:
    maps, _ = services()
    d = details(role)
    for call in (maps.get("team", "k", details=d), maps.put("team", "k", 1, details=d),
                 maps.delete("team", "k", details=d), maps.count("team", details=d),
                 maps.range("team", details=d), maps.get_and_watch("team", details=d),
                 maps.put("frozen", "k", 1, details=d),
                 maps.put("mine", "somebody-else", 1, details=d),
                 maps.txn([{"op": "put", "map": "team", "key": "k", "value": 1}], details=d),
                 maps.txn([{"op": "put", "map": "mine", "key": "someone", "value": 1}],
                          expect=[{"map": "team", "key": "k", "revision": 0}], details=d)):
        assert await refused(call) == DENIED


@ensure
async def test_owner_rule_needs_a_disclosed_authid() -> None:
    maps, _ = services()
    assert await refused(maps.put("mine", "k", 1, details=details("staff", None))) == DENIED


@pytest.mark.parametrize(("key", "prefix"), [
    ("elsewhere", False), ("raw", False), ("", True), ("raw/", True), ("raw/admin/x", False),
    ("app/\x00\x01k", False),
])
@ensure
async def test_raw_keys_outside_or_under_a_stricter_prefix(key: str, prefix: bool) -> None:
    _, kv = services()
    d = details("staff")
    assert await refused(kv.delete(key, prefix=prefix, details=d)) == DENIED
    if not prefix:
        assert await refused(kv.get(key, details=d)) == DENIED
        assert await refused(kv.put(key, "v", details=d)) == DENIED


@ensure
async def test_a_raw_txn_is_refused_whole() -> None:
    _, kv = services()
    d = details("staff")
    assert await refused(kv.txn([{"op": "put", "key": "raw/ok", "value": "1"},
                                 {"op": "delete", "key": "raw/admin/x"}], details=d)) == DENIED
    assert await refused(kv.txn([{"op": "put", "key": "raw/ok", "value": "1"}],
                                expect=[{"key": "other", "revision": 0}], details=d)) == DENIED
