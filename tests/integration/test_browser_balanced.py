"""The notes page in headless Chromium, loaded through HAProxy in front of three Crossbar
nodes (3-member etcd): kill -9 the node holding its WAMP session; the page reconnects
through the balancer to another node and its table equals etcd's, with the writes made
while it was away and after it came back, without a console error."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from balanced_helpers import all_registered, balanced_fixture  # noqa: F401 (a fixture)
from livemap_helpers import (
    etcd_client_fixture,  # noqa: F401 (a fixture)
    etcd_table,
    node_of_session,
    note,
    restarted,
    seed,
    write_while_away,
)
from test_browser import (  # Chromium and its pages, as test_browser has them
    browser_fixture,  # noqa: F401 (a fixture)
    open_page_fixture,  # noqa: F401 (a fixture)
)

from etcdwamp import Client
from etcdwamp.testing import BalancedNodes

pytestmark = pytest.mark.integration
ensure = pytest_twisted.ensureDeferred

#: the page's copy as etcd_table gives etcd's: key -> [value, revision]
PAGE_TABLE = ("() => Object.fromEntries("
              "[...window.notes.rows].map(([k, r]) => [k, [r.value, r.revision]]))")


def as_page(table: dict[str, tuple[Any, int]]) -> dict[str, list[Any]]:
    return {key: [value, revision] for key, (value, revision) in table.items()}


@ensure
async def test_page_through_the_balancer_stays_exact_across_the_kill_of_its_node(
        balanced: BalancedNodes, etcd_client: Client, prefix: bytes, open_page: Any) -> None:
    """kill -9 of the page's node: the page says it is disconnected and keeps its rows,
    reconnects through HAProxy to another node, reads once more and equals etcd with the
    outage's writes; writes made after that reach it as events (no more reads) and it
    still equals etcd. (The last part needs every node to publish to its subscribers.)"""
    name = prefix.decode()
    await all_registered(balanced)
    await seed(etcd_client, name)
    page = await open_page(balanced.http_url)
    assert await page.evaluate(PAGE_TABLE) == as_page(await etcd_table(etcd_client))
    first = await page.evaluate("window.wamp.session.id")
    index = await node_of_session(balanced, first)
    try:
        balanced.kill(index)
        await page.wait_for("document.getElementById('connection').dataset.state"
                            " === 'disconnected'")
        assert await page.evaluate("window.notes.state") != "live"
        last = await write_while_away(etcd_client, name)
        # The rows stay on screen while away.
        assert await page.evaluate("n => window.notes.rows.get(n + 'changed').value",
                                   name) == "before"
        await page.wait_for("([id, rev]) => window.wamp.session.id !== id"
                            " && window.notes.state === 'live' && window.notes.revision >= rev",
                            [first, last])
        assert await page.evaluate("document.body.dataset.ready") == "true"
        assert await node_of_session(
            balanced, await page.evaluate("window.wamp.session.id")) != index
        assert await page.evaluate(PAGE_TABLE) == as_page(await etcd_table(etcd_client))
        assert "added while away" in await page.row_text(name + "added")
        reads = await page.evaluate("window.etcdLiveMapDebug.snapshots['etcd.map.notes']")
        assert reads == 2

        # Back and following: events from the new node.
        await etcd_client.put(note(name + "later"), b'"after the reconnect"')
        gone = await etcd_client.delete(note(name + "kept"))
        await page.wait_for("rev => window.notes.revision >= rev", gone.revision)
        await page.wait_for_row(name + "kept", state="detached")
        assert await page.evaluate(PAGE_TABLE) == as_page(await etcd_table(etcd_client))
        assert await page.evaluate(
            "window.etcdLiveMapDebug.snapshots['etcd.map.notes']") == reads
        assert page.console_errors == []
    finally:
        await restarted(balanced, index)
