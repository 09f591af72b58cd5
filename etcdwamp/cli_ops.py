"""The operator commands of the ``etcdwamp`` command line, named and printed as etcdctl's.

``member list|add|remove|update|promote``, ``endpoint status|health|hashkv``,
``alarm list|disarm``, ``defrag``, ``snapshot save``, ``move-leader``,
``user ...``, ``role ...`` and ``auth enable|disable|status``. Output follows
etcdctl 3.4 (``-w simple``, ``-w table``, ``-w json``) closely enough that an
operator recognises it; ids are printed in hex as etcdctl does and accepted in hex,
and endpoints as they were typed (``127.0.0.1:2379`` stays so; calls go to its URL).

:func:`add_commands` registers them on the command line's parser; each command
is a coroutine ``run(client, args) -> exit status``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import errors
from .cli_endpoints import endpoint_texts
from .wire import (
    KeySet,
    StatusResult,
    prefix_range_end,
    range_request,
    status_request,
)
from .wire.auth import Permission, RoleInfo
from .wire.cluster import Member

if TYPE_CHECKING:  # the commands get a Client; importing it here costs every command's start-up
    from twisted.internet.defer import Deferred

    from .client import Client

__all__ = ["Command", "add_commands", "human_bytes"]

Command = Callable[["Client", argparse.Namespace], Awaitable[int]]
#: the command line's ``command(name, run, help)``: a subparser wired to ``run``
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]

_ALL = b"\x00"


# -- output helpers ------------------------------------------------------------------

def _hex(n: int) -> str:
    return f"{n:x}"


def _member_id(text: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hex member id: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a member id: {text!r}")
    return value


def _urls(text: str) -> list[str]:
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise argparse.ArgumentTypeError("give at least one URL")
    return urls


def human_bytes(n: int) -> str:
    """``n`` bytes as etcdctl prints a size (go-humanize's SI ``Bytes``): ``9 B``,
    ``999 B``, ``1.0 kB``, ``25 kB`` (24,576 bytes), ``1.2 MB``: rounded to a tenth,
    then shown with one decimal below 10 and none from 10 on."""
    if n < 10:
        return f"{n} B"
    exponent = 0
    while exponent < 6 and n >= 1000 ** (exponent + 1):
        exponent += 1
    value = math.floor(n / 1000 ** exponent * 10 + 0.5) / 10
    unit = ("B", "kB", "MB", "GB", "TB", "PB", "EB")[exponent]
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table drawn as etcdctl draws it (tablewriter, centred header)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    head = "|" + "|".join(f" {h.center(w)} " for h, w in zip(header, widths, strict=True)) + "|"
    lines = [rule, head, rule]
    lines += ["|" + "|".join(f" {c.ljust(w)} " for c, w in zip(r, widths, strict=True)) + "|"
              for r in rows]
    lines.append(rule)
    return "\n".join(lines)


def _write(args: argparse.Namespace, header: Sequence[str], rows: Sequence[Sequence[str]],
           as_json: Any) -> None:
    fmt = getattr(args, "write_out", "simple")
    if fmt == "json":
        print(json.dumps(as_json))
    elif fmt == "table":
        print(_table(header, rows))
    else:
        for row in rows:
            print(", ".join(row))


def _header_json(header: Any) -> dict[str, int]:
    return {"cluster_id": header.cluster_id, "member_id": header.member_id,
            "revision": header.revision, "raft_term": header.raft_term}


def _member_json(m: Member) -> dict[str, Any]:
    out: dict[str, Any] = {"ID": m.id, "name": m.name, "peerURLs": list(m.peer_urls),
                           "clientURLs": list(m.client_urls)}
    if m.is_learner:
        out["isLearner"] = True
    return out


def _targets(client: Client, args: argparse.Namespace) -> Awaitable[list[tuple[str, str]]]:
    """The endpoints a per-member command runs on, each as (URL to call, text to
    print): given, printed as the user typed them (as etcdctl echoes them), or
    with ``--cluster`` every member's client URLs."""
    async def find() -> list[tuple[str, str]]:
        if getattr(args, "cluster", False):
            listed = await client.member_list()
            return [(url, url) for url in dict.fromkeys(listed.client_urls())]
        typed: dict[str, str] = {}
        # (A parser with these commands but not the global options, as in
        # tests, has no --endpoints: then each endpoint is printed as its URL.)
        if hasattr(args, "endpoints"):
            typed = endpoint_texts(args.endpoints,
                                   tls=args.cacert is not None or args.cert is not None)
        return [(url, typed.get(url, url)) for url in client.endpoints]
    return find()


# -- member --------------------------------------------------------------------------

async def cmd_member_list(client: Client, args: argparse.Namespace) -> int:
    result = await client.member_list()
    rows = [[_hex(m.id), "started" if m.started else "unstarted", m.name,
             ",".join(m.peer_urls), ",".join(m.client_urls), str(m.is_learner).lower()]
            for m in result.members]
    _write(args, ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"], rows,
           {"header": _header_json(result.header),
            "members": [_member_json(m) for m in result.members]})
    return 0


async def cmd_member_add(client: Client, args: argparse.Namespace) -> int:
    result = await client.member_add(args.peer_urls, learner=args.learner)
    if args.write_out == "json":
        print(json.dumps({"header": _header_json(result.header),
                          "member": _member_json(result.member),
                          "members": [_member_json(m) for m in result.members]}))
        return 0
    print(f"Member {_hex(result.member.id)} added to cluster {_hex(result.header.cluster_id)}")
    print()
    print(f'ETCD_NAME="{args.name}"')
    print(f'ETCD_INITIAL_CLUSTER="{result.initial_cluster(args.name)}"')
    print(f'ETCD_INITIAL_ADVERTISE_PEER_URLS="{",".join(args.peer_urls)}"')
    print('ETCD_INITIAL_CLUSTER_STATE="existing"')
    return 0


def _member_change(verb: str, what: Callable[[Client, argparse.Namespace],
                                             Deferred[Any]]) -> Command:
    async def run(client: Client, args: argparse.Namespace) -> int:
        result = await what(client, args)
        if args.write_out == "json":
            print(json.dumps({"header": _header_json(result.header),
                              "members": [_member_json(m) for m in result.members]}))
        else:
            print(f"Member {_hex(args.member_id)} {verb} cluster "
                  f"{_hex(result.header.cluster_id)}")
        return 0
    return run


cmd_member_remove = _member_change("removed from",
                                   lambda o, a: o.member_remove(a.member_id))
cmd_member_update = _member_change("updated in",
                                   lambda o, a: o.member_update(a.member_id, a.peer_urls))
cmd_member_promote = _member_change("promoted in",
                                    lambda o, a: o.member_promote(a.member_id))


# -- endpoint ------------------------------------------------------------------------

def _status_row(endpoint: str, st: StatusResult) -> list[str]:
    return [endpoint, _hex(st.header.member_id), st.version, human_bytes(st.db_size),
            str(st.leader == st.header.member_id).lower(), str(st.is_learner).lower(),
            str(st.raft_term), str(st.raft_index), str(st.raft_applied_index),
            ", ".join(st.errors)]


async def cmd_endpoint_status(client: Client, args: argparse.Namespace) -> int:
    o = client
    rows, out, failed = [], [], 0
    for endpoint, shown in await _targets(client, args):
        try:
            st = await o.call_on(endpoint, status_request())
        except errors.EtcdError as exc:
            failed += 1
            print(f"Failed to get the status of endpoint {shown} ({exc})", file=sys.stderr)
            continue
        rows.append(_status_row(shown, st))
        out.append({"Endpoint": shown, "Status": {
            "header": _header_json(st.header), "version": st.version, "dbSize": st.db_size,
            "leader": st.leader, "raftIndex": st.raft_index, "raftTerm": st.raft_term,
            "raftAppliedIndex": st.raft_applied_index, "dbSizeInUse": st.db_size_in_use,
            "isLearner": st.is_learner, "errors": list(st.errors)}})
    _write(args, ["ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "IS LEARNER",
                  "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX", "ERRORS"], rows, out)
    return 1 if failed else 0


async def cmd_endpoint_health(client: Client, args: argparse.Namespace) -> int:
    o = client
    rows, out, failed = [], [], 0
    for endpoint, shown in await _targets(client, args):
        started = time.monotonic()
        # etcdctl's check: a linearizable read commits through raft; being
        # refused by auth still proves the member is up and has a leader
        try:
            await o.call_on(endpoint, range_request(b"health"))
            error = ""
        except errors.PermissionDenied:
            error = ""
        except errors.EtcdError as exc:
            error = str(exc)
        took = time.monotonic() - started
        healthy = not error
        failed += not healthy
        took_text = f"{took * 1000:.6f}ms"
        if healthy:
            line = f"{shown} is healthy: successfully committed proposal: took = {took_text}"
            print(line, file=sys.stdout if args.write_out == "simple" else sys.stderr)
        else:
            print(f"{shown} is unhealthy: failed to commit proposal: {error}",
                  file=sys.stderr)
        rows.append([shown, str(healthy).lower(), took_text, error])
        out.append({"endpoint": shown, "health": healthy, "took": took_text,
                    "error": error})
    if args.write_out != "simple":
        _write(args, ["ENDPOINT", "HEALTH", "TOOK", "ERROR"], rows, out)
    return 1 if failed else 0


async def cmd_endpoint_hashkv(client: Client, args: argparse.Namespace) -> int:
    o = client
    rows, out, failed = [], [], 0
    for endpoint, shown in await _targets(client, args):
        try:
            result = await o.hash_kv(revision=args.rev, endpoint=endpoint)
        except errors.EtcdError as exc:
            failed += 1
            print(f"Failed to get the hash of endpoint {shown} ({exc})", file=sys.stderr)
            continue
        rows.append([shown, str(result.hash)])
        out.append({"Endpoint": shown, "HashKV": {
            "header": _header_json(result.header), "hash": result.hash,
            "compact_revision": result.compact_revision}})
    _write(args, ["ENDPOINT", "HASH"], rows, out)
    return 1 if failed else 0


# -- alarms, defrag, snapshot, move-leader ----------------------------------------------

async def _alarms(client: Client, args: argparse.Namespace, disarm: bool) -> int:
    o = client
    result = await (o.alarm_disarm() if disarm else o.alarm_list())
    if args.write_out == "json":
        print(json.dumps({"header": _header_json(result.header), "alarms": [
            {"memberID": a.member_id, "alarm": a.alarm.value} for a in result.alarms]}))
    else:
        for a in result.alarms:
            print(f"memberID:{a.member_id} alarm:{a.alarm.value}")
    return 0


async def cmd_alarm_list(client: Client, args: argparse.Namespace) -> int:
    return await _alarms(client, args, disarm=False)


async def cmd_alarm_disarm(client: Client, args: argparse.Namespace) -> int:
    return await _alarms(client, args, disarm=True)


async def cmd_defrag(client: Client, args: argparse.Namespace) -> int:
    o = client
    failed = 0
    for endpoint, shown in await _targets(client, args):
        try:
            await o.defragment(endpoint=endpoint)
        except errors.EtcdError as exc:
            failed += 1
            print(f"Failed to defragment etcd member[{shown}] ({exc})", file=sys.stderr)
            continue
        print(f"Finished defragmenting etcd member[{shown}]")
    return 1 if failed else 0


async def cmd_snapshot_save(client: Client, args: argparse.Namespace) -> int:
    if len(client.endpoints) != 1:
        raise errors.InvalidRequest(
            "snapshot must be requested to one selected node, not multiple "
            f"{list(client.endpoints)}")
    progress = None
    if sys.stderr.isatty():
        def progress(written: int, remaining: int) -> None:
            total = written + remaining
            sys.stderr.write(f"\rDownloading {human_bytes(written)} of about "
                             f"{human_bytes(total)}")
            sys.stderr.flush()
    info = await client.snapshot(args.file, progress=progress)
    if progress is not None:
        sys.stderr.write("\n")
    if args.write_out == "json":
        print(json.dumps({"path": args.file, "size": info.size,
                          "sha256": info.sha256.hex(), "endpoint": info.endpoint}))
    else:
        print(f"Snapshot saved at {args.file}")
    return 0


async def cmd_move_leader(client: Client, args: argparse.Namespace) -> int:
    o = client
    before = await o.statuses()
    leader = next((s.leader for s in before.values() if isinstance(s, StatusResult)), 0)
    await o.move_leader(args.member_id)
    print(f"Leadership transferred from {_hex(leader)} to {_hex(args.member_id)}")
    return 0


# -- auth ---------------------------------------------------------------------------------

def _password(args: argparse.Namespace, given: str | None, prompt: str) -> str:
    if given is not None:
        return given
    if getattr(args, "interactive", True) and sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Type password again for confirmation:") != first:
            raise errors.InvalidRequest("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


async def cmd_user_add(client: Client, args: argparse.Namespace) -> int:
    name, _, pw = args.user_name.partition(":")
    password = _password(args, args.new_user_password or (pw or None),
                         f"Password of {name}: ")
    await client.user_add(name, password)
    print(f"User {name} created")
    return 0


async def cmd_user_get(client: Client, args: argparse.Namespace) -> int:
    info = await client.user_get(args.user_name)
    if args.write_out == "json":
        print(json.dumps({"header": _header_json(info.header), "roles": list(info.roles)}))
        return 0
    print(f"User: {args.user_name}")
    print("Roles: " + " ".join(info.roles))
    return 0


async def cmd_user_list(client: Client, args: argparse.Namespace) -> int:
    users = await client.user_list()
    if args.write_out == "json":
        print(json.dumps({"users": list(users)}))
    else:
        for u in users:
            print(u)
    return 0


async def cmd_user_delete(client: Client, args: argparse.Namespace) -> int:
    await client.user_delete(args.user_name)
    print(f"User {args.user_name} deleted")
    return 0


async def cmd_user_passwd(client: Client, args: argparse.Namespace) -> int:
    password = _password(args, args.new_password, f"Password of {args.user_name}: ")
    await client.user_change_password(args.user_name, password)
    print("Password updated")
    return 0


async def cmd_user_grant_role(client: Client, args: argparse.Namespace) -> int:
    await client.user_grant_role(args.user_name, args.role)
    print(f"Role {args.role} is granted to user {args.user_name}")
    return 0


async def cmd_user_revoke_role(client: Client, args: argparse.Namespace) -> int:
    await client.user_revoke_role(args.user_name, args.role)
    print(f"Role {args.role} is revoked from user {args.user_name}")
    return 0


async def cmd_role_add(client: Client, args: argparse.Namespace) -> int:
    await client.role_add(args.role)
    print(f"Role {args.role} created")
    return 0


def _range_text(key: bytes, end: bytes) -> str:
    k = key.decode("utf-8", "replace")
    if not end:
        return k
    if end == _ALL:
        return f"[{k}, <open ended>"
    e = end.decode("utf-8", "replace")
    if end == prefix_range_end(key):
        return f"[{k}, {e}) (prefix {k})"
    return f"[{k}, {e})"


def _print_role(role: str, info: RoleInfo) -> None:
    print(f"Role {role}")
    readable = [p for p in info.permissions if p.permission is not Permission.WRITE]
    writable = [p for p in info.permissions if p.permission is not Permission.READ]
    print("KV Read:")
    for p in readable:
        print("\t" + _range_text(p.key, p.range_end))
    print("KV Write:")
    for p in writable:
        print("\t" + _range_text(p.key, p.range_end))


async def cmd_role_get(client: Client, args: argparse.Namespace) -> int:
    info = await client.role_get(args.role)
    if args.write_out == "json":
        print(json.dumps({"header": _header_json(info.header), "perm": [
            {"permType": p.permission.value, "key": p.key.decode("utf-8", "replace"),
             "range_end": p.range_end.decode("utf-8", "replace")}
            for p in info.permissions]}))
    else:
        _print_role(args.role, info)
    return 0


async def cmd_role_list(client: Client, args: argparse.Namespace) -> int:
    roles = await client.role_list()
    if args.write_out == "json":
        print(json.dumps({"roles": list(roles)}))
    else:
        for r in roles:
            print(r)
    return 0


async def cmd_role_delete(client: Client, args: argparse.Namespace) -> int:
    await client.role_delete(args.role)
    print(f"Role {args.role} deleted")
    return 0


def _keyset(args: argparse.Namespace) -> KeySet:
    key = args.key.encode("utf-8")
    if args.prefix:
        if args.end is not None:
            raise errors.InvalidRequest("--prefix and a range end go together badly: give one")
        return KeySet(key, prefix=True)
    if args.from_key:
        return KeySet(key, range_end=_ALL)
    if args.end is not None:
        return KeySet(key, range_end=args.end.encode("utf-8"))
    return KeySet(key)


async def cmd_role_grant_permission(client: Client, args: argparse.Namespace) -> int:
    await client.role_grant_permission(args.role, _keyset(args), args.permission)
    print(f"Role {args.role} updated")
    return 0


async def cmd_role_revoke_permission(client: Client, args: argparse.Namespace) -> int:
    keys = _keyset(args)
    await client.role_revoke_permission(args.role, keys)
    key, end = keys.resolve()
    if end is None:
        print(f"Permission of key {args.key} is revoked from role {args.role}")
    else:
        print(f"Permission of range {_range_text(key, end)} is revoked from role {args.role}")
    return 0


async def cmd_auth_enable(client: Client, args: argparse.Namespace) -> int:
    await client.auth_enable()
    print("Authentication Enabled")
    return 0


async def cmd_auth_disable(client: Client, args: argparse.Namespace) -> int:
    await client.auth_disable()
    print("Authentication Disabled")
    return 0


async def cmd_auth_status(client: Client, args: argparse.Namespace) -> int:
    status = await client.auth_status()
    if args.write_out == "json":
        print(json.dumps({"enabled": status.enabled, "authRevision": status.auth_revision}))
    else:
        print(f"Authentication Status: {str(status.enabled).lower()}")
        print(f"AuthRevision: {status.auth_revision}")
    return 0


# -- the parser -----------------------------------------------------------------------------

def add_commands(command: AddCommand,
                 add_globals: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the operator commands.

    :param command: ``command(name, run, help)`` adds a top-level subcommand
        that runs ``run(client, args)`` (and has the global options)
    :param add_globals: gives a nested subcommand (``member list``) the global options
    """

    def group(name: str, help_text: str, dest: str) -> Callable[..., argparse.ArgumentParser]:
        parent = command(name, _missing, help_text)
        sub = parent.add_subparsers(dest=dest, required=True, metavar="SUBCOMMAND")

        def leaf(sub_name: str, run: Command, sub_help: str) -> argparse.ArgumentParser:
            p = sub.add_parser(sub_name, help=sub_help, description=sub_help)
            add_globals(p)
            p.set_defaults(run=run)
            return p
        return leaf

    member = group("member", "membership: list, add, remove, update, promote",
                   "member_command")
    member("list", cmd_member_list, "list the members")
    p = member("add", cmd_member_add, "announce a new member (then start it with the "
               "printed settings)")
    p.add_argument("name")
    p.add_argument("--peer-urls", type=_urls, required=True, help="comma-separated")
    p.add_argument("--learner", action="store_true", help="a non-voting member")
    p = member("remove", cmd_member_remove, "remove a member")
    p.add_argument("member_id", type=_member_id, metavar="ID")
    p = member("update", cmd_member_update, "change a member's peer URLs")
    p.add_argument("member_id", type=_member_id, metavar="ID")
    p.add_argument("--peer-urls", type=_urls, required=True)
    p = member("promote", cmd_member_promote, "make a learner a voting member")
    p.add_argument("member_id", type=_member_id, metavar="ID")

    endpoint = group("endpoint", "status, health and hash of each endpoint",
                     "endpoint_command")
    for name, run, text in (("status", cmd_endpoint_status, "status of each endpoint"),
                            ("health", cmd_endpoint_health, "health of each endpoint"),
                            ("hashkv", cmd_endpoint_hashkv, "KV hash of each endpoint")):
        p = endpoint(name, run, text)
        p.add_argument("--cluster", action="store_true",
                       help="every member's client URLs, from member list")
        if name == "hashkv":
            p.add_argument("--rev", type=int, default=0, help="hash up to this revision")

    alarm = group("alarm", "list or disarm alarms (NOSPACE, CORRUPT)", "alarm_command")
    alarm("list", cmd_alarm_list, "the raised alarms")
    alarm("disarm", cmd_alarm_disarm, "deactivate every raised alarm")

    p = command("defrag", cmd_defrag, "defragment each endpoint's backend")
    p.add_argument("--cluster", action="store_true", help="every member")

    snapshot = group("snapshot", "save a backup of the backend", "snapshot_command")
    p = snapshot("save", cmd_snapshot_save, "stream a member's backend into FILE")
    p.add_argument("file")

    p = command("move-leader", cmd_move_leader, "hand the leadership to member ID")
    p.add_argument("member_id", type=_member_id, metavar="ID")

    user = group("user", "user administration", "user_command")
    p = user("add", cmd_user_add, "add a user (password asked for unless given)")
    # not dest "user": that is the global --user (who logs in)
    p.add_argument("user_name", metavar="NAME[:PASSWORD]")
    p.add_argument("--new-user-password", default=None)
    p.add_argument("--interactive", type=lambda s: s.lower() != "false", default=True)
    for name, run, text in (("get", cmd_user_get, "a user's roles"),
                            ("delete", cmd_user_delete, "delete a user")):
        user(name, run, text).add_argument("user_name", metavar="NAME")
    user("list", cmd_user_list, "every user")
    p = user("passwd", cmd_user_passwd, "change a user's password")
    p.add_argument("user_name", metavar="NAME")
    p.add_argument("--new-password", default=None, help=argparse.SUPPRESS)
    p.add_argument("--interactive", type=lambda s: s.lower() != "false", default=True)
    for name, run, text in (("grant-role", cmd_user_grant_role, "give a user a role"),
                            ("revoke-role", cmd_user_revoke_role, "take a role away")):
        p = user(name, run, text)
        p.add_argument("user_name", metavar="NAME")
        p.add_argument("role", metavar="ROLE")

    role = group("role", "role administration", "role_command")
    for name, run, text in (("add", cmd_role_add, "add a role"),
                            ("get", cmd_role_get, "a role's permissions"),
                            ("delete", cmd_role_delete, "delete a role")):
        role(name, run, text).add_argument("role", metavar="NAME")
    role("list", cmd_role_list, "every role")
    for name, run, text in (
            ("grant-permission", cmd_role_grant_permission, "let a role read/write keys"),
            ("revoke-permission", cmd_role_revoke_permission, "take a permission back")):
        p = role(name, run, text)
        p.add_argument("role", metavar="NAME")
        if name == "grant-permission":
            p.add_argument("permission", type=str.upper,
                           choices=[x.value for x in Permission],
                           metavar="read|write|readwrite")
        p.add_argument("key")
        p.add_argument("end", nargs="?", default=None, metavar="RANGE_END")
        p.add_argument("--prefix", action="store_true", help="every key under KEY")
        p.add_argument("--from-key", action="store_true", help="every key from KEY on")

    auth = group("auth", "turn authentication on or off", "auth_command")
    auth("enable", cmd_auth_enable, "turn authentication on (needs user root)")
    auth("disable", cmd_auth_disable, "turn authentication off")
    auth("status", cmd_auth_status, "whether authentication is on")


async def _missing(client: Client, args: argparse.Namespace) -> int:
    # argparse requires the subcommand, so this only runs if a caller skipped it
    raise errors.InvalidRequest("give a subcommand")
