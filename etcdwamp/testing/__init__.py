"""Throw-away etcd servers on loopback, for tests, benchmarks and demos.

Blocking code on purpose (subprocess + urllib): it runs before and after the
reactor-driven code under test, never inside it. Every process started here is
stopped by its PID; nothing is killed by name.

One module per thing started: :mod:`~etcdwamp.testing.servers` (an etcd process),
:mod:`~etcdwamp.testing.clusters` (members on free ports),
:mod:`~etcdwamp.testing.crossbar_nodes` (a Crossbar router with the component),
:mod:`~etcdwamp.testing.haproxy` (HAProxy in front of nodes),
:mod:`~etcdwamp.testing.balanced` (several nodes behind HAProxy), and
:mod:`~etcdwamp.testing.pki` (certificates for https); import them from here.
"""

from __future__ import annotations

from ._processes import free_port
from .balanced import BalancedNodes
from .clusters import EtcdCluster
from .crossbar_nodes import BACKEND_PATH, CrossbarNode
from .haproxy import HAProxy, ServerState
from .pki import TLSFiles, make_test_pki
from .servers import DEFAULT_AUTO_COMPACTION, DEFAULT_QUOTA_BACKEND_BYTES, EtcdMember, etcd_binary

__all__ = [
    "BACKEND_PATH",
    "DEFAULT_AUTO_COMPACTION",
    "DEFAULT_QUOTA_BACKEND_BYTES",
    "BalancedNodes",
    "CrossbarNode",
    "EtcdCluster",
    "EtcdMember",
    "HAProxy",
    "ServerState",
    "TLSFiles",
    "etcd_binary",
    "free_port",
    "make_test_pki",
]
