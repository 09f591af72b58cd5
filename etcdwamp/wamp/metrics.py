"""What the WAMP component reports to a metrics backend, and which instances run here.

:class:`ComponentMetrics` is the sink the component reports to; its methods do
nothing, so a component without ``extra.metrics`` pays one call per report.
:class:`etcdwamp.wamp.prometheus.PrometheusComponentMetrics` is the sink that
feeds ``prometheus_client`` (this module never imports it: the extra stays
optional).

Labels are bounded by the configuration, never by callers: a procedure is
named by its URI after the prefix with any map name taken out
(``etcd.map.notes.put`` and ``etcd.map.put`` are both ``map.put``, see
:func:`procedure_label`); no label carries a key, a value, an authid or a
session id.

:data:`running` holds the components of this process that are serving (a
component adds itself once registered and removes itself when it leaves):
the ``/health`` resource of :mod:`etcdwamp.wamp.metrics_web` asks them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["ComponentMetrics", "HealthSource", "call_outcome", "procedure_label", "running"]


class ComponentMetrics:
    """The component's reports; every method is a no-op here (override what you record).

    Methods run inline on the reactor, inside the call or publication they report:
    return at once and never raise (an exception would fail that call)."""

    def call_done(self, procedure: str, outcome: str, seconds: float) -> None:
        """A call of ``procedure`` (see :func:`procedure_label`) ended with ``outcome``
        (``"ok"`` or the error URI's last part) after ``seconds``."""

    def event_published(self, kind: str, count: int = 1) -> None:
        """``count`` events of ``kind`` (``map``, ``kv``, ``presence``, ``resync``) published."""

    def publisher_leader(self, is_leader: bool) -> None:
        """This instance now leads (publishes) or not."""

    def publisher_lag(self, revisions: int) -> None:
        """How many revisions the newest change under a published prefix is ahead of what
        this instance published (0 when caught up or not leading)."""

    def limit_refused(self, limit: str) -> None:
        """A call was refused by ``limit``: ``rate``, ``in_flight`` (the limiter's),
        ``max_keys`` (the storage quota), ``busy`` (etcd's queue full) or ``size`` (a
        size, row or operation limit: the call's error is ``too_large``)."""

    def sessions(self, count: int, realm: str = "") -> None:
        """The router has ``count`` WAMP sessions in ``realm`` (its meta API's
        ``wamp.session.count``, the component's own session included)."""

    def close(self) -> None:
        """The instance stopped: whatever it set in gauges no longer counts."""


def procedure_label(name: str, maps: Iterable[str]) -> str:
    """The ``procedure`` label of the procedure registered as ``<prefix>.<name>``: ``name``
    without the map name of a per-map URI (``map.notes.put`` -> ``map.put``).

    Map names are configuration, yet they would multiply every series by the maps;
    one series per operation is what an operator compares."""
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "map" and parts[1] in set(maps):
        return f"map.{parts[2]}"
    return name


def call_outcome(error_uri: str | None) -> str:
    """The ``outcome`` label of a call that failed with ``error_uri`` (None: it succeeded):
    the URI's last part (``etcd.error.permission_denied`` -> ``permission_denied``)."""
    if error_uri is None:
        return "ok"
    return error_uri.rsplit(".", 1)[-1]


class HealthSource(Protocol):
    """A serving component as ``/health`` sees it."""

    def health(self) -> dict[str, Any]:
        """``{"healthy": bool, ...}``: whether it is registered and reaches etcd, and why."""
        ...


#: the components of this process serving now (see the module docstring)
running: list[HealthSource] = []
