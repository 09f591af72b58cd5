"""The demo pages in real headless Chromium (Playwright), served by a real Crossbar, on a
real etcd: the live map module (crossbar/web/livemap.js) end to end."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from waiting import until
from wamp_helpers import publisher_keys

from etcdwamp import Client, KeySet
from etcdwamp.testing import CrossbarNode, EtcdCluster
from etcdwamp.wire import OpSet, Transaction

ensure = pytest_twisted.ensureDeferred
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "crossbar" / ".crossbar" / "config.json"
WEB = ROOT / "crossbar" / "web"
DB = b"browser/maps/"
NOTES = DB + b"\x00\x01"
ELECTION = b"browser/publisher"
OID_DB = b"browser-oid/maps/"
COUNTERS = OID_DB + b"\x00\x03"
WAIT_MS = 20_000
ON_CHANGE, ON_RESYNC = "etcd.map.notes.on_change", "etcd.map.notes.on_resync"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "headless Chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not (WEB / "node_modules" / "autobahn-browser" / "autobahn.min.js").exists():
        message = "autobahn-browser is not installed (scripts/setup runs npm install)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class BrowserThread:
    """Playwright's asyncio API on an event loop in a thread of its own.

    The tests run on the Twisted reactor (for the etcd client and ``until``);
    ``run`` hands a Playwright coroutine to the browser's loop and returns a
    Deferred, so the reactor keeps serving while the page is awaited.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="playwright",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> Deferred[T]:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        done: Deferred[T] = Deferred(lambda _: future.cancel())

        def settle(f: concurrent.futures.Future[T]) -> None:
            if done.called:  # cancelled already
                return
            try:
                result = f.result()
            except BaseException as exc:  # the test sees the browser-side failure as is
                done.errback(exc)
            else:
                done.callback(result)

        future.add_done_callback(lambda f: reactor.callFromThread(settle, f))
        return done

    def block(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """For fixtures, outside the reactor's turn."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[tuple[BrowserThread, Any]]:
    executable = chromium()
    from playwright.async_api import async_playwright

    bt = BrowserThread()

    async def launch() -> tuple[Any, Any]:
        pw = await async_playwright().start()
        chrome = await pw.chromium.launch(executable_path=executable, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        return pw, chrome

    pw, chrome = bt.block(launch())
    try:
        yield bt, chrome
    finally:
        async def close() -> None:
            await chrome.close()
            await pw.stop()

        bt.block(close())
        bt.close()


class Page:
    """One Chromium page; every method returns a Deferred."""

    def __init__(self, bt: BrowserThread, page: Any, console_errors: list[str]) -> None:
        self.bt, self.page = bt, page
        #: every console error and uncaught exception of the page since it was opened
        self.console_errors = console_errors

    def evaluate(self, script: str, arg: Any = None) -> Deferred[Any]:
        return self.bt.run(self.page.evaluate(script, arg))

    def wait_for(self, script: str, arg: Any = None) -> Deferred[Any]:
        """Until the JavaScript expression or function is truthy in the page."""
        return self.bt.run(self.page.wait_for_function(script, arg=arg, timeout=WAIT_MS))

    def wait_for_row(self, key: str, state: str = "visible") -> Deferred[Any]:
        return self.bt.run(self.page.wait_for_selector(
            f'tr[data-key="{key}"]', state=state, timeout=WAIT_MS))

    def row_text(self, key: str) -> Deferred[str]:
        return self.bt.run(self.page.inner_text(f'tr[data-key="{key}"]'))

    def submit(self, key: str, value: str) -> Deferred[None]:
        async def go() -> None:
            await self.page.fill("#key", key)
            await self.page.fill("#value", value)
            await self.page.click("#editor button[type=submit]")

        return self.bt.run(go())


@pytest.fixture(name="open_page")
def open_page_fixture(browser: tuple[BrowserThread, Any]) -> Iterator[Any]:
    """``open_page(url)`` loads a page in a fresh browser context and waits until its
    live map holds its first snapshot; the contexts close after the test."""
    bt, chrome = browser
    contexts: list[Any] = []

    async def load(url: str) -> Page:
        context = await chrome.new_context()
        contexts.append(context)
        page = await context.new_page()
        errors: list[str] = []
        # Failed loads (a 404) reach the console as errors too.
        page.on("console", lambda message: errors.append(message.text)
                if message.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        await page.goto(url)
        await page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
        return Page(bt, page, errors)

    try:
        yield lambda url: bt.run(load(url))
    finally:
        async def close() -> None:
            for context in contexts:
                await context.close()

        bt.block(close())


def committed_extra() -> dict[str, Any]:
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    for worker in config["workers"]:
        for component in worker.get("components", []):
            if component.get("classname", "").startswith("etcdwamp."):
                extra: dict[str, Any] = component["extra"]
                return extra
    raise AssertionError("no etcdwamp component in the committed config")


@pytest.fixture(scope="module")
def demo_node(etcd: EtcdCluster) -> Iterator[CrossbarNode]:
    """The committed node config as is (roles, maps, rules), on its own key prefix."""
    node = CrossbarNode(str(CONFIG), etcd.urls, extra_overrides={
        "db_prefix": DB.decode(), "election": ELECTION.decode(),
        "kv_prefixes": ["browser/raw/"]})
    try:
        node.start()
        yield node
    finally:
        node.stop()


@pytest.fixture
def counters_node(etcd: EtcdCluster) -> Iterator[CrossbarNode]:
    """The committed config as is, whose oid -> oid map "counters" the anonymous role may
    use as it uses "notes" (counters.html), on a key prefix of its own."""
    maps = committed_extra()["maps"]
    assert maps["counters"]["key"] == maps["counters"]["value"] == "oid"
    assert "guest" in maps["counters"]["read"] and "guest" in maps["counters"]["write"]
    node = CrossbarNode(str(CONFIG), etcd.urls, web_dir=str(WEB), extra_overrides={
        "db_prefix": OID_DB.decode(),
        "election": "browser-oid/publisher", "kv_prefixes": []})
    try:
        node.start()
        yield node
    finally:
        node.stop()


def note(key: str) -> bytes:
    return NOTES + key.encode()


async def etcd_notes(client: Client) -> list[list[Any]]:
    """Every note in etcd as the page keeps it: [key, value, revision], by key."""
    result = await client.get(KeySet(NOTES, prefix=True))
    return sorted([kv.key[len(NOTES):].decode(), json.loads(kv.value), kv.mod_revision]
                  for kv in result.kvs)


PAGE_NOTES = "() => [...window.notes.rows].map(([k, r]) => [k, r.value, r.revision]).sort()"
HANDLERS = """topic => [
    window.etcdLiveMapDebug.handlers[topic],
    window.wamp.session.subscriptions.flat().filter(s => s.active && s.topic === topic).length]"""


@ensure
async def test_page_shows_notes_and_follows_writes_from_python(
        demo_node: CrossbarNode, client: Client, prefix: bytes, open_page: Any) -> None:
    """The page shows the notes etcd holds, and follows puts and deletes made with the
    etcd client, each with its etcd revision."""
    name = prefix.decode()
    before = await client.put(note(name + "before"), b'"written before the page opened"')
    page = await open_page(demo_node.http_url)
    assert "written before the page opened" in await page.row_text(name + "before")
    assert await page.evaluate("k => window.notes.rows.get(k).revision",
                               name + "before") == before.revision

    written = await client.put(note(name + "from-python"), b'{"hello": "browser"}')
    await page.wait_for_row(name + "from-python")
    assert await page.row_text(name + "from-python") == (
        f'{name}from-python\t{{"hello":"browser"}}\t{written.revision}\tedit delete')

    await client.delete(note(name + "from-python"))
    await page.wait_for_row(name + "from-python", state="detached")
    assert await page.evaluate(PAGE_NOTES) == await etcd_notes(client)


@ensure
async def test_page_reads_a_big_map_in_snapshot_pages(
        demo_node: CrossbarNode, client: Client, prefix: bytes, open_page: Any) -> None:
    """livemap.js asks for get_and_watch's snapshot in progressive pages and joins
    them: a map of several pages shows whole and exact, and follows later writes."""
    name = prefix.decode()
    for start in range(0, 350, 128):
        await client.txn(Transaction(success=[
            OpSet(note(f"{name}{i:03d}"), b"%d" % i) for i in range(start, min(start + 128, 350))]))
    page = await open_page(demo_node.http_url)
    assert await page.evaluate("window.etcdLiveMapDebug.pages['etcd.map.notes']") >= 3
    assert await page.evaluate(PAGE_NOTES) == await etcd_notes(client)
    written = await client.put(note(name + "after"), b'"after the pages"')
    await page.wait_for("rev => window.notes.revision >= rev", written.revision)
    assert await page.evaluate(PAGE_NOTES) == await etcd_notes(client)


@ensure
async def test_add_button_writes_to_etcd(demo_node: CrossbarNode, client: Client,
                                         prefix: bytes, open_page: Any) -> None:
    """The form's button puts the note into etcd; the page then shows etcd's revision."""
    key = prefix.decode() + "from-browser"
    page = await open_page(demo_node.http_url)
    await page.submit(key, '{"clicked": true}')

    async def stored() -> bool:
        return bool((await client.get(note(key))).kvs)

    await until(stored, timeout=20, why="the click never reached etcd")
    kv = (await client.get(note(key))).kvs[0]
    assert json.loads(kv.value) == {"clicked": True}
    await page.wait_for("([k, rev]) => window.notes.rows.get(k)?.revision === rev",
                        [key, kv.mod_revision])
    assert await page.evaluate("k => window.notes.rows.get(k).value", key) == {"clicked": True}


@ensure
async def test_submit_clears_the_form_and_the_page_says_what_changed(
        demo_node: CrossbarNode, client: Client, prefix: bytes, open_page: Any) -> None:
    """After a submit reaches etcd the form is empty again; the page says it is connected
    and who is here (a second tab counts), highlights the row that changed and names that
    row's revision (not the store's, which the publisher's checkpoints move on); nothing
    logs a console error, /favicon.ico included."""
    key = prefix.decode() + "submitted"
    page = await open_page(demo_node.http_url)
    assert await page.evaluate("document.getElementById('connection').dataset.state") == (
        "connected")
    await page.wait_for("document.getElementById('here').dataset.count === '1'")
    other = await open_page(demo_node.http_url)
    await page.wait_for("document.getElementById('here').dataset.count === '2'")
    assert await page.evaluate("document.getElementById('here').textContent") == (
        "you and 1 other are here")

    await page.submit(key, '{"typed": "in the form"}')
    await page.wait_for_row(key)
    kv = (await client.get(note(key))).kvs[0]
    assert json.loads(kv.value) == {"typed": "in the form"}
    await page.wait_for("() => document.getElementById('key').value === ''")
    assert await page.evaluate(
        "[document.getElementById('key').value, document.getElementById('value').value]"
    ) == ["", ""]
    status = await page.evaluate("document.getElementById('status').textContent")
    assert f"{key} changed (revision {kv.mod_revision})" in status, status
    highlighted = "() => [...document.querySelectorAll('tr.changed')].map(tr => tr.dataset.key)"
    assert await page.evaluate(highlighted) == [key]
    await other.wait_for_row(key)
    assert await other.evaluate(highlighted) == [key]

    assert page.console_errors == [] and other.console_errors == []


@ensure
async def test_a_note_that_cannot_be_read_is_one_marked_row(
        demo_node: CrossbarNode, client: Client, prefix: bytes, open_page: Any) -> None:
    """Values written to etcd behind the component's back that it cannot read show as
    marked rows, from the snapshot and from events (NaN, which JSON.parse refuses);
    the other notes load, and later events still arrive."""
    name = prefix.decode()
    unreadable = "unreadable: stored value cannot be decoded"
    marker = {"uri": "etcd.error.bad_value", "message": "stored value cannot be decoded"}
    good = await client.put(note(name + "good"), b'"fine"')
    corrupt = await client.put(note(name + "corrupt"), b"{not json")
    try:
        page = await open_page(demo_node.http_url)
        assert await page.row_text(name + "good") == (
            f'{name}good\t"fine"\t{good.revision}\tedit delete')
        assert await page.row_text(name + "corrupt") == (
            f"{name}corrupt\t{unreadable}\t{corrupt.revision}\tedit delete")
        assert await page.evaluate("k => window.notes.rows.get(k).error",
                                   name + "corrupt") == marker
        nan = await client.put(note(name + "nan"), b"[NaN]")
        await page.wait_for_row(name + "nan")
        assert await page.row_text(name + "nan") == (
            f"{name}nan\t{unreadable}\t{nan.revision}\tedit delete")
        after = await client.put(note(name + "after"), b'"still live"')
        await page.wait_for_row(name + "after")
        assert await page.row_text(name + "after") == (
            f'{name}after\t"still live"\t{after.revision}\tedit delete')
        assert await page.evaluate(
            "p => [...document.querySelectorAll('tr.bad-value')].map(tr => tr.dataset.key)"
            ".filter(k => k.startsWith(p)).sort()", name) == [name + "corrupt", name + "nan"]
    finally:
        # The other tests compare the page with etcd's notes, decoded as JSON.
        for key in ("corrupt", "nan"):
            await client.delete(note(name + key))


@ensure
async def test_anonymous_page_is_a_guest_with_the_demo_rights_only(
        demo_node: CrossbarNode, open_page: Any) -> None:
    """No page carries a ticket; the page joins anonymously as ``guest`` and the router
    refuses it what the demo does not need (raw keys, the generic map URIs)."""
    for path in WEB.iterdir():
        if path.is_file() and path.suffix in (".js", ".html"):
            text = path.read_text(encoding="utf-8")
            assert "onchallenge" not in text and "ticket" not in text, path
    page = await open_page(demo_node.http_url)
    assert await page.evaluate("[window.wamp.authmethod, window.wamp.authrole]") == [
        "anonymous", "guest"]
    refused = await page.evaluate("""async () => {
        const s = window.wamp.session, out = [];
        const attempts = [
            () => s.call("etcd.kv.range", ["browser/"]),
            () => s.call("etcd.map.put", ["notes", "k", 1]),
            () => s.subscribe("etcd.kv.browser_raw.on_change", () => {}),
        ];
        for (const attempt of attempts) {
            try { await attempt(); out.push("allowed"); } catch (e) { out.push(e.error); }
        }
        return out;
    }""")
    assert refused == ["wamp.error.not_authorized"] * 3


async def wait_caught_up(client: Client, revision: int, node: CrossbarNode) -> None:
    """Until the publisher's checkpoint has reached ``revision`` (it wrote every
    event up to there and will write no checkpoint of its own until the next change)."""
    checkpoint = (await publisher_keys(node, ELECTION)).checkpoint

    async def caught_up() -> bool:
        kv = (await client.get(checkpoint)).first
        return kv is not None and int(kv.value) >= revision

    await until(caught_up, timeout=30,
                why=lambda: "the publisher's checkpoint never caught up:\n" + node.log_tail(80))


@ensure
async def test_resync_after_compaction_leaves_the_page_exact(
        demo_node: CrossbarNode, client: Client, prefix: bytes, open_page: Any) -> None:
    """The publisher loses history (its checkpoint predates a compaction), notes change
    meanwhile; its on_resync makes the page re-read and end up exactly as etcd is, with
    still one handler per topic, also after more (concurrent) resyncs."""
    name = prefix.decode()
    await client.put(note(name + "kept"), b'"kept"')
    await client.put(note(name + "changed"), b'"old"')
    last = await client.put(note(name + "deleted"), b'"doomed"')
    page = await open_page(demo_node.http_url)
    await page.wait_for("rev => window.notes.revision >= rev", last.revision)
    reads = await page.evaluate("window.etcdLiveMapDebug.snapshots['etcd.map.notes']")
    await wait_caught_up(client, last.revision, demo_node)

    # Take the publisher's place: queue behind it, then end its lease.
    keys = await publisher_keys(demo_node, ELECTION)
    candidates = KeySet(keys.election + b"/", prefix=True)
    election = client.election(keys.election)
    mine = election.campaign(b"browser-test")
    try:
        leader = await client.election(keys.election).leader()
        assert leader is not None

        async def queued() -> bool:
            return (await client.get(candidates)).count == 2

        await until(queued, timeout=20, why="the test's candidacy never showed")
        await client.lease_revoke(leader.lease)
        await mine
        assert election.lease is not None
        my_lease = election.lease.id

        async def component_campaigns_again() -> bool:
            # Its new candidacy means it saw its lease go and stopped its watches.
            kvs = (await client.get(candidates)).kvs
            return any(kv.lease not in (my_lease, leader.lease) for kv in kvs)

        await until(component_campaigns_again, timeout=30, why=demo_node.log_tail)

        # The gap: nobody publishes these changes.
        await client.put(note(name + "changed"), b'"new"')
        await client.delete(note(name + "deleted"))
        await client.put(note(name + "added"), b'"added in the gap"')
        assert await page.evaluate(
            "n => [window.notes.rows.has(n + 'added'), window.notes.rows.get(n + 'changed').value]",
            name) == [False, "old"]
        # Compact past the gap: wherever the next publisher resumes (the checkpoint,
        # rewound here, or the revision it last published), that history is gone.
        latest = await client.put(keys.checkpoint, b"1")
        await client.compact(latest.revision, physical=True)
    finally:
        if not mine.called:
            mine.cancel()
        await election.resign()

    await page.wait_for("([before, rev]) => window.etcdLiveMapDebug.snapshots["
                        "'etcd.map.notes'] > before && window.notes.revision >= rev",
                        [reads, latest.revision])
    assert await page.evaluate("window.etcdLiveMapDebug.resyncs['etcd.map.notes']") >= 1
    assert await page.evaluate(PAGE_NOTES) == await etcd_notes(client)
    assert "added in the gap" in await page.row_text(name + "added")
    await page.wait_for_row(name + "deleted", state="detached")
    for topic in (ON_CHANGE, ON_RESYNC):
        assert await page.evaluate(HANDLERS, topic) == [1, 1], topic

    # Live again after the resync.
    after = await client.put(note(name + "after"), b'"after the resync"')
    await page.wait_for("([k, rev]) => window.notes.rows.get(k)?.revision === rev",
                        [name + "after", after.revision])

    # Resyncs asked for at once cost two reads (the one running, one after it),
    # and add no handler.
    reads = await page.evaluate("window.etcdLiveMapDebug.snapshots['etcd.map.notes']")
    await page.evaluate("Promise.all([1, 2, 3, 4].map(() => window.notes.resync()))")
    assert await page.evaluate(
        "window.etcdLiveMapDebug.snapshots['etcd.map.notes']") == reads + 2
    for topic in (ON_CHANGE, ON_RESYNC):
        assert await page.evaluate(HANDLERS, topic) == [1, 1], topic
    assert await page.evaluate(PAGE_NOTES) == await etcd_notes(client)


@ensure
async def test_oid_above_2_53_round_trips_exactly_under_json(
        counters_node: CrossbarNode, client: Client, open_page: Any) -> None:
    """Oids beyond JavaScript's exact integers travel as decimal strings: written from
    the page (a guest's, the committed config as is) as BigInt, stored exactly in etcd,
    shown and read back exactly; the form is cleared; no console error."""
    key, value = 2**60 + 3, 2**63 + 5
    page = await open_page(counters_node.http_url + "counters.html")
    await page.submit(str(key), str(value))
    await page.wait_for("() => document.getElementById('key').value === ''")

    async def stored() -> bool:
        return bool((await client.get(COUNTERS + key.to_bytes(8, "big"))).kvs)

    await until(stored, timeout=20, why="the page's put never reached etcd")
    kv = (await client.get(COUNTERS + key.to_bytes(8, "big"))).kvs[0]
    assert int.from_bytes(kv.value, "big") == value

    await page.wait_for_row(str(key))
    assert (await page.row_text(str(key))).split("\t")[:2] == [str(key), str(value)]
    assert await page.evaluate("k => window.counters.rows.get(k).value", str(key)) == str(value)
    got = await page.evaluate("""k => window.counters.get(BigInt(k))
        .then(r => [typeof r.key, String(r.key), typeof r.value, String(r.value)])""", str(key))
    assert got == ["string", str(key), "string", str(value)]

    # From Python, through the topic: the largest oid, and a small one stays a number.
    top = await client.put(COUNTERS + (7).to_bytes(8, "big"), (2**64 - 1).to_bytes(8, "big"))
    small = await client.put(COUNTERS + (8).to_bytes(8, "big"), (42).to_bytes(8, "big"))
    await page.wait_for("rev => window.counters.revision >= rev", max(top.revision,
                                                                      small.revision))
    assert await page.evaluate(
        "[window.counters.rows.get(7).value, window.counters.rows.get(8).value]"
    ) == [str(2**64 - 1), 42]
    assert (await page.row_text("7")).split("\t")[:2] == ["7", str(2**64 - 1)]
    assert page.console_errors == []


# The module's rules for event order, driven step by step through a scripted
# stand-in for the autobahn session (no router: what the real one cannot be
# made to do on demand, such as deliver an event twice, or late).
SCRIPTED_SESSION = """async () => {
    const { liveMap } = await import("/livemap.js");
    const handlers = {}, calls = [];
    const session = {
        isOpen: true,
        subscribe: async (topic, handler) => {
            handlers[topic] = handler;
            return { topic, active: true };
        },
        unsubscribe: async (sub) => { sub.active = false; delete handlers[sub.topic]; },
        call: (procedure, args) =>
            new Promise((resolve) => calls.push({ procedure, args, resolve })),
    };
    const flush = () => new Promise((r) => setTimeout(r, 0));
    const seen = [];
    const live = liveMap(session, { prefix: "p", map: "m",
                                    onValue: (rows, rev) => seen.push([rows.size, rev]) });
    const change = (op, key, value, revision) =>
        handlers["p.map.m.on_change"]([{ op, key, value, revision }]);
    const resync = () => handlers["p.map.m.on_resync"]([{ compact_revision: 1 }]);
    const dump = () => [...live.rows].map(([k, r]) => [k, r.value, r.revision]).sort();
    const out = {};
    while (calls.length === 0) await flush();
    out.first_call = [calls[0].procedure, calls[0].args];
    change("put", "a", "in snapshot", 5);   // arrives early, older than the snapshot
    change("put", "b", "early", 7);         // arrives early, newer: must survive
    calls[0].resolve({ revision: 6, items: [
        { key: "a", value: "in snapshot", revision: 5 }, { key: "c", value: "c", revision: 2 }] });
    await live.ready;
    out.after_snapshot = dump();
    change("delete", "c", null, 8);
    change("put", "c", "stale", 7);          // re-delivered after its delete: no resurrection
    change("put", "b", "early again", 7);    // re-delivered
    change("put", "b", "newer", 9);
    out.after_events = [dump(), live.revision];
    const callsBefore = calls.length;
    resync(); resync(); resync();           // one read now, one more after it
    await flush();
    change("put", "d", "during the read", 11);
    calls[callsBefore].resolve({ revision: 10, items: [{ key: "x", value: "x", revision: 10 }] });
    await flush();
    change("put", "e", "during the second read", 12);
    calls[callsBefore + 1].resolve({ revision: 11, items: [
        { key: "x", value: "x", revision: 10 },
        { key: "d", value: "during the read", revision: 11 }] });
    await flush(); await flush();
    out.reads = calls.length - callsBefore;
    out.after_resyncs = [dump(), live.revision];
    await live.stop();
    out.handlers_after_stop = Object.keys(handlers);
    out.seen_last = seen[seen.length - 1];
    return out;
}"""


@ensure
async def test_module_applies_events_by_revision_and_coalesces_resyncs(
        demo_node: CrossbarNode, open_page: Any) -> None:
    """Early events newer than the snapshot survive it, older and re-delivered ones
    (also a put re-delivered after its key's delete) change nothing; three resyncs during
    a read cost exactly one more read; stop() drops both handlers."""
    page = await open_page(demo_node.http_url)
    out = await page.evaluate(SCRIPTED_SESSION)
    assert out["first_call"] == ["p.map.m.get_and_watch", []]
    assert out["after_snapshot"] == [["a", "in snapshot", 5], ["b", "early", 7], ["c", "c", 2]]
    assert out["after_events"] == [[["a", "in snapshot", 5], ["b", "newer", 9]], 9]
    assert out["reads"] == 2
    assert out["after_resyncs"] == [[["d", "during the read", 11],
                                     ["e", "during the second read", 12], ["x", "x", 10]], 12]
    assert out["handlers_after_stop"] == []
    assert out["seen_last"] == [3, 12]


# Moving between sessions (a reconnect, through a balancer to another node), driven
# through two scripted stand-ins for autobahn sessions.
SCRIPTED_RECONNECT = """async () => {
    const { liveMap } = await import("/livemap.js");
    const flush = () => new Promise((r) => setTimeout(r, 0));
    const scripted = (name, order) => {
        const s = { handlers: {}, calls: [], isOpen: true };
        s.subscribe = async (topic, handler) => {
            order.push(name + " subscribe " + topic);
            s.handlers[topic] = handler;
            return { topic, active: true };
        };
        s.unsubscribe = async (sub) => { sub.active = false; };
        s.call = (procedure, args) => {
            order.push(name + " call " + procedure);
            return new Promise((resolve) => s.calls.push(resolve));
        };
        s.change = (op, key, value, revision) =>
            s.handlers["p.map.m.on_change"]([{ op, key, value, revision }]);
        return s;
    };
    const order = [], states = [];
    const old = scripted("old", order);
    const live = liveMap(old, { prefix: "p", map: "m", onState: (s) => states.push(s) });
    const dump = () => [...live.rows].map(([k, r]) => [k, r.value, r.revision]).sort();
    while (old.calls.length === 0) await flush();
    old.calls[0]({ revision: 10, items: [{ key: "a", value: 1, revision: 3 },
                                          { key: "d", value: "doomed", revision: 4 }] });
    await live.ready;
    const out = {};
    old.isOpen = false;
    live.detach();
    out.away = [live.state, dump()];
    const fresh = scripted("new", order);
    const attached = live.attach(fresh);
    while (fresh.calls.length === 0) await flush();
    fresh.change("put", "a", 2, 12);          // during the read: in the snapshot too
    fresh.change("put", "c", "after", 14);    // above the snapshot: must survive it
    old.change("put", "a", "late", 15);       // the old session's: ignored
    fresh.calls[0]({ revision: 13, items: [{ key: "a", value: 2, revision: 12 },
                                            { key: "b", value: "added away", revision: 11 }] });
    await attached;
    out.back = [live.state, dump(), live.revision];
    fresh.change("put", "c", "after", 14);    // re-delivered by the new node's publisher
    fresh.change("delete", "b", null, 16);
    out.after = [dump(), live.revision];
    out.order = order;
    out.states = states;
    return out;
}"""


@ensure
async def test_module_resumes_exactly_on_a_new_session(
        demo_node: CrossbarNode, open_page: Any) -> None:
    """attach() on a new session subscribes first, then reads; rows stay while away; the
    new snapshot replaces them, events above it survive, an old session's late event and
    a re-delivered one change nothing."""
    page = await open_page(demo_node.http_url)
    out = await page.evaluate(SCRIPTED_RECONNECT)
    assert out["away"] == ["disconnected", [["a", 1, 3], ["d", "doomed", 4]]]
    assert out["back"] == ["live", [["a", 2, 12], ["b", "added away", 11],
                                    ["c", "after", 14]], 14]
    assert out["after"] == [[["a", 2, 12], ["c", "after", 14]], 16]
    assert out["order"] == ["old subscribe p.map.m.on_change", "old subscribe p.map.m.on_resync",
                            "old call p.map.m.get_and_watch",
                            "new subscribe p.map.m.on_change", "new subscribe p.map.m.on_resync",
                            "new call p.map.m.get_and_watch"]
    assert out["states"] == ["reading", "live", "disconnected", "reading", "live"]
    assert page.console_errors == []
