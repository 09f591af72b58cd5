"""Floor 4: the WAMP component (for Crossbar) publishing etcd maps as RPCs and topics."""

from .component import EtcdWampComponent
from .settings import Settings, SettingsError

__all__ = ["EtcdWampComponent", "Settings", "SettingsError"]
