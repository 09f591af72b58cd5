"""etcdwamp: an async etcd3 client for Twisted, persistent maps, and a WAMP component."""

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

__version__ = "0.1.0.dev0"

#: txaioetcd's name for a lost lease (raised by ``Lease.refresh`` and keep-alive).
Expired = LeaseExpired
#: txaioetcd's name for a transaction whose compares failed (raised by ``Client.submit``).
Failed = TxnFailed

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
