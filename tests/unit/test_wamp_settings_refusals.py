"""Every refusal of a component's ``extra`` word for word (the operator reads it to fix the
config: it names the field, the bound and what to do), and the bounds accepted at both ends."""

from __future__ import annotations

from typing import Any

import pytest

from etcdwamp.wamp.limits import Rates
from etcdwamp.wamp.settings import (
    EtcdSettings,
    KvPrefix,
    MapSpec,
    PresenceSettings,
    Settings,
    SettingsError,
)

E: dict[str, Any] = {"endpoints": ["http://a"]}
G: dict[str, Any] = {"etcd": E}


def etcd(**fields: Any) -> dict[str, Any]:
    return {"etcd": {**E, **fields}}


def M(**fields: Any) -> dict[str, Any]:
    return {"maps": {"x": {"slot": 1, **fields}}}


def K(*prefixes: Any) -> dict[str, Any]:
    return {"kv_prefixes": list(prefixes)}


def L(limits: Any) -> dict[str, Any]:
    return {"limits": limits}


LARGEST_VALUE = 1536 * 1024 - 64 * 1024  # etcd's request limit less room for the rest


@pytest.mark.parametrize(("extra", "message"), [
    ("x",
     'component extra must be a JSON object'),
    ({"etcd": E, "range_page": 0},
     'extra.range_page must be an int in [1, 10000]'),
    ({"etcd": E, "range_page": 10001},
     'extra.range_page must be an int in [1, 10000]'),
    ({**G, "checkpoint_interval": 61},
     'extra.checkpoint_interval must be a number of seconds in [0, 60]'),
    ({**G, "max_snapshot_rows": 10**7 + 1},
     'extra.max_snapshot_rows must be an int in [1, 10000000]'),
    ({**G, "max_range_rows": 0},
     'extra.max_range_rows must be an int in [1, 1000000]'),
    ({**G, **M(slot=65536)},
     'extra.maps.x.slot must be an int in [0, 65535]'),
    ({**G, "presence": {"ttl": 3601}},
     'extra.presence.ttl must be an int in [2, 3600] seconds'),
    ({**G, "presence": {"max_keys": 10001}},
     'extra.presence.max_keys must be an int in [1, 10000]'),
    ({**G, "presence": {"max_value_bytes": LARGEST_VALUE + 1}},
     'extra.presence.max_value_bytes must be an int in [1, 1507328]'),
    ({**G, **M(max_value_bytes=LARGEST_VALUE + 1)},
     'extra.maps.x.max_value_bytes must be an int in [1, 1507328]'),
    ({**G, **M(max_key_bytes=64 * 1024 + 1)},
     'extra.maps.x.max_key_bytes must be an int in [1, 65536]'),
    ({**G, **K({"prefix": "r/", "max_keys": 10**9 + 1})},
     'extra.kv_prefixes[0].max_keys must be an int in [1, 1000000000]'),
    (etcd(timeout=0),
     'extra.etcd.timeout must be a positive number of seconds'),
    (etcd(coalesce_window=1.5),
     'extra.etcd.coalesce_window must be a number of seconds in [0, 1]'),
    (etcd(transport="http2"), 'extra.etcd.transport must be "gateway" or "grpc"'),
    (etcd(timeout=2, attempt_timeout=2.5),
     'extra.etcd.attempt_timeout must be a positive number of seconds, at most timeout'),
    (etcd(probe_interval=61),
     'extra.etcd.probe_interval must be a number of seconds in [0, 60]'),
    (etcd(max_connections=0),
     'extra.etcd.max_connections must be an integer of at least 1'),
    ({**G, "election": ""},
     'extra.election must be a non-empty string'),
    ({**G, "maps": []},
     'extra.maps must be an object: name -> {slot, key, value}'),
    ({**G, "kv_prefixes": {}},
     'extra.kv_prefixes must be a list of prefixes'),
    (etcd(user=5, password="p"),
     'extra.etcd.user must be a string'),
    (etcd(user="u", password=5),
     'extra.etcd.password must be a string'),
    (etcd(ca_file=""),
     'extra.etcd.ca_file must be a file path'),
    (etcd(user="u", password="${ETCDWAMP_UNSET_VAR}"),
     'extra.etcd.password: environment variable ETCDWAMP_UNSET_VAR is not set'),
    (etcd(user="${ETCDWAMP_UNSET_VAR}", password="p"),
     'extra.etcd.user: environment variable ETCDWAMP_UNSET_VAR is not set'),
    (etcd(namespace="x"),
     'extra.etcd.namespace must be a key prefix ending in "/", like "tenant1/" (so that no '
     'namespace is a prefix of another, as "tenant1" is of "tenant10")'),
    ({**G, "presence": {"prefix": ""}},
     'extra.presence.prefix must not be empty'),
    ({**G, "presence": {"prefix": 5}},
     'extra.presence.prefix must be a string'),
    ({**G, "presence": "x"},
     'extra.presence must be an object'),
    ({**G, "presence": {"bogus": 1}},
     "extra.presence: unknown key 'bogus' (valid: max_keys, max_value_bytes, prefix, read, "
     "ttl, write)"),
    ({**G, "presence": {"read": "staff"}},
     'extra.presence.read must be a list of authrole names'),
    ({**G, "presence": {"write": "staff"}},
     'extra.presence.write must be a list of authrole names'),
    ({**G, **K(5)},
     'extra.kv_prefixes[0] must be an object'),
    ({**G, **K({"prefix": 5})},
     'extra.kv_prefixes[0].prefix must be a string'),
    ({**G, **K({"prefix": "r/", "write": "x"})},
     'extra.kv_prefixes[0].write must be a list of authrole names'),
    ({**G, **K({"prefix": "r/", "read": "x"})},
     'extra.kv_prefixes[0].read must be a list of authrole names'),
    ({**G, **M(write="x")},
     'extra.maps.x.write must be a list of authrole names'),
    ({**G, **M(read=[""])},
     'extra.maps.x.read must be a list of authrole names'),
    ({**G, "maps": {"x": 5}},
     'extra.maps.x must be an object'),
    ({**G, **M(owner="yes")},
     'extra.maps.x.owner must be true or false'),
    ({**G, **M(owner=True, key="oid")},
     "extra.maps.x.owner needs string or uuid keys (compared with the caller's authid)"),
    ({**G, **M(events="owner", key="binary")},
     "extra.maps.x.events 'owner' needs string or uuid keys (compared with the subscriber's "
     "authid)"),
    ({**G, "db_prefix": 5},
     'extra.db_prefix must be a string'),
    ({**G, "prefix": "a..b"},
     "extra.prefix must be a WAMP URI like 'etcd': 'a..b'"),
    ({**G, **L(5)},
     'extra.limits must be an object'),
    ({**G, **L({"bogus": 1})},
     "extra.limits: unknown key 'bogus' (valid: default, roles)"),
    ({**G, **L({"default": 5})},
     'extra.limits.default must be an object'),
    ({**G, **L({"default": {"session": 5}})},
     'extra.limits.default.session must be an object'),
    ({**G, **L({"default": {"session": {"bogus": 1}}})},
     "extra.limits.default.session: unknown key 'bogus' (valid: calls_per_second, in_flight, "
     "read_bytes_per_second, write_bytes_per_second, writes_per_second)"),
    ({**G, **L({"roles": {"": {}}})},
     'extra.limits.roles: role names are non-empty strings'),
    ({**G, **L({"roles": {"guest": 5}})},
     'extra.limits.roles.guest must be an object'),
    ({**G, **L({"roles": 5})},
     'extra.limits.roles must be an object'),
    ({**G, **L({"default": {"session": {"in_flight": 1.5}}})},
     'extra.limits.default.session.in_flight must be a positive int or null (no limit)'),
    ({**G, **L({"default": {"authid": {"calls_per_second": 0}}})},
     'extra.limits.default.authid.calls_per_second must be a positive number or null (no limit)'),
    ({**G, **L({"roles": {"guest": {"role": {"calls_per_second": 0}}}})},
     'extra.limits.roles.guest.role.calls_per_second must be a positive number or null (no limit)'),
    ({**G, "maps": {"a": {"slot": 1}, "b": {"slot": 1}}},
     'extra.maps.b.slot 1 is already used by a'),
    ({**G, **K("a/b", "a.b")},
     'extra.kv_prefixes[1]: topic name \'a_b\' is already used by \'a/b\'; give it a "name"'),
    ({**G, **K("r/", "r/in/")},
     'extra.kv_prefixes[1] \'r/in/\' and extra.kv_prefixes[0] \'r/\': the first lies inside '
     'the second and its rules would replace the second\'s there; if that is meant, set '
     '"nested": true on the first'),
    ({**G, **K("r/", "r/")},
     "extra.kv_prefixes[0] 'r/' and extra.kv_prefixes[1] 'r/' are the same prefix: list it once"),
    ({**G, "db_prefix": "app/", **K("etcdwamp/publisher/x")},
     "extra.kv_prefixes[0] 'etcdwamp/publisher/x' overlaps the election "
     "'etcdwamp/publisher/': raw keys must stay out of the component's own keys"),
    ({**G, "db_prefix": "app/", **K("etcdwamp/publisher.checkpoint")},
     "extra.kv_prefixes[0] 'etcdwamp/publisher.checkpoint' overlaps the publisher checkpoint "
     "'etcdwamp/publisher.checkpoint': raw keys must stay out of the component's own keys"),
    ({**G, "db_prefix": "app/", "presence": {"prefix": "p/"}, **K("p/x/")},
     "extra.kv_prefixes[0] 'p/x/' overlaps presence.prefix 'p/': raw keys must stay out of "
     "the component's own keys"),
    ({**G, "db_prefix": "app/", **K("app/x")},
     "extra.kv_prefixes[0] 'app/x' overlaps db_prefix (the maps) 'app/': raw keys must stay "
     "out of the component's own keys"),
    ({**G, "presence": {"prefix": "etcdwamp/publisher/"}},
     "extra.presence.prefix 'etcdwamp/publisher/' overlaps the election 'etcdwamp/publisher/'"),
    ({**G, "presence": {"prefix": "etcdwamp/publisher.checkpoint"}},
     "extra.presence.prefix 'etcdwamp/publisher.checkpoint' overlaps the publisher checkpoint "
     "'etcdwamp/publisher.checkpoint'"),
    ({**G, "election": "app/\x00\x01e", "db_prefix": "app/", "maps": {"m": {"slot": 1}}},
     "the election 'app/\\x00\\x01e/' lies inside map 'm' (db_prefix + slot 1): move it out "
     "of extra.db_prefix"),
    ({**G, "db_prefix": "app/", "presence": {"prefix": "app/\x00\x02p/"},
      "maps": {"m": {"slot": 2}}},
     "presence.prefix 'app/\\x00\\x02p/' lies inside map 'm' (db_prefix + slot 2): move it "
     "out of extra.db_prefix"),
    ({**G, "bogus_key_zz": 1},
     "extra: unknown key 'bogus_key_zz' (valid: checkpoint_interval, db_prefix, election, "
     "etcd, health_interval, kv_prefixes, limits, maps, max_inflight_bytes, max_range_rows, "
     "max_snapshot_rows, metrics, prefix, presence, prev_value, range_page)"),
    (etcd(endpoints="ftp://a"),
     'extra.etcd.endpoints must be a non-empty list of http(s) URLs'),
    (etcd(tmeout=1),
     "extra.etcd: unknown key 'tmeout' (did you mean 'timeout'?)"),
    ({**G, **L({"default": {"bogus": 1}})},
     "extra.limits.default: unknown key 'bogus' (valid: authid, role, session)"),
    ({**G, "prev_value": "yes"}, "extra.prev_value must be true or false"),
    ({**G, "metrics": "on"}, "extra.metrics must be true or false"),
    ({**G, "health_interval": 0}, "extra.health_interval must be a number of seconds in "
     "[0.1, 300]"),
    ({**G, "health_interval": True}, "extra.health_interval must be a number of seconds in "
     "[0.1, 300]"),
    # a value of the wrong type is refused the same way, never a crash
    (etcd(timeout="x"), "extra.etcd.timeout must be a positive number of seconds"),
    (etcd(coalesce_window="x"), "extra.etcd.coalesce_window must be a number of seconds in [0, 1]"),
    (etcd(attempt_timeout="1"),
     "extra.etcd.attempt_timeout must be a positive number of seconds, at most timeout"),
    (etcd(ca_file=5), "extra.etcd.ca_file must be a file path"),
    ({**G, "range_page": "x"}, "extra.range_page must be an int in [1, 10000]"),
    ({**G, "checkpoint_interval": "1"},
     "extra.checkpoint_interval must be a number of seconds in [0, 60]"),
    ({**G, "election": 5}, "extra.election must be a non-empty string"),
    ({**G, **M(slot="1")}, "extra.maps.x.slot must be an int in [0, 65535]"),
    ({**G, "presence": {"ttl": "2"}}, "extra.presence.ttl must be an int in [2, 3600] seconds"),
    ({**G, **L({"roles": {5: {}}})}, "extra.limits.roles: role names are non-empty strings"),
])
def test_each_refusal_names_the_field_and_the_fix(extra: Any, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_extra(extra)
    assert str(info.value) == message


@pytest.mark.parametrize(("extra", "read", "expected"), [
    ({**G, "range_page": 1}, lambda s: s.range_page, 1),
    ({**G, "range_page": 10000}, lambda s: s.range_page, 10000),
    ({**G, "checkpoint_interval": 0}, lambda s: s.checkpoint_interval, 0.0),
    ({**G, "checkpoint_interval": 60}, lambda s: s.checkpoint_interval, 60.0),
    ({**G, "max_range_rows": 1}, lambda s: s.max_range_rows, 1),
    ({**G, "max_range_rows": 10**6}, lambda s: s.max_range_rows, 10**6),
    ({**G, "max_snapshot_rows": 1}, lambda s: s.max_snapshot_rows, 1),
    ({**G, "max_snapshot_rows": 10**7}, lambda s: s.max_snapshot_rows, 10**7),
    ({**G, "max_inflight_bytes": 2**16}, lambda s: s.max_inflight_bytes, 2**16),
    ({**G, "max_inflight_bytes": 2**40}, lambda s: s.max_inflight_bytes, 2**40),
    (etcd(timeout=0.5), lambda s: s.etcd.timeout, 0.5),
    (etcd(coalesce_window=1), lambda s: s.etcd.coalesce_window, 1.0),
    (etcd(timeout=2, attempt_timeout=2), lambda s: s.etcd.attempt_timeout, 2.0),
    (etcd(attempt_timeout=0.5), lambda s: s.etcd.attempt_timeout, 0.5),
    (etcd(probe_interval=60, probe_timeout=60),
     lambda s: (s.etcd.probe_interval, s.etcd.probe_timeout), (60.0, 60.0)),
    (etcd(probe_interval=0, probe_timeout=0.1),
     lambda s: (s.etcd.probe_interval, s.etcd.probe_timeout), (0.0, 0.1)),
    (etcd(max_connections=1, max_queued=0),
     lambda s: (s.etcd.max_connections, s.etcd.max_queued), (1, 0)),
    (etcd(endpoints="http://one"), lambda s: s.endpoints, ("http://one",)),
    ({**G, "maps": {"a": {"slot": 0}, "b": {"slot": 65535}}},
     lambda s: [m.slot for m in s.maps], [0, 65535]),
    ({**G, **M(max_value_bytes=1, max_key_bytes=1, max_keys=1)},
     lambda s: (s.maps[0].max_value_bytes, s.maps[0].max_key_bytes, s.maps[0].max_keys),
     (1, 1, 1)),
    ({**G, **M(max_value_bytes=LARGEST_VALUE, max_key_bytes=64 * 1024, max_keys=10**9)},
     lambda s: (s.maps[0].max_value_bytes, s.maps[0].max_key_bytes, s.maps[0].max_keys),
     (LARGEST_VALUE, 64 * 1024, 10**9)),
    ({**G, "presence": {"ttl": 2, "max_keys": 1, "max_value_bytes": 1}},
     lambda s: (s.presence.ttl, s.presence.max_keys, s.presence.max_value_bytes), (2, 1, 1)),
    ({**G, "presence": {"ttl": 3600, "max_keys": 10000, "max_value_bytes": LARGEST_VALUE}},
     lambda s: (s.presence.ttl, s.presence.max_keys, s.presence.max_value_bytes),
     (3600, 10000, LARGEST_VALUE)),
    ({**G, **L({"default": {"session": {"calls_per_second": 0.5, "in_flight": 1}}})},
     lambda s: (s.limits.default.session.calls_per_second, s.limits.default.session.in_flight),
     (0.5, 1)),
])
def test_bounds_are_accepted_at_both_ends(extra: Any, read: Any, expected: Any) -> None:
    assert read(Settings.from_extra(extra)) == expected


def test_every_field_given_is_kept() -> None:
    """Nothing given in extra is dropped on the way to the settings the component uses."""
    extra = {
        "etcd": {"endpoints": ["http://a", "https://b"], "timeout": 3, "user": "u",
                 "password": "p", "coalesce": False, "coalesce_window": 0.5,
                 "namespace": "tenant/", "max_connections": 4, "max_queued": 5,
                 "attempt_timeout": 1, "probe_interval": 2, "probe_timeout": 3},
        "prefix": "com.example", "db_prefix": "app/", "prev_value": True,
        "election": "pub", "range_page": 7, "checkpoint_interval": 2,
        "max_range_rows": 8, "max_snapshot_rows": 9, "max_inflight_bytes": 2**17,
        "maps": {"m": {"slot": 1, "key": "uuid", "value": "cbor", "read": ["r"],
                       "write": ["w"], "owner": True, "events": "owner",
                       "max_value_bytes": 10, "max_key_bytes": 11, "max_keys": 12}},
        "kv_prefixes": [{"prefix": "raw/", "name": "raw", "read": ["r"], "write": ["w"],
                         "max_value_bytes": 13, "max_key_bytes": 14, "max_keys": 15},
                        {"prefix": "raw/in/", "nested": True}],
        "presence": {"prefix": "here/", "ttl": 5, "read": ["r"], "write": ["w"],
                     "max_value_bytes": 16, "max_keys": 17},
        "limits": {"default": {"session": {"calls_per_second": 2}},
                   "roles": {"admin": None, "guest": {"authid": {"in_flight": 3}}}},
    }
    s = Settings.from_extra(extra)
    r, w = frozenset({"r"}), frozenset({"w"})
    assert s.etcd == EtcdSettings(
        endpoints=("http://a", "https://b"), timeout=3.0, user="u", password="p",
        coalesce=False, coalesce_window=0.5, namespace=b"tenant/", max_connections=4,
        max_queued=5, attempt_timeout=1.0, probe_interval=2.0, probe_timeout=3.0)
    assert (s.prefix, s.db_prefix, s.prev_value, s.election, s.range_page,
            s.checkpoint_interval, s.max_range_rows, s.max_snapshot_rows,
            s.max_inflight_bytes) == ("com.example", b"app/", True, b"pub", 7, 2.0, 8, 9, 2**17)
    assert s.maps == (MapSpec(name="m", slot=1, key_type="uuid", value_type="cbor", read=r,
                              write=w, owner=True, events="owner", max_value_bytes=10,
                              max_key_bytes=11, max_keys=12),)
    assert s.kv_prefixes == (
        KvPrefix(prefix=b"raw/", name="raw", read=r, write=w, max_value_bytes=13,
                 max_key_bytes=14, max_keys=15),
        KvPrefix(prefix=b"raw/in/", name="raw_in", nested=True))
    assert s.presence == PresenceSettings(prefix=b"here/", ttl=5, read=r, write=w,
                                          max_value_bytes=16, max_keys=17)
    assert s.limits.default.session == Rates(**{**vars(Rates()), "calls_per_second": 2.0})
    assert isinstance(s.limits.default.session.calls_per_second, float)  # as Rates types it
    assert s.limits.roles["admin"] is None
    guest = s.limits.roles["guest"]
    assert guest is not None and guest.authid.in_flight == 3
    assert s.extra == extra


def test_unknown_keys_are_reported_whatever_their_type() -> None:
    """A Python caller's dict may hold a key that is not a string: still a SettingsError."""
    with pytest.raises(SettingsError, match="unknown key 1 "):
        Settings.from_extra({**G, 1: "x", "zz_unknown": 2})


def test_a_near_miss_is_suggested() -> None:
    """Half the letters in common is near enough ("page" for "range_page")."""
    with pytest.raises(SettingsError, match=r"unknown key 'page' \(did you mean 'range_page'\?\)$"):
        Settings.from_extra({**G, "page": 5})


def test_tls_client_files_come_in_pairs_and_not_with_a_login(tmp_path: Any) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("not read here")
    key.write_text("not read here")
    https = {"endpoints": ["https://a"]}
    with pytest.raises(SettingsError) as info:
        Settings.from_extra({"etcd": {**https, "cert_file": str(cert)}})
    assert str(info.value) == "extra.etcd needs both cert_file and key_file, or neither"
    with pytest.raises(SettingsError) as info:
        Settings.from_extra({"etcd": {**https, "cert_file": str(cert), "key_file": str(key),
                                      "user": "u", "password": "p"}})
    assert str(info.value) == (
        "extra.etcd: give cert_file/key_file or user/password, not both (etcd's gateway "
        "does not accept a client certificate together with a user login)")
