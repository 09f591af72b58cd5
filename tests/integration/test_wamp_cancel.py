"""A WAMP caller cancelling a progressive range stops the component's reading
within one page (real Crossbar, real etcd, a recording proxy between them), with
the component embedded in the router (Twisted) and outside it on asyncio."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
from autobahn.wamp.types import CallOptions
from proxies import RecordingProxy
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.threads import deferToThread
from waiting import until
from wamp_helpers import (
    CONFIG,
    component_loop_fixture,  # noqa: F401 (a fixture)
    connect,
    disconnect,
    loop_fixture,  # noqa: F401 (a fixture)
    registered,
)

from etcdwamp import Client
from etcdwamp.range_pages import READ_AHEAD
from etcdwamp.testing import CrossbarNode, EtcdCluster
from etcdwamp.wire import OpSet, Transaction

ensure = pytest_twisted.ensureDeferred

BASE = b"wcancel/\x00\x01"
PAGE = 5
PAGES = 200


def page_request(path: str, body: bytes) -> bool:
    """A read of the map's keys: the first page (to the map's end) or a later window
    (etcdwamp.range_pages: a window ends where it expects a page to end)."""
    if path != "/v3/kv/range" or b"count_only" in body:
        return False
    key = base64.b64decode(json.loads(body).get("key", ""))
    return key.startswith(BASE)


@pytest.fixture
def proxy(etcd: EtcdCluster) -> Iterator[RecordingProxy]:
    recording = RecordingProxy(etcd.url)
    try:
        yield recording
    finally:
        recording.stop()


@pytest_twisted.async_yield_fixture
async def node(proxy: RecordingProxy, component_loop: str) -> AsyncIterator[CrossbarNode]:
    # A request timeout far beyond the test's waits: the held page can only
    # end early because the call was cancelled.
    cb = CrossbarNode(str(CONFIG), [proxy.url], component_loop=component_loop,
                      extra_overrides={
                          "etcd": {"timeout": 120}, "db_prefix": "wcancel/",
                          "election": "wcancel-publisher", "maps": {"notes": {"slot": 1}},
                          "kv_prefixes": [], "presence": None, "range_page": PAGE})
    try:
        # In a thread: the component reaches etcd (its start-up check) through the
        # proxy, which this process's reactor runs, before it registers anything.
        await deferToThread(cb.start)
        yield await registered(cb)
    finally:
        cb.stop()


@ensure
async def test_cancelled_progressive_range_stops_within_one_page(
        node: CrossbarNode, proxy: RecordingProxy, client: Client) -> None:
    for start in range(0, PAGE * PAGES, 100):
        await client.txn(Transaction(success=[
            OpSet(BASE + b"%04d" % i, b"1") for i in range(start, start + 100)]))
    # The first page goes through; the second is held, as by a slow etcd.
    proxy.hold = lambda path, body: (page_request(path, body)
                                     and any(page_request(*r) for r in proxy.forwarded))
    s = await connect(node)
    try:
        pages: list[list[Any]] = []
        call: Deferred[Any] = s.call("etcd.map.notes.range",
                                     options=CallOptions(on_progress=pages.append))
        await until(lambda: pages and proxy.held, why="page one arrives, page two is held")
        assert [r["key"] for r in pages[0]] == [f"{i:04d}" for i in range(PAGE)]
        call.cancel()
        failure: list[Any] = []
        call.addErrback(failure.append)
        assert failure and failure[0].check(CancelledError)
        # The component aborts the pages in flight (the next one, and those it reads
        # ahead: etcdwamp.range_pages), long before their timeout. A read ahead may
        # still be on its way to the proxy when the call is cancelled: wait until no
        # connection holds a request any more, then count.
        await until(lambda: proxy.held and not any(c.holding for c in proxy.connections)
                    and proxy.dropped_while_held == len(proxy.held), timeout=20,
                    why=lambda: "the component did not abort the held pages "
                    f"({len(proxy.held)} held, {proxy.dropped_while_held} dropped)\n"
                    + node.log_tail(80))
        held = len(proxy.held)
        assert 1 <= held <= 1 + READ_AHEAD, f"{held} pages in flight"
        proxy.hold = lambda path, body: False
        # ...and asks for no further page: the next call through the same
        # component finds only those pages in the record.
        assert (await s.call("etcd.map.notes.count")) == PAGE * PAGES
        mine = [r for r in proxy.forwarded + proxy.held if page_request(*r)]
        assert len(mine) == 1 + held, f"{len(mine)} page requests for a cancelled range"
        assert len(pages) == 1
    finally:
        await disconnect(s)
