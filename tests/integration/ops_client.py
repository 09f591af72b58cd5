"""The client with the operations mixed in, for tests written before
``Client`` itself inherits :class:`~etcdwamp.operations.OperationsMixin`.

The mixin comes first so its ``status(endpoint=...)`` is the one tests get.
"""

from __future__ import annotations

from etcdwamp.client import Client
from etcdwamp.operations import OperationsMixin

__all__ = ["OpsClient"]


class OpsClient(OperationsMixin, Client):
    pass
