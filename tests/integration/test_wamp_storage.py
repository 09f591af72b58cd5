"""etcd's storage bounds seen through the component: ``etcd.status`` reports the
alarm etcd raises when its backend outgrows ``--quota-backend-bytes`` (real etcd
with a tiny quota, real Crossbar)."""

from __future__ import annotations

from collections.abc import Callable

import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from test_wamp_faults import extra, running
from twisted.internet import reactor
from wamp_helpers import (
    CONFIG,
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
)

from etcdwamp import Client, KeySet, errors
from etcdwamp.testing import CrossbarNode, EtcdCluster

ensure = pytest_twisted.ensureDeferred


@ensure
async def test_status_reports_the_nospace_alarm_while_it_is_raised(
        etcd_factory: Callable[..., EtcdCluster], component_loop: str) -> None:
    """``etcd.status`` says ``"alarms": []`` while etcd has room, ``["NOSPACE"]`` once
    puts filled its 256 KiB quota (a write through the component fails then too), and
    ``[]`` again after the operator's recovery: compact, defragment, disarm."""
    etcd = etcd_factory(1, quota_backend_bytes=256 * 1024)
    client = Client(reactor, url=etcd.url, timeout=30.0)
    with running(CrossbarNode(str(CONFIG), etcd.urls, component_loop=component_loop,
                              extra_overrides=extra("storage1"))) as node:
        s = await connect(node)
        try:
            assert (await s.call("etcd.status"))["alarms"] == []
            for i in range(1000):
                try:
                    await client.put(b"fill/%d" % i, b"x" * 8192)
                except errors.NoSpace:
                    break
            else:
                raise AssertionError("etcd never ran out of space")
            status = await s.call("etcd.status")
            assert status["alarms"] == ["NOSPACE"]
            tracebacks = node.log_tail(100_000).count("Traceback")
            for _ in range(20):
                try:
                    await s.call("etcd.map.put", "notes", "k", 1)
                    raise AssertionError("a put succeeded under NOSPACE")
                except ApplicationError as exc:
                    # Its own URI, a message without etcd's wording, no traceback logged.
                    assert exc.error == "etcd.error.no_space", exc
                    assert "etcdserver" not in exc.args[0]
            assert node.log_tail(100_000).count("Traceback") == tracebacks
            assert node.log_tail(100_000).count("etcd raised NOSPACE") == 1  # once a minute

            deleted = await client.delete(KeySet(b"fill/", prefix=True))
            await client.compact(deleted.revision, physical=True)
            await client.defragment(endpoint=etcd.url)
            await client.alarm_disarm()
            assert (await s.call("etcd.status"))["alarms"] == []
            await s.call("etcd.map.put", "notes", "k", 1)
        finally:
            await disconnect(s)
            await client.close()
