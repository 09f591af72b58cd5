"""The committed HAProxy template (crossbar/haproxy.cfg) as etcdwamp.testing.HAProxy fills it
in: one server line per node on loopback, a config HAProxy itself accepts (``haproxy -c``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcdwamp.testing import HAProxy

TEMPLATE = Path(__file__).resolve().parents[2] / "crossbar" / "haproxy.cfg"


@pytest.fixture
def balancer() -> Iterator[HAProxy]:
    """An HAProxy configured over two servers, never started; its directory deleted after."""
    configured = HAProxy(str(TEMPLATE), [("node1", 21001), ("node2", 21002)])
    yield configured
    configured.stop()


def test_the_filled_in_config_lists_every_node_and_listens_on_loopback(
        balancer: HAProxy) -> None:
    text = Path(balancer.config_path).read_text()
    servers = [line.split() for line in text.splitlines() if line.strip().startswith("server ")]
    assert servers == [["server", "node1", "127.0.0.1:21001"],
                       ["server", "node2", "127.0.0.1:21002"]]
    assert f"bind 127.0.0.1:{balancer.port}\n" in text
    assert "${" not in text  # every placeholder filled in


def test_haproxy_accepts_the_filled_in_config(balancer: HAProxy) -> None:
    checked = subprocess.run([balancer.executable, "-c", "-f", balancer.config_path],
                             cwd=balancer.tmpdir, capture_output=True, text=True, timeout=30,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Checked every second, two failures down: what the docs and the tests rely on.
    assert "default-server check inter 1s fall 2 rise 2" in Path(balancer.config_path).read_text()


def test_no_server_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        HAProxy(str(TEMPLATE), [])
