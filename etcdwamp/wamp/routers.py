"""Which router an instance serves, and the publisher's etcd keys per router.

Events reach only the subscribers of the router that publishes them, so each
router (a Crossbar router worker) needs a publisher of its own: the instances
on one router elect one, another router has its own election. A router is
named by ``<node id>/<worker pid>``, learned from the router itself (no
setting): Crossbar puts ``x_cb_node`` and ``x_cb_pid`` in the WELCOME of a
network session; a component embedded in the router worker reads the same
two facts in its own process (see
:meth:`etcdwamp.wamp.component.EtcdWampComponent._embedded_router`).

Keys, for the base ``election`` (``extra.election``) and a router ``r``
(percent-encoded into one key segment ``s``, so a ``/`` in a node id cannot
make one router's keys fall under another's):

- ``<election>/<s>``: the router's election (etcd puts candidates under ``<election>/<s>/``);
- ``<election>.checkpoint/<s>``: its checkpoint, and ``<election>.checkpoint/<s>/<hex>``
  its feeds' positions.

Without a router id (another WAMP router) the instances share the election
``<election>`` and the checkpoint ``<election>.checkpoint`` (the layout before
routers had their own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

__all__ = ["PublisherKeys", "router_from_welcome", "router_id"]


def router_id(node: str, pid: int) -> str:
    """The id of the router worker ``pid`` of Crossbar node ``node``."""
    return f"{node}/{pid}"


def router_from_welcome(authextra: Mapping[str, Any] | None) -> str | None:
    """The router id a Crossbar WELCOME tells (its ``x_cb_node`` and ``x_cb_pid``), or
    None when they are missing (another router, or an embedded session)."""
    if not isinstance(authextra, Mapping):
        return None
    node, pid = authextra.get("x_cb_node"), authextra.get("x_cb_pid")
    if not isinstance(node, str) or not node or isinstance(pid, bool) or not isinstance(pid, int):
        return None
    return router_id(node, pid)


def _segment(router: str) -> bytes:
    return quote(router, safe="").encode()


@dataclass(frozen=True)
class PublisherKeys:
    """The election and checkpoint keys of one router's publisher (all routers' when
    ``router`` is None: the shared layout)."""

    #: ``extra.election``
    base: bytes
    router: str | None

    @property
    def election(self) -> bytes:
        """The name of this router's election."""
        if self.router is None:
            return self.base
        return self.base + b"/" + _segment(self.router)

    @property
    def checkpoints(self) -> bytes:
        """The prefix under which every router's checkpoint lies."""
        # Beside the election, never under "<election>/": etcd counts every key
        # under an election's prefix as a candidate, and a lease-less one
        # would block all campaigns behind it forever.
        return self.base + b".checkpoint/"

    @property
    def checkpoint(self) -> bytes:
        """The key where this router's publisher records the last revision it published."""
        if self.router is None:
            return self.base + b".checkpoint"
        return self.checkpoints + _segment(self.router)

    def other_routers(self, checkpoint_keys: list[bytes]) -> list[str]:
        """The routers other than this one whose checkpoint keys are among ``checkpoint_keys``
        (keys under :attr:`checkpoints`; feeds' positions of the shared layout, which are
        no router's, are left out)."""
        found: set[str] = set()
        for key in checkpoint_keys:
            if not key.startswith(self.checkpoints):
                continue
            segment = key[len(self.checkpoints):].split(b"/", 1)[0]
            try:
                router = unquote(segment.decode("ascii"), errors="strict")
            except UnicodeDecodeError:
                continue
            # Every router id has a "/" (encoded): a hex position has none.
            if "/" in router and _segment(router) == segment and router != self.router:
                found.add(router)
        return sorted(found)

    def of(self, router: str) -> PublisherKeys:
        """The keys of router ``router`` under the same base."""
        return PublisherKeys(self.base, router)
