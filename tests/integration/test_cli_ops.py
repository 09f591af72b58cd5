"""The operator commands of :mod:`etcdwamp.cli_ops` run against real etcd,
output checked against etcdctl's formats."""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from etcdwamp import errors as e
from etcdwamp.cli_ops import Command, add_commands
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster

ensure = pytest_twisted.ensureDeferred


def _parser() -> argparse.ArgumentParser:
    """A stand-in for the command line's parser: the same ``command`` contract."""
    p = argparse.ArgumentParser(prog="etcdwamp")
    p.add_argument("-w", "--write-out", default="simple",
                   choices=("simple", "json", "table"))
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, run: Command, help_text: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help_text)
        s.set_defaults(run=run)
        return s

    add_commands(command, lambda _: None)
    return p


async def run(client: Client, *argv: str) -> int:
    args = _parser().parse_args(argv)
    status: int = await args.run(client, args)
    return status


@ensure
async def test_member_and_endpoint_commands(etcd_factory: Callable[..., EtcdCluster],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cluster = etcd_factory(1)
    m0 = cluster.members[0]
    client = Client(reactor, url=cluster.url, timeout=10.0)
    try:
        assert await run(client, "member", "list") == 0
        line = capsys.readouterr().out.strip()
        ident = re.fullmatch(r"([0-9a-f]+), started, m0, (\S+), (\S+), false", line)
        assert ident is not None and ident.group(2) == m0.peer_url
        assert ident.group(3) == m0.url
        assert await run(client, "-w", "table", "member", "list") == 0
        table = capsys.readouterr().out.splitlines()
        assert re.fullmatch(r"\|\s+ID\s+\|\s+STATUS\s+\|\s+NAME\s+\|.*IS LEARNER \|", table[1])
        assert f"| {ident.group(1)} | started |" in table[3]
        assert await run(client, "-w", "json", "member", "list") == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed["members"][0]["ID"] == int(ident.group(1), 16)

        new = cluster.new_member("m1")
        assert await run(client, "member", "add", "m1", "--peer-urls", new.peer_url,
                         "--learner") == 0
        out = capsys.readouterr().out.splitlines()
        added = re.fullmatch(r"Member ([0-9a-f]+) added to cluster [0-9a-f]+", out[0])
        assert added is not None
        assert out[1] == "" and out[2] == 'ETCD_NAME="m1"'
        assert out[3] in (f'ETCD_INITIAL_CLUSTER="m0={m0.peer_url},m1={new.peer_url}"',
                          f'ETCD_INITIAL_CLUSTER="m1={new.peer_url},m0={m0.peer_url}"')
        assert out[4:] == [f'ETCD_INITIAL_ADVERTISE_PEER_URLS="{new.peer_url}"',
                           'ETCD_INITIAL_CLUSTER_STATE="existing"']
        assert await run(client, "member", "list") == 0
        assert ", unstarted, , " in capsys.readouterr().out
        assert await run(client, "member", "remove", added.group(1)) == 0
        assert capsys.readouterr().out.startswith(f"Member {added.group(1)} removed from")
        with pytest.raises(e.NotFound):
            await run(client, "member", "promote", added.group(1))

        assert await run(client, "endpoint", "status") == 0
        row = capsys.readouterr().out.strip().split(", ")
        assert row[0] == m0.url and row[1] == ident.group(1) and row[2].startswith("3.4.")
        assert re.fullmatch(r"\d+(\.\d)? kB", row[3]) and row[4:6] == ["true", "false"]
        assert await run(client, "endpoint", "health", "--cluster") == 0
        assert re.fullmatch(re.escape(m0.url) + r" is healthy: successfully committed "
                            r"proposal: took = [\d.]+ms\n", capsys.readouterr().out)
        assert await run(client, "endpoint", "hashkv") == 1
        assert "does not route HashKV" in capsys.readouterr().err
    finally:
        await client.close()


@ensure
async def test_alarm_defrag_and_snapshot_commands(etcd_factory: Callable[..., EtcdCluster],
                                                  capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    cluster = etcd_factory(1)
    client = Client(reactor, url=cluster.url, timeout=10.0)
    try:
        assert await run(client, "alarm", "list") == 0
        assert capsys.readouterr().out == ""
        assert await run(client, "defrag") == 0
        assert capsys.readouterr().out == f"Finished defragmenting etcd member[{cluster.url}]\n"
        target = tmp_path / "snap.db"
        assert await run(client, "snapshot", "save", str(target)) == 0
        assert capsys.readouterr().out == f"Snapshot saved at {target}\n"
        assert target.stat().st_size > 0
    finally:
        await client.close()
    two = Client(reactor, endpoints=[cluster.url, "http://127.0.0.1:1"])
    try:
        with pytest.raises(e.InvalidRequest, match="one selected node"):
            await run(two, "snapshot", "save", str(tmp_path / "x.db"))
    finally:
        await two.close()


@ensure
async def test_user_role_and_auth_commands(etcd_factory: Callable[..., EtcdCluster],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cluster = etcd_factory(1)
    client = Client(reactor, url=cluster.url, timeout=10.0)
    try:
        steps = [
            (("user", "add", "alice:pw"), "User alice created\n"),
            (("role", "add", "reader"), "Role reader created\n"),
            (("role", "grant-permission", "reader", "read", "app/", "--prefix"),
             "Role reader updated\n"),
            (("role", "grant-permission", "reader", "readwrite", "notes"),
             "Role reader updated\n"),
            (("user", "grant-role", "alice", "reader"),
             "Role reader is granted to user alice\n"),
            (("user", "get", "alice"), "User: alice\nRoles: reader\n"),
            (("user", "list"), "alice\n"),
            (("role", "list"), "reader\n"),
            (("role", "get", "reader"),
             "Role reader\nKV Read:\n\t[app/, app0) (prefix app/)\n\tnotes\n"
             "KV Write:\n\tnotes\n"),
            (("auth", "status"), "Authentication Status: false\nAuthRevision: 0\n"),
            (("role", "revoke-permission", "reader", "notes"),
             "Permission of key notes is revoked from role reader\n"),
            (("role", "revoke-permission", "reader", "app/", "--prefix"),
             "Permission of range [app/, app0) (prefix app/) is revoked from role reader\n"),
            (("user", "revoke-role", "alice", "reader"),
             "Role reader is revoked from user alice\n"),
            (("user", "passwd", "alice", "--new-password", "pw2"), "Password updated\n"),
            (("user", "delete", "alice"), "User alice deleted\n"),
            (("role", "delete", "reader"), "Role reader deleted\n"),
        ]
        for argv, expected in steps:
            assert await run(client, *argv) == 0, argv
            assert capsys.readouterr().out == expected, argv
        assert await run(client, "-w", "json", "user", "list") == 0
        assert json.loads(capsys.readouterr().out) == {"users": []}
        with pytest.raises(SystemExit):
            _parser().parse_args(["role", "grant-permission", "r", "execute", "k"])
        with pytest.raises(SystemExit):
            _parser().parse_args(["member", "remove", "not-hex"])
    finally:
        await client.close()


def test_no_argument_shadows_a_global_option_of_the_command_line() -> None:
    """``user add NAME`` once stored NAME where ``--user`` (who logs in) lives."""
    from etcdwamp.cli import build_parser

    globals_ = {a.dest for a in build_parser()._actions} - {"help", "command", "version"}

    def dests(parser: argparse.ArgumentParser) -> set[str]:
        found = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    found |= dests(child)
            elif action.default is not argparse.SUPPRESS:
                found.add(action.dest)
        return found

    mine = set()
    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                mine |= dests(child)
    assert "user" in globals_ and "user_name" in mine
    assert not (mine - {"help"}) & globals_


@ensure
async def test_move_leader_and_cluster_wide_commands(
        etcd_cluster3: EtcdCluster, capsys: pytest.CaptureFixture[str]) -> None:
    first = etcd_cluster3.urls[0]
    client = Client(reactor, endpoints=etcd_cluster3.urls, timeout=10.0)
    one = Client(reactor, url=first, timeout=10.0)
    try:
        assert await run(one, "-w", "json", "endpoint", "status", "--cluster") == 0
        rows = json.loads(capsys.readouterr().out)
        assert sorted(r["Endpoint"] for r in rows) == sorted(etcd_cluster3.urls)
        leader = rows[0]["Status"]["leader"]
        target = next(r["Status"]["header"]["member_id"] for r in rows
                      if r["Status"]["header"]["member_id"] != leader)
        assert await run(client, "move-leader", f"{target:x}") == 0
        assert capsys.readouterr().out == \
            f"Leadership transferred from {leader:x} to {target:x}\n"
        assert await run(one, "defrag", "--cluster") == 0
        assert sorted(capsys.readouterr().out.splitlines()) == sorted(
            f"Finished defragmenting etcd member[{u}]" for u in etcd_cluster3.urls)
    finally:
        await client.close()
        await one.close()


@ensure
async def test_snapshot_save_shows_progress_on_a_terminal(
        etcd: EtcdCluster, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    client = Client(reactor, url=etcd.url, timeout=10.0)
    try:
        assert await run(client, "snapshot", "save", str(tmp_path / "s.db")) == 0
    finally:
        await client.close()
    assert capsys.readouterr().out == f"Snapshot saved at {tmp_path / 's.db'}\n"
    shown = terminal.getvalue()
    assert shown.startswith("\rDownloading ") and shown.endswith("\n")
    # The shared etcd's size depends on the tests before: any SI unit.
    assert re.search(r"Downloading [\d.]+ [kMGT]?B of about [\d.]+ [kMGT]?B", shown)
