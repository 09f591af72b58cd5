"""A router component that restarts Crossbar workers, for fault tests and demos.

Crossbar has no option that restarts a worker process after it dies; its node
management API can start one again (``crossbar.start_worker``, then
``crossbar.worker.<id>.start_component`` for each component), exactly as the
node does at boot. That API lives on the node's internal router, which a
component reaches only through ``config.controller``: Crossbar's edge
personality hands it to the components of a worker with
``"expose_controller": true``.

:class:`WorkerControl` runs in such a router worker and registers, on the realm
it joins (so only roles allowed to call them, e.g. ``backend``):

- ``<prefix>.workers()`` → the ids of the running workers
- ``<prefix>.start_worker(worker_id)`` → starts that worker again as the node
  config in ``<cbdir>/config.json`` describes it (options and components)

``extra.prefix`` defaults to ``etcdwamp.control``. :class:`etcdwamp.testing.CrossbarNode`
adds it to nodes generated with ``container=True``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from autobahn.twisted.wamp import ApplicationSession

__all__ = ["WorkerControl"]


class WorkerControl(ApplicationSession):
    """Starts workers of the node config again through the node management API."""

    async def onJoin(self, details: Any) -> None:
        """Register ``<prefix>.workers`` and ``<prefix>.start_worker``; needs ``extra.cbdir``.

        Leaves with ``wamp.close.configuration_error`` when the worker does not expose the
        node controller.
        """
        extra = self.config.extra or {}
        prefix = extra.get("prefix", "etcdwamp.control")
        if self.config.controller is None:
            self.leave("wamp.close.configuration_error",
                       "WorkerControl needs a router worker with expose_controller "
                       "(Crossbar's edge personality)")
            return
        self._cbdir: str = extra["cbdir"]
        await self.register(self.workers, f"{prefix}.workers")
        await self.register(self.start_worker, f"{prefix}.start_worker")

    async def workers(self) -> list[str]:
        """The ids of the node's running workers."""
        running: list[str] = await self.config.controller.call("crossbar.get_workers")
        return running

    async def start_worker(self, worker_id: str) -> dict[str, Any]:
        """Start container worker ``worker_id`` again, with its options and components from the
        node config; returns ``{"id": worker_id, "pid": ...}``.

        :raises ValueError: the node config has no container worker of that id
        """
        with open(os.path.join(self._cbdir, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        worker = next((w for w in config.get("workers", []) if w.get("id") == worker_id), None)
        if worker is None or worker.get("type") != "container":
            # Autobahn reports it to the caller as wamp.error.runtime_error.
            raise ValueError(f"no container worker {worker_id!r} in the node config")
        controller = self.config.controller
        started = await controller.call("crossbar.start_worker", worker_id, "container",
                                        worker.get("options", {}))
        for component in worker.get("components", []):
            await controller.call(f"crossbar.worker.{worker_id}.start_component",
                                  component["id"], component)
        return {"id": worker_id, "pid": started.get("pid") if isinstance(started, dict)
                else None}
