"""The component's rules, decided before etcd is asked (a client that must
not be called proves nothing is sent for a refused call)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from twisted.internet.task import Clock

from etcdwamp.pmap import Database
from etcdwamp.wamp.access import Access, Caller
from etcdwamp.wamp.errors import ErrorUris
from etcdwamp.wamp.kv import KvService
from etcdwamp.wamp.maps import MapService
from etcdwamp.wamp.presence import PresenceService
from etcdwamp.wamp.quietlog import QuietLog
from etcdwamp.wamp.reads import InflightBudget, ReadBounds
from etcdwamp.wamp.settings import PresenceSettings, Settings

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


class Reached(Exception):
    """The call passed every rule and asked etcd."""


class Answering:
    """Stands for the etcd client: any request proves the call got through the rules."""

    max_txn_ops = 128
    max_request_bytes = 1536 * 1024

    def __getattr__(self, name: str) -> Any:
        def request(*args: Any, **kwargs: Any) -> Any:
            raise Reached(name)
        return request


def details(role: str | None, authid: str | None = "someone") -> Any:
    return SimpleNamespace(caller=1, caller_authid=authid, caller_authrole=role, progress=None)


SETTINGS = Settings.from_extra({
    "etcd": {"endpoints": ["http://127.0.0.1:1"]},
    "db_prefix": "app/",
    "maps": {"team": {"slot": 1, "read": ["staff"], "write": ["staff"]},
             "mine": {"slot": 2, "owner": True},
             "frozen": {"slot": 3, "write": []},
             "public": {"slot": 4}},
    "kv_prefixes": ["raw/", {"prefix": "raw/admin/", "read": ["admin"], "write": ["admin"],
                                "nested": True}],
    "presence": {"prefix": "here/", "read": ["staff"], "write": ["staff"]},
})


def services(client: Any = None) -> tuple[MapService, KvService]:
    """The map and raw-key services over ``client`` (default: one that must not be asked)."""
    client = Untouchable() if client is None else client
    access = Access(URIS)
    reads = ReadBounds(InflightBudget(2**20))
    maps = MapService(client, Database(client, prefix=b"app/"), SETTINGS.maps, access, URIS,
                      reads)
    kv = KvService(client, SETTINGS.kv_prefixes, access, URIS, reads)
    return maps, kv


def presence(settings: PresenceSettings | None, client: Any = None) -> PresenceService:
    assert settings is not None
    client = Untouchable() if client is None else client
    return PresenceService(client, settings, Access(URIS), URIS,
                           ReadBounds(InflightBudget(2**20)))


async def reached(call: Any) -> None:
    """``call`` got through every rule: it asked etcd."""
    with pytest.raises(Reached):
        await call


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


def test_caller_is_who_the_router_disclosed() -> None:
    assert Caller.of(details("staff", "ann")) == Caller(session=1, authid="ann",
                                                        authrole="staff")
    assert Caller.of(object()) == Caller(session=None, authid=None, authrole=None)


@ensure
async def test_a_caller_whose_role_the_rules_name_gets_through() -> None:
    maps, kv = services(Answering())
    d = details("staff")
    for call in (maps.get("team", "k", details=d), maps.put("team", "k", 1, details=d),
                 maps.delete("team", "k", details=d), maps.count("team", details=d),
                 maps.range("team", details=d), maps.get_and_watch("team", details=d),
                 maps.txn([{"op": "put", "map": "team", "key": "k", "value": 1}],
                          expect=[{"map": "team", "key": "j", "revision": 0}], details=d)):
        await reached(call)
    admin = details("admin")
    for call in (kv.get("raw/admin/x", details=admin), kv.put("raw/admin/x", "v", details=admin),
                 kv.delete("raw/admin/", prefix=True, details=admin)):
        await reached(call)


@ensure
async def test_without_a_rule_no_role_is_needed() -> None:
    """A map or prefix without read/write rules serves a caller whose role the router
    did not disclose."""
    maps, kv = services(Answering())
    d = details(None)
    for call in (maps.get("public", "k", details=d), maps.put("public", "k", 1, details=d),
                 maps.range("public", details=d), kv.get("raw/x", details=d),
                 kv.put("raw/x", "v", details=d)):
        await reached(call)
    open_presence = presence(PresenceSettings.parse(True), Answering())
    await reached(open_presence.put("status", "online", details=d))
    await reached(open_presence.list(details=d))


@ensure
async def test_owners_get_through_to_their_own_key() -> None:
    maps, _ = services(Answering())
    d = details("guest", "someone")
    await reached(maps.put("mine", "someone", 1, details=d))
    await reached(maps.delete("mine", "someone", details=d))
    await reached(maps.txn([{"op": "put", "map": "mine", "key": "someone", "value": 1}],
                           details=d))


@ensure
async def test_presence_obeys_its_read_and_write_rules() -> None:
    guest, staff = details("guest"), details("staff")
    refusing = presence(SETTINGS.presence)
    assert await refused(refusing.put("status", "online", details=guest)) == DENIED
    assert await refused(refusing.delete("status", details=guest)) == DENIED
    assert await refused(refusing.list(details=guest)) == DENIED
    allowing = presence(SETTINGS.presence, Answering())
    await reached(allowing.put("status", "online", details=staff))
    await reached(allowing.delete("status", details=staff))
    await reached(allowing.list(details=staff))


class Lines:
    """A log recording each line as the text it would print."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, fmt: str, **fields: Any) -> None:
        self.lines.append(fmt.format(**fields))

    warn = info


def refusal(check: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        check()
    return info.value


TEAM, MINE = frozenset({"staff"}), "bob"


@pytest.mark.parametrize(("caller", "procedure", "target", "said"), [
    (Caller(1, "ann", "guest"), "map.put", "map team", "role 'guest' may not write"),
    (Caller(1, "ann", None), "map.get", "map team",
     "read is limited to some roles and the router disclosed no caller role"),
    (Caller(1, "ann", "guest"), "map.put", "map mine",
     "owner-only map: callers write only the key equal to their authid"),
    (Caller(1, None, "guest"), "map.put", "map mine",
     "owner-only map and the router disclosed no caller authid"),
])
def test_a_refusal_says_what_was_refused_and_logs_who_without_values(
        caller: Caller, procedure: str, target: str, said: str) -> None:
    """The caller learns the procedure, the target and why; the log also who asked."""
    access = Access(URIS)
    access.log = Lines()  # type: ignore[assignment]
    if target == "map team":
        action = "read" if procedure == "map.get" else "write"
        err = refusal(lambda: access.require_role(caller, TEAM, procedure=procedure,
                                                  target=target, action=action))
    else:
        err = refusal(lambda: access.require_owner(caller, MINE, procedure=procedure,
                                                   target=target))
    assert err.error == DENIED
    assert err.args == (f"{procedure}: not allowed on {target} ({said})",)
    assert access.log.lines == [  # type: ignore[attr-defined]
        f"etcdwamp: denied {procedure} on {target} to authid={caller.authid} "
        f"authrole={caller.authrole}: {said}"]


def test_refusals_are_logged_once_a_minute_per_procedure_and_role() -> None:
    """A caller probing the rules in a loop does not fill the log."""
    clock, log = Clock(), Lines()
    access = Access(URIS, QuietLog(clock.seconds, log=log))
    staff = frozenset({"staff"})

    def put(role: str, procedure: str = "map.put") -> None:
        refusal(lambda: access.require_role(Caller(1, "ann", role), staff,
                                            procedure=procedure, target="map team",
                                            action="write"))

    for _ in range(100):
        put("guest")
    assert log.lines == ["etcdwamp: denied map.put on map team to authid=ann "
                         "authrole=guest: role 'guest' may not write"]
    put("visitor")
    put("guest", "map.delete")
    assert len(log.lines) == 3
    clock.advance(60)
    put("guest")
    assert len(log.lines) == 4 and log.lines[-1].endswith(
        "(99 more like this in the last 60s)")
