"""Floor 4: the WAMP component (for Crossbar) publishing etcd maps as RPCs and topics.

``EtcdWampComponent`` (Twisted, hosted by Crossbar) is imported on first use:
importing ``autobahn.twisted`` picks txaio's framework for the whole process,
and a process running the asyncio component
(:mod:`etcdwamp.asyncio.component`) uses this package without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import autobahn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    # The client and pmap install without Autobahn; only this floor needs it.
    raise ImportError(
        "etcdwamp.wamp needs Autobahn: install the 'wamp' extra, "
        "e.g. pip install 'etcdwamp[wamp]'",
        name=exc.name,
    ) from exc

from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from .component import EtcdWampComponent

__all__ = ["EtcdWampComponent", "Settings", "SettingsError"]


def __getattr__(name: str) -> Any:
    # Crossbar resolves "etcdwamp.wamp.EtcdWampComponent" with getattr, which lands here.
    if name == "EtcdWampComponent":
        from .component import EtcdWampComponent

        return EtcdWampComponent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
