"""The client with the operations mixed in, for tests written before
``Client`` itself inherits :class:`~etcdwamp.operations.OperationsMixin`.

The mixin comes first so its ``status(endpoint=...)`` is the one tests get;
once ``Client`` inherits the mixin, ``OpsClient`` is ``Client`` itself (the
subclass would have no consistent method order then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etcdwamp.client import Client
from etcdwamp.operations import OperationsMixin

__all__ = ["OpsClient"]

if TYPE_CHECKING or issubclass(Client, OperationsMixin):
    OpsClient = Client
else:
    class OpsClient(OperationsMixin, Client):
        pass
