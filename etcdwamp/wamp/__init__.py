"""Floor 4: the WAMP component (for Crossbar) publishing etcd maps as RPCs and topics."""

try:
    import autobahn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    # The client and pmap install without Autobahn; only this floor needs it.
    raise ImportError(
        "etcdwamp.wamp needs Autobahn: install the 'wamp' extra, "
        "e.g. pip install 'etcdwamp[wamp]'",
        name=exc.name,
    ) from exc

from .component import EtcdWampComponent
from .settings import Settings, SettingsError

__all__ = ["EtcdWampComponent", "Settings", "SettingsError"]
