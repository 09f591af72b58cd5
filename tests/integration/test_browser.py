"""The demo page in real headless Chromium, served by a real Crossbar, on a real etcd."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etcdwamp.testing import CrossbarNode, EtcdCluster

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "crossbar" / ".crossbar" / "config.json"
WEB = ROOT / "crossbar" / "web"
DB = b"browser/"
NOTES = DB + b"\x00\x01"


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


def etcd_call(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def demo_node(etcd: EtcdCluster) -> Iterator[CrossbarNode]:
    node = CrossbarNode(str(CONFIG), etcd.urls, extra_overrides={
        "db_prefix": DB.decode(), "election": "browser/publisher"})
    try:
        node.start()
        yield node
    finally:
        node.stop()


def test_page_shows_live_data_and_writes_to_etcd(etcd: EtcdCluster, demo_node: CrossbarNode,
                                                 tmp_path: Path) -> None:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    etcd_call(etcd.url, "/v3/kv/put", {"key": b64(NOTES + b"before"),
                                       "value": b64(b'"written before the page opened"')})
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(demo_node.http_url)
            page.wait_for_selector("body[data-ready=true]", timeout=20_000)
            assert "written before the page opened" in page.inner_text('tr[data-key="before"]')

            # A write from Python appears in the page's DOM, live.
            etcd_call(etcd.url, "/v3/kv/put", {"key": b64(NOTES + b"from-python"),
                                               "value": b64(b'{"hello": "browser"}')})
            row = page.wait_for_selector('tr[data-key="from-python"]', timeout=10_000)
            assert row is not None and '{"hello":"browser"}' in row.inner_text()

            # The page's add button writes to etcd.
            page.fill("#key", "from-browser")
            page.fill("#value", '{"clicked": true}')
            page.click("#add")
            deadline = time.monotonic() + 10
            while True:
                got = etcd_call(etcd.url, "/v3/kv/range", {"key": b64(NOTES + b"from-browser")})
                if got.get("kvs"):
                    break
                assert time.monotonic() < deadline, "the click never reached etcd"
                time.sleep(0.05)
            assert json.loads(base64.b64decode(got["kvs"][0]["value"])) == {"clicked": True}
            page.wait_for_selector('tr[data-key="from-browser"]', timeout=10_000)

            # A delete from Python removes the row.
            etcd_call(etcd.url, "/v3/kv/deleterange", {"key": b64(NOTES + b"from-python")})
            page.wait_for_selector('tr[data-key="from-python"]', state="detached",
                                   timeout=10_000)
            page.screenshot(path=str(tmp_path / "demo.png"))
        finally:
            browser.close()
