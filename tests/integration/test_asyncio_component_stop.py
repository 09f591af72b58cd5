"""The asyncio component process stopped by SIGTERM or SIGINT leaves in order and
says nothing alarming: its etcd client is closed on every exit path (no aiohttp
"Exception ignored in ClientSession.__del__"), and a candidacy cancelled by the
stop gives its lease back before the client closes (no "revoking lease ... failed")."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted
from stall import stalled
from twisted.internet import reactor
from waiting import until
from wamp_helpers import CONFIG

from etcdwamp import KeySet
from etcdwamp.client import Client
from etcdwamp.testing import CrossbarNode, EtcdCluster

ensure = pytest_twisted.ensureDeferred

#: what a component must not print while it stops
ALARMING = ("Exception ignored", "Unclosed", "Traceback", "failed", "Unhandled error")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@ensure
async def test_stopped_components_close_their_client_and_leave_no_lease(
        sig: signal.Signals, etcd: EtcdCluster, prefix: bytes) -> None:
    """Two instances: the publisher and a candidate waiting in the election. Both
    stopped by ``sig`` exit 0, print none of ALARMING, and leave no key in the
    election (the leader resigned, the waiting candidate's lease was revoked)."""
    election = prefix.decode() + "publisher"
    node = CrossbarNode(str(CONFIG), etcd.urls, component_loop="asyncio", instances=2,
                        extra_overrides={"election": election, "presence": None})
    client = Client(reactor, etcd.url)
    try:
        node.start()
        candidates = KeySet(election.encode() + b"/", prefix=True)

        async def both_campaign() -> bool:
            return (await client.get(candidates, count_only=True)).count == 2

        await until(both_campaign, timeout=30, why=lambda: node.log_tail(40))
        said = [Path(log).stat().st_size for log in node.component_logs]
        for process in node.components:
            process.send_signal(sig)
        await until(lambda: all(p.poll() is not None for p in node.components), timeout=30,
                    why=lambda: node.log_tail(40))
        for process, log, start in zip(node.components, node.component_logs, said,
                                       strict=True):
            with open(log, encoding="utf-8", errors="replace") as f:
                f.seek(start)
                stopping = f.read()
            assert process.returncode == 0, stopping
            assert not [w for w in ALARMING if w in stopping], stopping
        assert (await client.get(candidates, count_only=True)).count == 0
    finally:
        await client.close()
        node.stop()


@ensure
async def test_a_component_stopped_while_joining_closes_its_client(
        etcd_factory: Callable[..., EtcdCluster], tmp_path: Path) -> None:
    """SIGTERM while the start-up check waits on a stalled etcd: the component
    exits 0 at once, printing none of ALARMING."""
    cluster = etcd_factory(1)
    node = CrossbarNode(str(CONFIG), cluster.urls, component_loop="asyncio", instances=0)
    output = tmp_path / "component.out"
    component: subprocess.Popen[bytes] | None = None
    try:
        node.start()
        assert node.component_config is not None
        with stalled(cluster.members[0]):
            with open(output, "wb") as out:
                component = subprocess.Popen(
                    [sys.executable, "-m", "etcdwamp.asyncio.component", "--router",
                     node.backend_url, "--realm", node.realm, "--config",
                     node.component_config],
                    stdout=out, stderr=subprocess.STDOUT, env=node.env)
            # Joined the realm: now it waits for etcd's answer to its start-up check.
            await until(lambda: 'new session attached for realm="realm1"' in node.log_tail(200)
                        and 'authid="backend"' in node.log_tail(200), timeout=30,
                        why=lambda: output.read_text() + node.log_tail(20))
            component.send_signal(signal.SIGTERM)
            await until(lambda: component.poll() is not None, timeout=30,
                        why=output.read_text)
        said = output.read_text()
        assert component.returncode == 0, said
        assert not [w for w in ALARMING if w in said], said
    finally:
        if component is not None and component.poll() is None:
            component.kill()
            component.wait()
        node.stop()
