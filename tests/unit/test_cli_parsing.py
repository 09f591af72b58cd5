"""Pure parts of the CLI: endpoint lists, lease ids, map records as JSON, usage errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
import uuid

import pytest

from etcdwamp import pmap
from etcdwamp.cli import build_parser, main, parse_lease_id
from etcdwamp.cli_endpoints import DEFAULT_ENDPOINT, EndpointError, endpoint_texts, endpoint_urls
from etcdwamp.cli_ops import human_bytes
from etcdwamp.cli_transfer import MapJson


def test_endpoint_list_forms() -> None:
    assert endpoint_urls("127.0.0.1:2379,http://10.0.0.2:22379, https://e3:1") == [
        "http://127.0.0.1:2379", "http://10.0.0.2:22379", "https://e3:1"]
    assert endpoint_urls("[::1]:2379") == ["http://[::1]:2379"]
    assert endpoint_urls("etcd1") == ["http://etcd1:2379"]
    assert endpoint_urls("etcd1:2379", tls=True) == ["https://etcd1:2379"]
    assert endpoint_urls("http://h:2379/") == ["http://h:2379"]


def test_endpoints_fall_back_to_etcdwamp_then_etcdctl_variables_then_localhost() -> None:
    both = {"ETCDWAMP_ENDPOINTS": "a:1", "ETCDCTL_ENDPOINTS": "b:2"}
    assert endpoint_urls(None, environ=both) == ["http://a:1"]
    assert endpoint_urls(None, environ={"ETCDCTL_ENDPOINTS": "b:2"}) == ["http://b:2"]
    assert endpoint_urls(None, environ={"ETCDWAMP_ENDPOINTS": " "}) == [DEFAULT_ENDPOINT]
    assert endpoint_urls(None, environ={}) == [DEFAULT_ENDPOINT]
    assert endpoint_urls("c:3", environ=both) == ["http://c:3"]


def test_endpoint_texts_map_each_url_to_what_was_typed() -> None:
    assert endpoint_texts(" 127.0.0.1:2379,http://h:1/,e3", tls=False) == {
        "http://127.0.0.1:2379": "127.0.0.1:2379", "http://h:1": "http://h:1/",
        "http://e3:2379": "e3"}
    assert endpoint_texts("e3", tls=True) == {"https://e3:2379": "e3"}
    assert endpoint_texts("a:1,http://a:1") == {"http://a:1": "a:1"}  # the first one wins
    assert endpoint_texts(None, environ={"ETCDCTL_ENDPOINTS": "b:2"}) == {"http://b:2": "b:2"}
    assert endpoint_texts(None, environ={}) == {DEFAULT_ENDPOINT: DEFAULT_ENDPOINT}
    with pytest.raises(EndpointError):
        endpoint_texts(",")


@pytest.mark.parametrize("bad", ["ftp://h:1", "h:port", "h:99999", "http://", "http://h:1/v3",
                                 "http://u:p@h:1", ",", "h:1?x=1"])
def test_bad_endpoints_are_refused_with_the_item(bad: str) -> None:
    with pytest.raises(EndpointError) as caught:
        endpoint_urls(bad)
    assert isinstance(caught.value, ValueError)


def test_lease_ids_are_hex_as_etcdctl_prints_them() -> None:
    assert parse_lease_id("694d77aa9e38260f") == 0x694D77AA9E38260F
    assert parse_lease_id("0x10") == 16
    for bad in ("xyz", "0", "-1", "8000000000000000"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_lease_id(bad)


def test_global_options_go_before_or_after_the_command() -> None:
    before = build_parser().parse_args(["--endpoints", "a:1", "-w", "json", "get", "k"])
    after = build_parser().parse_args(["get", "k", "--endpoints", "a:1", "-w", "json"])
    for args in (before, after):
        assert (args.endpoints, args.write_out, args.key) == ("a:1", "json", b"k")
    defaults = build_parser().parse_args(["lease", "grant", "5"])
    assert (defaults.endpoints, defaults.write_out, defaults.timeout) == (None, "simple", 10.0)


def test_lock_takes_the_command_after_the_double_dash() -> None:
    args = build_parser().parse_args(["lock", "L", "--", "sh", "-c", "echo --prefix"])
    assert args.name == b"L" and args.child[-3:] == ["sh", "-c", "echo --prefix"]


def test_usage_errors_are_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["get"], ["nope"], ["get", "k", "--limit", "x"], ["--timeout", "0", "get", "k"],
                 []):
        assert main(argv) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith("etcdwamp: error: "), err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import etcdwamp

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"etcdwamp {etcdwamp.__version__}\n"


def test_map_records_as_json_round_trip_every_map_type() -> None:
    """Every map type's records survive JSON; values JSON cannot hold stay bytes (base64)."""
    import json

    samples = {
        "MapOidJson": ((7, {"a": [1, "x"]}), (7, {"a": [1, "x"]})),
        "MapUuidStringUuid": (((uuid.UUID(int=1), "s"), uuid.UUID(int=2)),
                              ([str(uuid.UUID(int=1)), "s"], str(uuid.UUID(int=2)))),
        "MapStringBinary": (("k", b"\x00\xff"), ("k", "AP8=")),
        "MapUuidCbor": ((uuid.UUID(int=3), {"b": b"\x01"}), (str(uuid.UUID(int=3)), None)),
    }
    for name, ((key, value), (key_json, value_json)) in samples.items():
        table = pmap.MAP_TYPES[name](0)
        mapped = MapJson.for_type(name)
        raw_key, raw_value = table.key_codec.encode(key), table.value_codec.encode(value)
        record = json.loads(json.dumps({"key": mapped.key_out(raw_key),
                                        "value": mapped.value_out(raw_value)}))
        assert record["key"] == key_json
        if value_json is not None:
            assert record["value"] == value_json
        assert mapped.key_in(record["key"]) == raw_key
        assert mapped.value_in(record["value"]) == raw_value
    for name in pmap.MAP_TYPES:  # every type can be set up for export
        MapJson.for_type(name)


def test_map_json_refuses_wrong_types() -> None:
    mapped = MapJson.for_type("MapOidString")
    with pytest.raises(ValueError, match="integer"):
        mapped.key_in("7")
    with pytest.raises(ValueError, match="string"):
        mapped.value_in(7)



_LAZY_CHECK = """
import sys, etcdwamp
assert 'etcdwamp.client' not in sys.modules, 'import etcdwamp imported the client'
import etcdwamp.cli
etcdwamp.cli.build_parser().parse_args(sys.argv[1:])
lazy = ('etcdwamp.pmap', 'etcdwamp.cli_transfer', 'tqdm', 'cbor2')
print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in lazy
                      or '.'.join(m.split('.')[:2]) in lazy)))
"""


@pytest.mark.parametrize("argv", [["get", "k"], ["import", "--dry-run", "f.jsonl"]])
def test_the_command_line_imports_neither_pmap_nor_tqdm_at_start_up(argv: list[str]) -> None:
    """Start-up time: ``import etcdwamp`` leaves the client unimported, and
    ``import etcdwamp.cli`` plus parsing a command leaves the pmap codecs, cbor2,
    tqdm and the export/import code unimported (in a fresh interpreter)."""
    done = subprocess.run([sys.executable, "-c", _LAZY_CHECK, *argv], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout


def test_map_type_is_checked_at_parse_time_with_the_map_classes_imported_then() -> None:
    """``--map-type`` imports the pmap classes only to check the name: a bad name is
    still a usage error (status 2) naming the choices."""
    args = build_parser().parse_args(["import", "--map", "1", "--map-type", "MapUuidCbor", "f"])
    assert args.map_type == "MapUuidCbor"
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["import", "--map", "1", "--map-type", "MapNope", "f"])
    assert caught.value.code == 2


def test_the_package_names_resolve_on_first_use() -> None:
    """The lazy ``etcdwamp`` namespace gives the same objects as their modules."""
    import etcdwamp
    from etcdwamp import errors, wire
    from etcdwamp.client import Client

    assert etcdwamp.Client is Client and etcdwamp.pmap is pmap
    assert etcdwamp.Database is pmap.Database and etcdwamp.KeySet is wire.KeySet
    assert etcdwamp.Expired is errors.LeaseExpired and etcdwamp.Failed is errors.TxnFailed
    assert set(etcdwamp.__all__) <= set(dir(etcdwamp))
    with pytest.raises(AttributeError):
        etcdwamp.NoSuchName  # noqa: B018


@pytest.mark.parametrize(("size", "shown"), [
    (0, "0 B"), (9, "9 B"), (10, "10 B"), (999, "999 B"), (1000, "1.0 kB"), (1049, "1.0 kB"),
    (9949, "9.9 kB"), (20480, "20 kB"), (24576, "25 kB"), (1_234_567, "1.2 MB"),
    (25_000_000, "25 MB"), (3 * 10**9, "3.0 GB")])
def test_sizes_are_shown_as_etcdctl_shows_them(size: int, shown: str) -> None:
    """go-humanize's SI bytes, as in ``etcdctl endpoint status``: one decimal below 10."""
    assert human_bytes(size) == shown
