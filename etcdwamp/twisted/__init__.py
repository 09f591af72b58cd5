"""The Twisted flavour, as ``autobahn.twisted``: ``from etcdwamp.twisted import Client``
is :class:`etcdwamp.Client`, whose methods return Deferreds."""

from __future__ import annotations

from ..client import Client

__all__ = ["Client"]
