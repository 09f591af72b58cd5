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


def capture_ops(rec: Recorder) -> None:
    """Cluster, Maintenance and auth administration (files ``ops_*``)."""
    rec.version = rec.post(None, "/v3/maintenance/status", {})["version"]
    rec.post("ops_member_list", "/v3/cluster/member/list", {})
    added = rec.post("ops_member_add_learner", "/v3/cluster/member/add",
                     {"peerURLs": ["http://127.0.0.1:1"], "isLearner": True})
    new_id = added["member"]["ID"]
    rec.post("ops_member_update", "/v3/cluster/member/update",
             {"ID": new_id, "peerURLs": ["http://127.0.0.1:2"]})
    rec.post("ops_err_member_promote_not_ready", "/v3/cluster/member/promote", {"ID": new_id})
    rec.post("ops_member_remove", "/v3/cluster/member/remove", {"ID": new_id})
    rec.post("ops_err_member_remove_missing", "/v3/cluster/member/remove", {"ID": new_id})
    rec.post("ops_alarm_list_empty", "/v3/maintenance/alarm", {"action": "GET"})
    rec.post("ops_defragment", "/v3/maintenance/defragment", {})
    rec.post("ops_hash", "/v3/maintenance/hash", {})
    rec.post("ops_err_hashkv_not_routed", "/v3/maintenance/hashkv", {"revision": "0"})
    rec.post("ops_err_move_leader_bad_target", "/v3/maintenance/transfer-leadership",
             {"targetID": "1"})
    lease = rec.post(None, "/v3/lease/grant", {"TTL": "60"})
    rec.post("ops_lease_leases", "/v3/lease/leases", {})
    rec.post(None, "/v3/lease/revoke", {"ID": lease["ID"]})
    rec.post("ops_err_auth_status_not_routed", "/v3/auth/status", {})
    rec.post("ops_err_auth_probe_disabled", "/v3/auth/authenticate",
             {"name": "etcdwamp-auth-probe", "password": "x"})
    rec.post("ops_user_add", "/v3/auth/user/add", {"name": "root", "password": "rootpw"})
    rec.post(None, "/v3/auth/user/add", {"name": "alice", "password": "a"})
    rec.post(None, "/v3/auth/role/add", {"name": "root"})
    rec.post(None, "/v3/auth/role/add", {"name": "reader"})
    rec.post(None, "/v3/auth/user/grant", {"user": "root", "role": "root"})
    rec.post(None, "/v3/auth/user/grant", {"user": "alice", "role": "reader"})
    rec.post(None, "/v3/auth/role/grant", {"name": "reader", "perm": {
        "key": b64(b"app/"), "range_end": b64(b"app0"), "permType": "READ"}})
    rec.post(None, "/v3/auth/role/grant", {"name": "reader", "perm": {
        "key": b64(b"one"), "permType": "READWRITE"}})
    rec.post("ops_user_get", "/v3/auth/user/get", {"name": "alice"})
    rec.post("ops_user_list", "/v3/auth/user/list", {})
    rec.post("ops_role_get", "/v3/auth/role/get", {"role": "reader"})
    rec.post("ops_role_list", "/v3/auth/role/list", {})
    rec.post("ops_err_user_get_missing", "/v3/auth/user/get", {"name": "nobody"})
    rec.post("ops_user_changepw", "/v3/auth/user/changepw", {"name": "alice", "password": "b"})
    rec.post("ops_role_revoke", "/v3/auth/role/revoke",
             {"role": "reader", "key": b64(b"one")})
    rec.post("ops_user_revoke", "/v3/auth/user/revoke", {"name": "alice", "role": "reader"})
    rec.post("ops_user_delete", "/v3/auth/user/delete", {"name": "alice"})
    rec.post("ops_role_delete", "/v3/auth/role/delete", {"role": "reader"})
    rec.post(None, "/v3/auth/enable", {})
    rec.post("ops_err_auth_probe_enabled", "/v3/auth/authenticate",
             {"name": "etcdwamp-auth-probe", "password": "x"})


def capture_nospace(rec: Recorder) -> None:
    """A member with a tiny quota, filled until etcd raises the NOSPACE alarm."""
    rec.version = rec.post(None, "/v3/maintenance/status", {})["version"]
    for i in range(1000):
        answer = rec.post(None, "/v3/kv/put", {"key": b64(b"fill/%d" % i),
                                               "value": b64(b"x" * 8192)})
        if "error" in answer or "code" in answer:
            break
    else:
        raise RuntimeError("the quota was never exceeded")
    rec.post("ops_err_nospace_put", "/v3/kv/put", {"key": b64(b"k"), "value": b64(b"v")})
    alarms = rec.post("ops_alarm_list_nospace", "/v3/maintenance/alarm", {"action": "GET"})
    alarm = alarms["alarms"][0]
    rec.post("ops_alarm_disarm", "/v3/maintenance/alarm",
             {"action": "DEACTIVATE", "memberID": alarm["memberID"], "alarm": "NOSPACE"})


def capture_snapshot(rec: Recorder) -> None:
    """The raw snapshot stream of a fresh member (a few dozen KiB, one or two frames)."""
    request = urllib.request.Request(rec.url + "/v3/maintenance/snapshot", data=b"{}",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        content = resp.read().decode("ascii")
    record = {"path": "/v3/maintenance/snapshot", "request": {}, "status": 200,
              "stream": content, "etcd": rec.post(None, "/v3/maintenance/status", {})["version"]}
    (OUT / "ops_snapshot_stream.json").write_text(json.dumps(record, indent=2, sort_keys=True)
                                                  + "\n")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with EtcdCluster(1) as etcd:
        capture(Recorder(etcd.url))
    with EtcdCluster(1) as etcd:
        capture_snapshot(Recorder(etcd.url))
        capture_ops(Recorder(etcd.url))  # ends with auth enabled
    with EtcdCluster(1, extra_args=["--quota-backend-bytes", str(256 * 1024)]) as etcd:
        capture_nospace(Recorder(etcd.url))
    print(f"wrote {len(list(OUT.glob('*.json')))} golden files to {OUT}")


if __name__ == "__main__":
    main()
