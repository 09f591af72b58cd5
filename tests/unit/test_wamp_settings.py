"""The component's settings from Crossbar's extra, and its error translation."""

from __future__ import annotations

from typing import Any

import pytest

from etcdwamp import errors as e
from etcdwamp import pmap
from etcdwamp.wamp.errors import ErrorUris, to_application_error
from etcdwamp.wamp.settings import PresenceSettings, Settings, SettingsError

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
    assert s.maps[0].read is None and s.maps[0].write is None and not s.maps[0].owner
    assert s.kv_prefixes == () and s.presence is None and s.etcd.timeout == 10.0
    assert s.etcd.coalesce is True and s.etcd.coalesce_window == 0.0
    assert s.etcd.namespace == b"" and s.checkpoint_interval == 0.1
    # size limits: safe defaults, no key cap unless configured
    assert (s.maps[0].max_value_bytes, s.maps[0].max_key_bytes, s.maps[0].max_keys) == \
        (64 * 1024, 1024, None)


@pytest.mark.parametrize(("presence", "expected"), [
    (True, PresenceSettings()),
    (False, None),
    (None, None),
    ({"prefix": "here/", "ttl": 5, "read": ["staff"], "write": []},
     PresenceSettings(prefix=b"here/", ttl=5, read=frozenset({"staff"}), write=frozenset())),
])
def test_presence_on_off_and_its_rules(presence: Any, expected: PresenceSettings | None) -> None:
    """``true`` turns presence on with the defaults, ``false``/``null`` off; its
    read and write rules are kept."""
    assert Settings.from_extra({**GOOD, "presence": presence}).presence == expected


def test_map_events_owner_or_readers() -> None:
    s = Settings.from_extra({**GOOD, "maps": {
        "inbox": {"slot": 1, "owner": True, "events": "owner"},
        "notes": {"slot": 2, "events": "readers"}, "plain": {"slot": 3}}})
    assert [(m.name, m.events) for m in s.maps] == [
        ("inbox", "owner"), ("notes", "readers"), ("plain", "readers")]


def test_size_limits_per_map_and_kv_prefix() -> None:
    s = Settings.from_extra({**GOOD, "db_prefix": "app/", "maps": {"m": {
        "slot": 1, "max_value_bytes": 100, "max_key_bytes": 10, "max_keys": 5}},
        "kv_prefixes": [{"prefix": "raw/", "max_keys": 3},
                        {"prefix": "raw/in/", "name": "inner", "nested": True}]})
    m = s.maps[0]
    assert (m.max_value_bytes, m.max_key_bytes, m.max_keys) == (100, 10, 5)
    assert s.kv_prefixes[0].max_keys == 3 and s.kv_prefixes[0].max_value_bytes == 64 * 1024
    assert s.kv_prefixes[1].nested and not s.kv_prefixes[0].nested


def test_namespace_is_a_key_prefix() -> None:
    s = Settings.from_extra({**GOOD, "etcd": {"endpoints": ["http://a"],
                                              "namespace": "tenant-ä/"}})
    assert s.etcd.namespace == "tenant-ä/".encode()


def test_connection_limits_default_for_a_router_worker_and_are_validated() -> None:
    s = Settings.from_extra(GOOD)
    assert (s.etcd.max_connections, s.etcd.max_queued) == (32, 1024)
    s = Settings.from_extra({**GOOD, "etcd": {"endpoints": ["http://a"],
                                              "max_connections": 4, "max_queued": 0}})
    assert (s.etcd.max_connections, s.etcd.max_queued) == (4, 0)
    for bad in ({"max_connections": 0}, {"max_connections": 2.5}, {"max_queued": -1},
                {"max_queued": True}, {"max_queued": "9"}):
        name = next(iter(bad))
        with pytest.raises(SettingsError, match=f"extra.etcd.{name} must be an integer"):
            Settings.from_extra({**GOOD, "etcd": {"endpoints": ["http://a"], **bad}})


def test_attempt_timeout_defaults_to_a_share_and_reaches_the_client() -> None:
    assert Settings.from_extra(GOOD).etcd.attempt_timeout is None
    s = Settings.from_extra({**GOOD, "etcd": {"endpoints": ["http://a"], "timeout": 6,
                                              "attempt_timeout": 1.5}})
    assert s.etcd.attempt_timeout == 1.5


def test_the_transport_is_the_gateway_unless_grpc_is_named() -> None:
    assert Settings.from_extra(GOOD).etcd.transport == "gateway"
    s = Settings.from_extra({**GOOD, "etcd": {"endpoints": ["http://a"], "transport": "grpc"}})
    assert s.etcd.transport == "grpc"


def test_probes_default_to_two_seconds_and_zero_turns_them_off() -> None:
    s = Settings.from_extra(GOOD)
    assert (s.etcd.probe_interval, s.etcd.probe_timeout) == (2.0, 2.0)
    s = Settings.from_extra({**GOOD, "etcd": {"endpoints": ["http://a"], "probe_interval": 0,
                                              "probe_timeout": 0.5}})
    assert (s.etcd.probe_interval, s.etcd.probe_timeout) == (0.0, 0.5)


def test_rules_tls_and_secrets_from_the_environment(tmp_path: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    monkeypatch.setenv("ETCDWAMP_TEST_PASSWORD", "s3cret")
    s = Settings.from_extra({
        "etcd": {"endpoints": ["https://127.0.0.1:1"], "ca_file": str(ca), "user": "web",
                 "password": "${ETCDWAMP_TEST_PASSWORD}", "timeout": 2},
        "db_prefix": "app/",
        "maps": {"p": {"slot": 1, "read": ["guest"], "write": [], "owner": True}},
        "kv_prefixes": ["raw/", {"prefix": "raw/secret/", "read": ["admin"], "nested": True}],
        "presence": {"prefix": "here/"},
    })
    assert s.etcd.password == "s3cret" and s.etcd.user == "web" and s.etcd.ca_file == str(ca)
    assert "s3cret" not in repr(s.etcd)
    assert s.maps[0].read == frozenset({"guest"}) and s.maps[0].write == frozenset()
    assert s.maps[0].owner
    assert [p.prefix for p in s.kv_prefixes] == [b"raw/", b"raw/secret/"]
    assert s.kv_prefixes[1].read == frozenset({"admin"}) and s.kv_prefixes[1].write is None
    assert s.presence is not None and s.presence.prefix == b"here/" and s.presence.ttl == 10
    monkeypatch.delenv("ETCDWAMP_TEST_PASSWORD")
    with pytest.raises(SettingsError, match="ETCDWAMP_TEST_PASSWORD is not set"):
        Settings.from_extra({"etcd": {"endpoints": ["http://a"], "user": "web",
                                      "password": "${ETCDWAMP_TEST_PASSWORD}"}})


def test_tls_files_need_https(tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(SettingsError, match="need https"):
        Settings.from_extra({"etcd": {"endpoints": ["http://a"], "ca_file": str(ca)}})


def test_a_client_certificate_and_a_user_login_are_refused_together(tmp_path: Any) -> None:
    """etcd's gateway takes one or the other: say so at start-up, not at the first call."""
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("x")
    tls = {"endpoints": ["https://127.0.0.1:1"], "ca_file": str(tmp_path / "ca.pem"),
           "cert_file": str(tmp_path / "client.pem"), "key_file": str(tmp_path / "client.key")}
    login = {"user": "web", "password": "pw"}
    with pytest.raises(SettingsError, match="cert_file/key_file or user/password, not both"):
        Settings.from_extra({"etcd": {**tls, **login}})
    assert Settings.from_extra({"etcd": tls}).etcd.cert_file == tls["cert_file"]
    without_cert = {k: v for k, v in tls.items() if k not in ("cert_file", "key_file")}
    assert Settings.from_extra({"etcd": {**without_cert, **login}}).etcd.user == "web"


def test_committed_node_config_is_valid() -> None:
    import json
    from pathlib import Path

    config = json.loads((Path(__file__).resolve().parents[2] / "crossbar" / ".crossbar"
                         / "config.json").read_text())
    extras = [c["extra"] for w in config["workers"] for c in w.get("components", [])
              if c.get("classname", "").startswith("etcdwamp.")]
    assert extras
    for extra in extras:
        Settings.from_extra(extra)
    assert "secret" not in json.dumps(config).replace("${", "")


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
    ({"typo": 1}, "extra: unknown key 'typo'"),
    ({"etcd": {"endpoints": ["http://a"], "tmeout": 3}},
     "extra.etcd: unknown key 'tmeout' \\(did you mean 'timeout'\\?\\)"),
    ({"etcd": {"endpoints": ["http://a"], "cafile": "x"}}, "did you mean 'ca_file'"),
    ({"etcd": {"endpoints": ["http://a"], "ca_file": "/nonexistent/ca.pem"}}, "no such file"),
    ({"etcd": {"endpoints": ["http://a"], "timeout": True}}, "timeout"),
    ({"maps": {"x": {"slot": 1, "raed": ["a"]}}}, "extra.maps.x: unknown key 'raed'.*'read'"),
    ({"maps": {"x": {"slot": 1, "read": "writer"}}}, "extra.maps.x.read"),
    ({"maps": {"x": {"slot": 1, "key": "oid", "owner": True}}}, "owner needs string"),
    ({"kv_prefixes": [{"prefix": "a/", "wrte": []}]}, "kv_prefixes\\[0\\]: unknown key"),
    ({"kv_prefixes": [""]}, "must not be empty"),
    ({"db_prefix": "app/", "kv_prefixes": ["raw/", {"prefix": "raw/", "read": ["w"]}]},
     r"kv_prefixes\[0\] 'raw/' and extra.kv_prefixes\[1\] 'raw/' are the same prefix"),
    ({"db_prefix": "app/", "kv_prefixes": ["raw/", {"prefix": "raw/x/", "name": "x"}]},
     r"kv_prefixes\[1\] 'raw/x/' and extra.kv_prefixes\[0\] 'raw/'.*\"nested\": true"),
    ({"db_prefix": "app/", "kv_prefixes": [{"prefix": "raw/", "nested": "yes"}]},
     "nested must be true or false"),
    ({"maps": {"x": {"slot": 1, "max_value_bytes": 0}}}, "max_value_bytes must be an int"),
    ({"maps": {"x": {"slot": 1, "max_value_bytes": 2 * 1024 * 1024}}}, "max_value_bytes"),
    ({"maps": {"x": {"slot": 1, "max_key_bytes": True}}}, "max_key_bytes"),
    ({"maps": {"x": {"slot": 1, "max_keys": -5}}}, "max_keys"),
    ({"db_prefix": "app/", "kv_prefixes": [{"prefix": "r/", "max_keys": "9"}]}, "max_keys"),
    ({"kv_prefixes": ["app/"], "db_prefix": "app/"}, "overlaps db_prefix"),
    ({"kv_prefixes": ["raw/"]}, "overlaps db_prefix"),  # db_prefix "" holds every key
    ({"kv_prefixes": ["etc"], "db_prefix": "app/", "election": "etcdwamp/pub"},
     "overlaps the election"),
    ({"kv_prefixes": ["p/"], "db_prefix": "app/", "presence": {"prefix": "p/x/"}},
     "overlaps presence.prefix"),
    ({"presence": {"ttl": 1}}, "extra.presence.ttl"),
    ({"presence": {"max_keys": 0}}, "extra.presence.max_keys"),
    ({"presence": {"max_value_bytes": "4k"}}, "extra.presence.max_value_bytes"),
    ({"presence": {"prefx": "x/"}}, "did you mean 'prefix'"),
    ({"prev_value": "yes"}, "prev_value"),
    ({"etcd": {"endpoints": ["http://a"], "coalesce": 1}}, "coalesce must be"),
    ({"etcd": {"endpoints": ["http://a"], "coalesce_window": 5}}, "coalesce_window"),
    ({"etcd": {"endpoints": ["http://a"], "namespace": ""}}, "namespace must be a key prefix"),
    ({"etcd": {"endpoints": ["http://a"], "attempt_timeout": 0}}, "attempt_timeout must be"),
    ({"etcd": {"endpoints": ["http://a"], "attempt_timeout": 11}}, "at most timeout"),
    ({"etcd": {"endpoints": ["http://a"], "attempt_timeout": "2"}}, "attempt_timeout must be"),
    ({"etcd": {"endpoints": ["http://a"], "attempt_timeout": True}}, "attempt_timeout must be"),
    ({"etcd": {"endpoints": ["http://a"], "probe_interval": -1}}, "probe_interval must be"),
    ({"etcd": {"endpoints": ["http://a"], "probe_interval": "2"}}, "probe_interval must be"),
    ({"etcd": {"endpoints": ["http://a"], "probe_timeout": 0}}, "probe_timeout must be"),
    ({"etcd": {"endpoints": ["http://a"], "probe_timeout": 61}}, "probe_timeout must be"),
    ({"etcd": {"endpoints": ["http://a"], "namespace": "tenant1"}}, "ending in"),
    ({"checkpoint_interval": -1}, "checkpoint_interval must be"),
    ({"checkpoint_interval": "0.1"}, "checkpoint_interval must be"),
    ({"checkpoint_interval": True}, "checkpoint_interval must be"),
    ({"checkpoint_interval": 61}, "checkpoint_interval must be"),
    ({"checkpoint_intervall": 1}, "did you mean 'checkpoint_interval'"),
    ({"etcd": {"endpoints": ["http://a"], "namespace": b"x/"}}, "namespace must be"),
    ({"etcd": {"endpoints": ["http://a"], "namespce": "x/"}}, "did you mean 'namespace'"),
    ({"maps": {"x": {"slot": 1, "events": "all"}}}, "extra.maps.x.events"),
    ({"maps": {"x": {"slot": 1, "key": "oid", "events": "owner"}}}, "needs string or uuid"),
    ({"db_prefix": "app/", "kv_prefixes": ["a/b", "a.b"]}, "topic name 'a_b' is already used"),
    ({"db_prefix": "app/", "kv_prefixes": [{"prefix": "a/", "name": "A-1"}]}, "name must use"),
])

def test_bad_extra_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_extra({**GOOD, **change})

def test_kv_prefix_topic_names() -> None:
    s = Settings.from_extra({**GOOD, "db_prefix": "app/", "kv_prefixes": [
        "demo/raw/", {"prefix": "demo/raw/admin/", "name": "admin", "nested": True}]})
    assert [p.name for p in s.kv_prefixes] == ["demo_raw", "admin"]
    assert s.maps[0].events == "readers"


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
