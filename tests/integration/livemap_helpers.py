"""Shared by the live map tests over the ``balanced`` fixture: the committed "notes" map as
etcd holds it, a client of the nodes' etcd, where a session is, and a killed node put back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from waiting import until
from wamp_helpers import connect, disconnect, until_registered

from etcdwamp import Client, KeySet
from etcdwamp.testing import BalancedNodes

#: the committed config's map "notes" (db_prefix "demo/maps/", slot 1) in etcd
NOTES = b"demo/maps/\x00\x01"


@pytest_twisted.async_yield_fixture(name="etcd_client")
async def etcd_client_fixture(balanced: BalancedNodes) -> AsyncIterator[Client]:
    """A client of the nodes' etcd cluster, for reading and writing it directly."""
    c = Client(reactor, endpoints=balanced.etcd_urls, timeout=10.0)
    try:
        yield c
    finally:
        await c.close()


def note(key: str) -> bytes:
    """The etcd key of note ``key``."""
    return NOTES + key.encode()


async def seed(client: Client, name: str) -> None:
    """Notes ``<name>kept``, ``<name>changed`` and ``<name>deleted``."""
    await client.put(note(name + "kept"), b'"kept"')
    await client.put(note(name + "changed"), b'"before"')
    await client.put(note(name + "deleted"), b'"doomed"')


async def write_while_away(client: Client, name: str) -> int:
    """Change ``<name>changed``, delete ``<name>deleted``, add ``<name>added``; the
    revision of the last write."""
    await client.put(note(name + "changed"), b'"after"')
    await client.delete(note(name + "deleted"))
    return (await client.put(note(name + "added"), b'"added while away"')).revision


async def etcd_table(client: Client) -> dict[str, tuple[Any, int]]:
    """Every note in etcd as a live map keeps it: key -> (value, revision)."""
    result = await client.get(KeySet(NOTES, prefix=True))
    return {kv.key[len(NOTES):].decode(): (json.loads(kv.value), kv.mod_revision)
            for kv in result.kvs}


async def node_of_session(balanced: BalancedNodes, session_id: int) -> int:
    """The index of the running node whose router holds session ``session_id`` (asked
    of each node's session meta API over its own backend path).

    :raises AssertionError: no running node, or several, hold it
    """
    found = []
    for index, node in enumerate(balanced.nodes):
        if node.process is None or node.process.poll() is not None:
            continue
        meta = await connect(node, backend=True)
        try:
            await meta.call("wamp.session.get", session_id)
            found.append(index)
        except ApplicationError as exc:
            assert exc.error == "wamp.error.no_such_session", exc
        finally:
            await disconnect(meta)
    assert len(found) == 1, found
    return found[0]


async def restarted(balanced: BalancedNodes, index: int) -> None:
    """Start killed node ``index`` again; returns once HAProxy has it UP."""
    # In a thread: the reactor keeps serving while the node boots.
    await deferToThread(balanced.restart, index)
    await until_registered(balanced.nodes[index], balanced.nodes[index].instances)
    states = balanced.server_states
    name = balanced.server_name(index)
    await until(lambda: states()[name].status == "UP", timeout=30, why=lambda: str(states()))
