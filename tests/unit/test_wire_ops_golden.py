"""The Cluster, Maintenance and auth administration parsers against answers
captured from a real etcd 3.4 gateway (``scripts/capture_golden.py``, files ``ops_*``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from etcdwamp import errors as e
from etcdwamp.wire import (
    Alarm,
    AlarmMember,
    SnapshotDecoder,
    alarm_activate_request,
    alarm_disarm_request,
    error_from_response,
    member_add_request,
    member_promote_request,
    member_remove_request,
    member_update_request,
)
from etcdwamp.wire.auth import (
    Permission,
    RolePermission,
    parse_auth_probe_error,
    parse_names,
    parse_role_get,
    parse_user_get,
    role_delete_request,
    role_get_request,
    role_revoke_permission_request,
    user_add_request,
    user_change_password_request,
    user_delete_request,
    user_get_request,
    user_revoke_role_request,
)
from etcdwamp.wire.cluster import parse_member_add, parse_member_list
from etcdwamp.wire.leases import parse_lease_leases
from etcdwamp.wire.maintenance import (
    AlarmResult,
    DefragmentResult,
    HashResult,
    alarm_list_request,
    defragment_request,
    hash_request,
    parse_alarms,
)
from etcdwamp.wire.results import Header, parse_header

GOLDEN = Path(__file__).parent / "golden"


def load(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((GOLDEN / f"ops_{name}.json").read_text())
    assert record["etcd"].startswith("3.4."), record["etcd"]
    return record


def answer(name: str) -> dict[str, Any]:
    record = load(name)
    assert record["status"] == 200, record
    response: dict[str, Any] = record["response"]
    return response


def error(name: str) -> e.ServerError:
    record = load(name)
    assert record["status"] != 200, record
    return error_from_response(record["status"], json.dumps(record["response"]).encode())


def test_member_list_of_a_single_member() -> None:
    result = parse_member_list(answer("member_list"))
    (member,) = result.members
    assert member.id == result.header.member_id > 2**32  # uint64 ids stay exact
    assert member.name == "m0" and member.started and not member.is_learner
    assert member.peer_urls[0].startswith("http://127.0.0.1:")
    assert result.client_urls() == member.client_urls != ()


def test_member_add_of_a_learner_that_has_not_started() -> None:
    result = parse_member_add(answer("member_add_learner"))
    assert result.member.is_learner and not result.member.started
    assert result.member.peer_urls == ("http://127.0.0.1:1",)
    assert result.member.client_urls == ()
    assert len(result.members) == 2 and result.member in result.members
    # what the new member must be started with, as etcdctl prints it
    (old,) = (m for m in result.members if m.id != result.member.id)
    assert result.initial_cluster("m1") == (
        f"m0={old.peer_urls[0]},m1=http://127.0.0.1:1"
        if result.members[0] == old else f"m1=http://127.0.0.1:1,m0={old.peer_urls[0]}")


def test_member_update_answers_with_the_new_peer_urls() -> None:
    added = parse_member_add(answer("member_add_learner")).member
    result = parse_member_list(answer("member_update"))
    (updated,) = (m for m in result.members if m.id == added.id)
    assert updated.peer_urls == ("http://127.0.0.1:2",)
    # the learner flag is not in this answer: etcd 3.4 leaves it out of update's list
    assert load("member_update")["request"]["ID"] == str(added.id)


def test_member_remove_answers_with_the_rest() -> None:
    result = parse_member_list(answer("member_remove"))
    assert [m.name for m in result.members] == ["m0"]


def test_member_errors_are_typed() -> None:
    assert isinstance(error("err_member_promote_not_ready"), e.FailedPrecondition)
    assert "in sync with leader" in error("err_member_promote_not_ready").message
    assert isinstance(error("err_member_remove_missing"), e.NotFound)


def test_member_request_bodies_match_what_etcd_took() -> None:
    assert dict(member_add_request(["http://127.0.0.1:1"], learner=True).body) == \
        load("member_add_learner")["request"]
    member = int(load("member_update")["request"]["ID"])
    assert dict(member_update_request(member, ["http://127.0.0.1:2"]).body) == \
        load("member_update")["request"]
    assert dict(member_remove_request(member).body) == load("member_remove")["request"]
    assert dict(member_promote_request(member).body) == \
        load("err_member_promote_not_ready")["request"]


def test_alarm_list_without_alarms_has_no_header_either() -> None:
    result = alarm_list_request().parse(answer("alarm_list_empty"))
    assert result == AlarmResult(header=Header(0, 0, 0, 0), alarms=())


def test_nospace_alarm_and_the_write_it_refuses() -> None:
    result = parse_alarms(answer("alarm_list_nospace"))
    (alarm,) = result.alarms
    assert alarm.alarm is Alarm.NOSPACE and alarm.member_id > 0
    refused = error("err_nospace_put")
    assert isinstance(refused, e.ResourceExhausted)
    assert "database space exceeded" in refused.message
    disarmed = parse_alarms(answer("alarm_disarm"))
    assert disarmed.alarms == (AlarmMember(alarm.member_id, Alarm.NOSPACE),)
    assert dict(alarm_disarm_request(alarm.member_id, "nospace").body) == \
        load("alarm_disarm")["request"]


def test_defragment_and_hash() -> None:
    # etcd 3.4 answers a defragmentation with nothing, not even a header
    assert defragment_request().parse(answer("defragment")) == \
        DefragmentResult(header=Header(0, 0, 0, 0))
    raw = answer("hash")
    result = hash_request().parse(raw)
    assert result == HashResult(header=parse_header(raw), hash=raw["hash"])
    assert result.hash == 1439945728 and result.header.revision == int(raw["header"]["revision"])


def test_what_the_3_4_gateway_does_not_route() -> None:
    """HashKV and AuthStatus are 404s on 3.4: typed NotFound, which the client
    turns into Unimplemented / the auth probe."""
    assert isinstance(error("err_hashkv_not_routed"), e.NotFound)
    assert isinstance(error("err_auth_status_not_routed"), e.NotFound)
    assert error("err_hashkv_not_routed").http_status == 404


def test_move_leader_to_an_unknown_member_is_refused() -> None:
    err = error("err_move_leader_bad_target")
    assert isinstance(err, e.FailedPrecondition) and "bad leader transferee" in err.message


def test_lease_leases_lists_ids() -> None:
    result = parse_lease_leases(answer("lease_leases"))
    assert result.ids == (int(answer("lease_leases")["leases"][0]["ID"]),)
    assert result.ids[0] > 2**32
    assert parse_lease_leases(answer("alarm_list_empty")).ids == ()


def test_auth_probe_reads_the_status_from_the_error() -> None:
    assert parse_auth_probe_error(error("err_auth_probe_disabled")) is False
    assert parse_auth_probe_error(error("err_auth_probe_enabled")) is True
    assert parse_auth_probe_error(error("err_member_remove_missing")) is None


def test_user_and_role_answers() -> None:
    assert parse_user_get(answer("user_get")).roles == ("reader",)
    assert dict(user_get_request("alice").body) == load("user_get")["request"]
    assert dict(role_get_request("reader").body) == load("role_get")["request"]
    assert parse_names("users")(answer("user_list")) == ("alice", "root")
    assert parse_names("roles")(answer("role_list")) == ("reader", "root")
    role = parse_role_get(answer("role_get"))
    assert role.permissions == (
        # READ is etcd's zero value: the gateway leaves permType out
        RolePermission(Permission.READ, b"app/", b"app0"),
        RolePermission(Permission.READWRITE, b"one", b""),
    )
    assert isinstance(error("err_user_get_missing"), e.FailedPrecondition)
    for name, request in (("user_add", user_add_request("alice", "pw")),
                          ("user_changepw", user_change_password_request("alice", "pw")),
                          ("role_revoke", role_revoke_permission_request("reader", b"one")),
                          ("user_revoke", user_revoke_role_request("alice", "reader")),
                          ("user_delete", user_delete_request("alice")),
                          ("role_delete", role_delete_request("reader"))):
        assert request.path == load(name)["path"].removeprefix("/v3"), name
        header = request.parse(answer(name))
        assert header == Header(2069115635638795330, 9948347604669458564, 1, 2), name
    assert dict(role_revoke_permission_request("reader", b"one").body) == \
        load("role_revoke")["request"]


def snapshot_stream() -> bytes:
    return str(load("snapshot_stream")["stream"]).encode("ascii")


def test_snapshot_stream_ends_with_the_sha256_of_the_backend() -> None:
    chunks = SnapshotDecoder().feed(snapshot_stream())
    assert len(chunks) >= 2 and chunks[-1].remaining_bytes == 0
    data = b"".join(c.blob for c in chunks[:-1])
    assert hashlib.sha256(data).digest() == chunks[-1].blob
    # remaining_bytes counts the backend bytes after each frame (not the checksum)
    for i, chunk in enumerate(chunks[:-1]):
        assert chunk.remaining_bytes == sum(len(c.blob) for c in chunks[i + 1:-1])


@pytest.mark.parametrize("step", [1, 7, 1000, 4096])
def test_snapshot_decoder_survives_any_split(step: int) -> None:
    stream = snapshot_stream()
    decoder = SnapshotDecoder()
    chunks = []
    for i in range(0, len(stream), step):
        chunks.extend(decoder.feed(stream[i:i + step]))
    chunks.extend(decoder.close())
    assert chunks == SnapshotDecoder().feed(stream)


def test_snapshot_error_frame_raises_typed() -> None:
    frame = b'{"error":{"grpc_code":8,"http_code":429,"message":"etcdserver: x"}}\n'
    with pytest.raises(e.ResourceExhausted):
        SnapshotDecoder().feed(frame)
    with pytest.raises(e.ProtocolError):
        SnapshotDecoder().feed(b'{"result":{"blob":"***"}}\n')


def test_bad_input_is_refused_before_sending() -> None:
    with pytest.raises(TypeError):
        member_add_request("http://127.0.0.1:1")
    with pytest.raises(ValueError):
        member_add_request(["127.0.0.1:1"])
    with pytest.raises(ValueError):
        member_remove_request(0)
    with pytest.raises(ValueError):
        alarm_disarm_request(1, "NONE")
    with pytest.raises(ValueError):
        alarm_disarm_request(1, "SMOKE")
    for bad in ("NONE", "SMOKE"):
        with pytest.raises(ValueError):
            alarm_activate_request(1, bad)
    with pytest.raises(ValueError):
        alarm_activate_request(0, "NOSPACE")
