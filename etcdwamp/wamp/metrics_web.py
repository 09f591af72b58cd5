"""``/metrics`` and ``/health`` for Crossbar's operator web transport.

Crossbar builds :class:`OperatorResource` from a web path of type
``"resource"`` (``"classname": "etcdwamp.wamp.metrics_web.OperatorResource"``)
in the router worker that hosts the component, so both paths see the
component instances of that process:

- ``/metrics``: ``prometheus_client``'s exposition of its default registry (the
  component's metrics, :mod:`etcdwamp.wamp.prometheus`, and the process's own);
- ``/health``: ``200`` with ``{"healthy": true, "components": [...]}`` while every
  component instance of the process is registered and its last health check
  reached etcd; ``503`` otherwise, and while none runs (not started yet, or
  gone). The checks run with or without ``extra.metrics``.

Bind the transport to 127.0.0.1 (or a private interface): the figures tell
who calls what and how the cluster fares, and nothing here authenticates.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request

from .metrics import running

__all__ = ["HealthResource", "MetricsResource", "OperatorResource"]


class MetricsResource(Resource):
    """``GET /metrics``: ``prometheus_client``'s text exposition of its default registry.

    Rendered in the reactor thread (collecting is a walk over in-memory values), so
    nothing here needs a thread pool or imports a reactor; ``prometheus_client`` is
    imported on the first request, and its absence is a 503 saying what to install.
    """

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Answer a GET of this path (see the class docstring)."""
        request.setHeader(b"cache-control", b"no-store")
        try:
            from prometheus_client import REGISTRY, generate_latest
            from prometheus_client.exposition import CONTENT_TYPE_LATEST
        except ImportError:
            request.setResponseCode(503)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"prometheus_client is not installed: pip install 'etcdwamp[metrics]'\n"
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(REGISTRY)


class HealthResource(Resource):
    """``GET /health``: 200 while every component here is healthy, else 503 (JSON body)."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        """Answer a GET of this path (see the class docstring)."""
        reports = [component.health() for component in list(running)]
        healthy = bool(reports) and all(r["healthy"] for r in reports)
        request.setResponseCode(200 if healthy else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps({"healthy": healthy, "components": reports}).encode()


class OperatorResource(Resource):
    """The root of the operator transport: ``/metrics`` and ``/health``, nothing else.

    :param extra: the path's ``extra`` from the Crossbar config (none is read)
    """

    def __init__(self, extra: Any = None) -> None:
        super().__init__()
        # Typed Any: mypy cannot see that a Resource provides IResource (zope).
        children: dict[bytes, Any] = {b"metrics": MetricsResource(),
                                      b"health": HealthResource()}
        for name, child in children.items():
            self.putChild(name, child)

    def render_GET(self, request: Request) -> bytes:
        """Answer a GET of this path (see the class docstring)."""
        request.setHeader(b"content-type", b"text/plain")
        return b"etcdwamp: /metrics, /health\n"
