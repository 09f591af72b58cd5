"""etcdwamp: an async etcd3 client for Twisted, persistent maps, and a WAMP component.

The names below are imported on first use (PEP 562), so that ``import etcdwamp.cli``
or ``import etcdwamp.wire`` does not pay for Twisted's HTTP client and the pmap codecs
(the command line starts in a fraction of the time).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import pmap
    from .client import Client
    from .errors import LeaseExpired, TxnFailed
    from .pmap import Database
    from .wire import (
        CompCreated,
        CompLease,
        CompModified,
        CompValue,
        CompVersion,
        KeySet,
        KeyValue,
        OpDel,
        OpGet,
        OpSet,
        SortOrder,
        SortTarget,
        Transaction,
    )

    #: txaioetcd's name for a lost lease (raised by ``Lease.refresh`` and keep-alive).
    Expired = LeaseExpired
    #: txaioetcd's name for a transaction whose compares failed (raised by ``Client.submit``).
    Failed = TxnFailed

__version__ = "0.1.0.dev0"

# Each public name -> (module, attribute in it); attribute None: the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "pmap": (".pmap", None),
    "Client": (".client", "Client"),
    "Database": (".pmap", "Database"),
    "Expired": (".errors", "LeaseExpired"),
    "Failed": (".errors", "TxnFailed"),
    **{name: (".wire", name) for name in (
        "CompCreated", "CompLease", "CompModified", "CompValue", "CompVersion", "KeySet",
        "KeyValue", "OpDel", "OpGet", "OpSet", "SortOrder", "SortTarget", "Transaction")},
}

__all__ = [
    "Client",
    "CompCreated",
    "CompLease",
    "CompModified",
    "CompValue",
    "CompVersion",
    "Database",
    "Expired",
    "Failed",
    "KeySet",
    "KeyValue",
    "OpDel",
    "OpGet",
    "OpSet",
    "SortOrder",
    "SortTarget",
    "Transaction",
    "__version__",
    "pmap",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use, then keep it as a module attribute."""
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
