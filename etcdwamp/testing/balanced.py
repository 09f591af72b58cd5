"""Several Crossbar nodes over one etcd cluster, with HAProxy in front of them."""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Sequence
from typing import Any

from .crossbar_nodes import CrossbarNode
from .haproxy import HAProxy, ServerState

__all__ = ["BalancedNodes"]


class BalancedNodes:
    """``count`` :class:`CrossbarNode` s made from one committed node config (each with its
    own directory and port, all with the same writer ticket) and an :class:`HAProxy` from
    ``haproxy_template`` balancing over them; the HAProxy server of ``nodes[i]`` is named
    ``node{i + 1}``. Every process is stopped by its PID.

    ``node_options`` go to every :class:`CrossbarNode` (``extra_overrides``,
    ``component_loop``, ...).
    """

    def __init__(self, config_path: str, haproxy_template: str, etcd_urls: Sequence[str], *,
                 count: int = 3, **node_options: Any) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        #: the etcd cluster every node uses (for tests that read etcd directly)
        self.etcd_urls = list(etcd_urls)
        self.writer_ticket: str = node_options.pop("writer_ticket", None) or (
            secrets.token_urlsafe(24))
        self.nodes = [CrossbarNode(config_path, etcd_urls, writer_ticket=self.writer_ticket,
                                   **node_options) for _ in range(count)]
        self.balancer = HAProxy(haproxy_template,
                                [(self.server_name(i), node.port)
                                 for i, node in enumerate(self.nodes)])

    @staticmethod
    def server_name(index: int) -> str:
        """The HAProxy server name of ``nodes[index]``."""
        return f"node{index + 1}"

    @property
    def url(self) -> str:
        """The WebSocket URL of the WAMP transport, through the balancer."""
        return self.balancer.url

    @property
    def http_url(self) -> str:
        """The demo page, through the balancer."""
        return self.balancer.http_url

    @property
    def realm(self) -> str:
        """The WAMP realm every node serves."""
        return self.nodes[0].realm

    @property
    def env(self) -> dict[str, str]:
        """An environment holding the writer ticket (``ETCDWAMP_WRITER_TICKET``)."""
        return self.nodes[0].env

    def start(self, timeout: float = 60.0) -> BalancedNodes:
        """Start the nodes one after the other, then HAProxy; returns once every node serves
        and HAProxy found each one up. On failure what was started is stopped.

        :raises RuntimeError, TimeoutError: as :meth:`CrossbarNode.start` and
            :meth:`HAProxy.start`
        """
        try:
            for node in self.nodes:
                node.start(timeout)
            self.balancer.start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def server_states(self) -> dict[str, ServerState]:
        """HAProxy's view of the nodes now, by server name (see :meth:`server_name`)."""
        return self.balancer.server_states()

    def kill(self, index: int) -> None:
        """Kill ``nodes[index]`` with SIGKILL, its controller and workers at once (a crash:
        nothing is shut down in order); its directory is kept for :meth:`restart`."""
        node = self.nodes[index]
        if node.process is None or node.process.poll() is not None:
            raise RuntimeError(f"node {index} is not running")
        # Crossbar's workers share the controller's process group (its own session).
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()
        for process in node.components:
            if process.poll() is None:
                process.kill()
                process.wait()

    def restart(self, index: int, timeout: float = 60.0) -> CrossbarNode:
        """Start killed ``nodes[index]`` again, on its port, and wait until it serves."""
        node = self.nodes[index]
        if node.process is not None and node.process.poll() is None:
            raise RuntimeError(f"node {index} is running")
        # start() waits for the boot messages in the log: the killed run's must not count.
        for log in [node.log_path, *node.component_logs]:
            if os.path.exists(log):
                os.replace(log, log + ".killed")
        node.components.clear()
        node.component_logs.clear()
        return node.start(timeout)

    def stop(self) -> None:
        """Stop HAProxy, then every node, by PID; their directories are deleted."""
        try:
            self.balancer.stop()
        finally:
            for node in self.nodes:
                node.stop()

    def log_tail(self, lines: int = 30) -> str:
        """HAProxy's output and every node's log, the last ``lines`` lines of each."""
        parts = [f"--- haproxy\n{self.balancer.log_tail(lines)}"]
        parts += [f"--- {self.server_name(i)}\n{node.log_tail(lines)}"
                  for i, node in enumerate(self.nodes)]
        return "\n".join(parts)

    def __enter__(self) -> BalancedNodes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
