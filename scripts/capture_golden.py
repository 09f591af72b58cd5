"""Capture golden gateway exchanges from a real etcd into tests/unit/golden/.

Starts a throw-away etcd (free loopback ports, temp data dir), sends a fixed
sequence of requests with plain urllib, and writes each exchange as
``{"path", "request", "status", "response"}``. The unit tests parse these
answers with the wire layer, so what they check is what etcd really sends.

    .venv/bin/python scripts/capture_golden.py
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from etcdwamp.testing import EtcdCluster

OUT = Path(__file__).resolve().parent.parent / "tests" / "unit" / "golden"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Recorder:
    def __init__(self, url: str) -> None:
        self.url = url
        self.version = ""

    def post(self, name: str | None, path: str, body: Any, raw: bytes | None = None) -> Any:
        data = raw if raw is not None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                status, content = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, content = err.code, err.read()
        try:
            parsed: Any = json.loads(content)
        except ValueError:
            parsed = content.decode("utf-8", "replace")
        if name is not None:
            record = {"path": path, "request": body if raw is None else raw.decode(),
                      "status": status, "response": parsed, "etcd": self.version}
            (OUT / f"{name}.json").write_text(json.dumps(record, indent=2, sort_keys=True)
                                              + "\n")
        return parsed


def capture(rec: Recorder) -> None:
    rec.version = rec.post(None, "/v3/maintenance/status", {})["version"]
    rec.post("status", "/v3/maintenance/status", {})
    rec.post("put_new", "/v3/kv/put", {"key": b64(b"foo"), "value": b64(b"bar")})
    rec.post("put_prev_kv", "/v3/kv/put",
             {"key": b64(b"foo"), "value": b64(b"baz"), "prev_kv": True})
    lease = rec.post("lease_grant", "/v3/lease/grant", {"TTL": "60"})
    rec.post("put_with_lease", "/v3/kv/put",
             {"key": b64(b"leased"), "value": b64(b"v"), "lease": lease["ID"]})
    rec.post("range_single", "/v3/kv/range", {"key": b64(b"foo")})
    rec.post("range_missing", "/v3/kv/range", {"key": b64(b"nope")})
    for k in (b"p/a", b"p/b", b"p/c"):
        last = rec.post(None, "/v3/kv/put", {"key": b64(k), "value": b64(k.upper())})
    old_rev = int(last["header"]["revision"])
    prefix = {"key": b64(b"p/"), "range_end": b64(b"p0")}
    rec.post("range_prefix_limit", "/v3/kv/range", {**prefix, "limit": "2"})
    rec.post("range_count_only", "/v3/kv/range", {**prefix, "count_only": True})
    rec.post("range_keys_only", "/v3/kv/range", {**prefix, "keys_only": True})
    rec.post("range_sort_descend", "/v3/kv/range",
             {**prefix, "sort_order": "DESCEND", "sort_target": "KEY"})
    rec.post(None, "/v3/kv/put", {"key": b64(b"p/a"), "value": b64(b"changed")})
    rec.post("range_revision", "/v3/kv/range", {"key": b64(b"p/a"), "revision": str(old_rev)})
    rec.post("range_serializable", "/v3/kv/range", {"key": b64(b"foo"), "serializable": True})
    rec.post(None, "/v3/kv/put", {"key": b64(b"empty")})
    rec.post("range_empty_value", "/v3/kv/range", {"key": b64(b"empty")})
    rec.post("delete_single_prev_kv", "/v3/kv/deleterange",
             {"key": b64(b"empty"), "prev_kv": True})
    rec.post("delete_missing", "/v3/kv/deleterange", {"key": b64(b"nope")})
    rec.post("txn_success", "/v3/kv/txn", {
        "compare": [{"key": b64(b"foo"), "result": "EQUAL", "target": "VALUE",
                     "value": b64(b"baz")}],
        "success": [{"request_put": {"key": b64(b"t"), "value": b64(b"1")}},
                    {"request_range": {"key": b64(b"foo")}},
                    {"request_delete_range": {"key": b64(b"t2")}}]})
    rec.post("txn_failure", "/v3/kv/txn", {
        "compare": [{"key": b64(b"foo"), "result": "GREATER", "target": "MOD",
                     "mod_revision": "1000000"}],
        "failure": [{"request_range": {"key": b64(b"foo")}}]})
    rec.post("txn_nested", "/v3/kv/txn", {
        "success": [{"request_txn": {
            "compare": [{"key": b64(b"absent"), "result": "EQUAL", "target": "VERSION",
                         "version": "0"}],
            "success": [{"request_put": {"key": b64(b"n"), "value": b64(b"1")}}]}}]})
    rec.post("delete_prefix", "/v3/kv/deleterange", prefix)
    rec.post("lease_timetolive", "/v3/lease/timetolive", {"ID": lease["ID"], "keys": True})
    rec.post("lease_leases", "/v3/lease/leases", {})
    rec.post("lease_keepalive", "/v3/lease/keepalive", {"ID": lease["ID"]})
    rec.post("lease_revoke", "/v3/lease/revoke", {"ID": lease["ID"]})
    current = int(rec.post(None, "/v3/kv/put", {"key": b64(b"c"), "value": b64(b"1")})
                  ["header"]["revision"])
    rec.post("compaction", "/v3/kv/compaction", {"revision": str(current - 1),
                                                 "physical": True})
    rec.post("err_compacted", "/v3/kv/range", {"key": b64(b"foo"), "revision": "2"})
    rec.post("err_future_revision", "/v3/kv/range",
             {"key": b64(b"foo"), "revision": "100000"})
    rec.post("err_too_many_ops", "/v3/kv/txn", {"success": [
        {"request_put": {"key": b64(b"m%d" % i), "value": b64(b"v")}} for i in range(129)]})
    rec.post("err_duplicate_key", "/v3/kv/txn", {"success": [
        {"request_put": {"key": b64(b"d"), "value": b64(b"1")}},
        {"request_put": {"key": b64(b"d"), "value": b64(b"2")}}]})
    big = {"key": b64(b"big"), "value": b64(b"x" * (2 * 1024 * 1024))}
    rec.post("err_too_large", "/v3/kv/put", big)
    # Do not store the 2 MiB request itself in the golden file.
    record = json.loads((OUT / "err_too_large.json").read_text())
    record["request"] = {"key": b64(b"big"), "value": "<2 MiB of x>"}
    (OUT / "err_too_large.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    rec.post("err_bad_json", "/v3/kv/range", None, raw=b"{")
    rec.post("err_invalid_enum", "/v3/kv/range", {"key": b64(b"foo"), "sort_order": "SIDEWAYS"})
    rec.post("err_lease_not_found", "/v3/kv/put",
             {"key": b64(b"k"), "value": b64(b"v"), "lease": "12345"})
    rec.post("err_empty_key", "/v3/kv/put", {"value": b64(b"v")})
    rec.post("err_compact_future", "/v3/kv/compaction", {"revision": "1000000"})
    rec.post("err_unknown_path", "/v3/kv/nosuch", {})
    rec.post("v3beta_status", "/v3beta/maintenance/status", {})
    rec.post("v3alpha_status", "/v3alpha/maintenance/status", {})


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with EtcdCluster(1) as etcd:
        capture(Recorder(etcd.url))
    print(f"wrote {len(list(OUT.glob('*.json')))} golden files to {OUT}")


if __name__ == "__main__":
    main()
