"""The notes page in headless Chromium, loaded through HAProxy in front of three Crossbar
nodes (3-member etcd): kill -9 the node holding its WAMP session; the page reconnects
through the balancer to another node and its table equals etcd's, with the writes made
while it was away and after it came back, without a console error. (Events after the
reconnect need every node to publish: the per-node publisher election.) And a rolling
restart of every node under writes through the balancer: the page ends exact."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from balanced_helpers import (
    Writer,
    all_registered,
    balanced_fixture,  # noqa: F401 (a fixture)
    publishing,
    running,
)
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
from twisted.internet.defer import Deferred, ensureDeferred
from waiting import until

from etcdwamp import Client
from etcdwamp.testing import BalancedNodes

pytestmark = pytest.mark.integration
ensure = pytest_twisted.ensureDeferred

#: the page's copy as etcd_table gives etcd's: key -> [value, revision]
PAGE_TABLE = ("() => Object.fromEntries("
              "[...window.notes.rows].map(([k, r]) => [k, [r.value, r.revision]]))")


def as_page(table: dict[str, tuple[Any, int]]) -> dict[str, list[Any]]:
    return {key: [value, revision] for key, (value, revision) in table.items()}


async def page_node(balanced: BalancedNodes, page: Any) -> int:
    """The index of the node holding the page's WAMP session."""
    return await node_of_session(balanced, await page.evaluate("window.wamp.session.id"))


async def kill_and_rejoin(balanced: BalancedNodes, client: Client, page: Any,
                          name: str, index: int) -> None:
    """Kill -9 node ``index`` (the page's), write while the page is away; returns once the
    page is live on a session of another node, having checked the page on the way:
    disconnected, rows kept, exact after one more read."""
    first = await page.evaluate("window.wamp.session.id")
    balanced.kill(index)
    await page.wait_for("document.getElementById('connection').dataset.state"
                        " === 'disconnected'")
    assert await page.evaluate("window.notes.state") != "live"
    last = await write_while_away(client, name)
    # The rows stay on screen while away.
    assert await page.evaluate("n => window.notes.rows.get(n + 'changed').value",
                               name) == "before"
    await page.wait_for("([id, rev]) => window.wamp.session.id !== id"
                        " && window.notes.state === 'live' && window.notes.revision >= rev",
                        [first, last])
    assert await page.evaluate("document.body.dataset.ready") == "true"
    assert await page_node(balanced, page) != index
    assert await page.evaluate(PAGE_TABLE) == as_page(await etcd_table(client))
    assert "added while away" in await page.row_text(name + "added")
    assert await page.evaluate("window.etcdLiveMapDebug.snapshots['etcd.map.notes']") == 2


async def opened(balanced: BalancedNodes, client: Client, name: str, open_page: Any) -> Any:
    """The notes page through the balancer, once it shows the seeded notes as etcd has them."""
    await all_registered(balanced)
    await seed(client, name)
    page = await open_page(balanced.http_url)
    assert await page.evaluate(PAGE_TABLE) == as_page(await etcd_table(client))
    return page


@ensure
async def test_page_through_the_balancer_is_exact_after_the_kill_of_its_node(
        balanced: BalancedNodes, etcd_client: Client, prefix: bytes, open_page: Any) -> None:
    """kill -9 of the page's node: the page says it is disconnected and keeps its rows,
    reconnects through HAProxy to another node, reads once more and equals etcd with the
    writes made while it was away, without a console error."""
    name = prefix.decode()
    page = await opened(balanced, etcd_client, name, open_page)
    index = await page_node(balanced, page)
    try:
        await kill_and_rejoin(balanced, etcd_client, page, name, index)
        assert page.console_errors == []
    finally:
        await restarted(balanced, index)


@ensure
async def test_page_through_the_balancer_follows_writes_on_its_new_node(
        balanced: BalancedNodes, etcd_client: Client, prefix: bytes, open_page: Any) -> None:
    """After the kill and the reconnect, a put and a delete reach the page as events on
    its new node (no more reads) and it equals etcd. Needs every node to publish to its
    own subscribers (per-node publisher election)."""
    name = prefix.decode()
    page = await opened(balanced, etcd_client, name, open_page)
    index = await page_node(balanced, page)
    try:
        await kill_and_rejoin(balanced, etcd_client, page, name, index)
        await etcd_client.put(note(name + "later"), b'"after the reconnect"')
        gone = await etcd_client.delete(note(name + "kept"))
        await page.wait_for("rev => window.notes.revision >= rev", gone.revision)
        await page.wait_for_row(name + "kept", state="detached")
        assert "after the reconnect" in await page.row_text(name + "later")
        assert await page.evaluate(PAGE_TABLE) == as_page(await etcd_table(etcd_client))
        assert await page.evaluate(
            "window.etcdLiveMapDebug.snapshots['etcd.map.notes']") == 2
        assert page.console_errors == []
    finally:
        await restarted(balanced, index)


@ensure
async def test_page_through_the_balancer_is_exact_after_a_rolling_restart_under_writes(
        balanced: BalancedNodes, etcd_client: Client, prefix: bytes, open_page: Any) -> None:
    """Each node in turn killed with SIGKILL, restarted, back UP in HAProxy and publishing,
    while a writer puts through the balancer (retrying as a client must, see
    :class:`balanced_helpers.Writer`): the page opened through HAProxy before the first
    kill ends on another session with exactly etcd's table (read directly), every
    acknowledged write in it, and no console error."""
    name = prefix.decode()
    page = await opened(balanced, etcd_client, name, open_page)
    first = await page.evaluate("window.wamp.session.id")
    writer = Writer(balanced, name)
    writing: Deferred[None] | None = ensureDeferred(writer.run())
    try:
        await until(lambda: len(writer.acknowledged) >= 10, timeout=30)
        for index in range(len(balanced.nodes)):
            balanced.kill(index)
            await restarted(balanced, index)
            await publishing(balanced.nodes[index])
            # Writes go on through the balancer after each restart.
            acked = len(writer.acknowledged)
            await until(lambda acked=acked: len(writer.acknowledged) >= acked + 10,
                        timeout=60, why=lambda: f"{writer.errors}\n{balanced.log_tail()}")
        writer.running = False
        await writing
        writing = None
        table = as_page(await etcd_table(etcd_client))

        shown: dict[str, list[Any]] = {}
        live: list[Any] = []

        async def exact() -> bool:
            shown.clear()
            shown.update(await page.evaluate(PAGE_TABLE))
            live[:] = await page.evaluate(
                "[window.notes.state, window.notes.revision, window.wamp.session.id,"
                " window.wamp.session.isOpen, document.getElementById('connection').textContent,"
                " document.getElementById('connection').dataset.state]")
            return shown == table

        def difference() -> str:
            wrong = [k for k in table if shown.get(k) != table[k]]
            extra = [k for k in shown if k not in table]
            return (f"{len(table)} rows in etcd, {len(shown)} on the page {live}; "
                    f"differing {len(wrong)}: {[(k, shown.get(k), table[k]) for k in wrong[:5]]}"
                    f", extra {extra[:5]}, console: {page.console_errors[:5]}\n"
                    f"{balanced.server_states()}\n{balanced.balancer.command('show sess all')}")

        await until(exact, timeout=60, why=difference)
        snapshots = await page.evaluate("window.etcdLiveMapDebug.snapshots['etcd.map.notes']")
        print(f"\nrolling restart under the page: {len(writer.acknowledged)} writes "
              f"acknowledged, {writer.failed_calls} calls failed (read back), "
              f"{snapshots} snapshots read by the page, {len(table)} rows in etcd")
        stored = {key: table.get(key, [None])[0] for key in writer.acknowledged}
        assert stored == writer.acknowledged  # no acknowledged write lost
        assert await page.evaluate("window.wamp.session.id") != first
        assert await page.evaluate("window.notes.state") == "live"
        assert snapshots >= 2  # its node was among those restarted
        assert page.console_errors == []
    finally:
        writer.running = False
        if writing is not None:
            writing.addErrback(lambda _: None)
            await until(lambda: writing is not None and writing.called, timeout=90)
        for index in range(len(balanced.nodes)):
            if not running(balanced, index):
                await restarted(balanced, index)
