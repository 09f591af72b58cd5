"""The storage bounds :class:`etcdwamp.testing.EtcdCluster` gives every etcd it starts
(checked on the command line it builds; tests/integration/test_maintenance.py and
test_wamp_storage.py see a quota at work in a real etcd)."""

from __future__ import annotations

import pytest

from etcdwamp.testing import DEFAULT_QUOTA_BACKEND_BYTES, EtcdCluster


def test_every_member_gets_the_quota_and_compaction_and_the_callers_flags_after() -> None:
    """By default a 1 GiB quota and compaction by revision keeping a million; flags the
    caller passes come after them (etcd takes the last of a repeated flag)."""
    cluster = EtcdCluster(2, extra_args=["--quota-backend-bytes", "262144"])
    try:
        for member in cluster.members:
            assert list(member.extra_args) == [
                f"--quota-backend-bytes={DEFAULT_QUOTA_BACKEND_BYTES}",
                "--auto-compaction-mode=revision", "--auto-compaction-retention=1000000",
                "--quota-backend-bytes", "262144"]
    finally:
        cluster.stop()


def test_quota_and_compaction_are_arguments() -> None:
    """``auto_compaction=None`` compacts nothing; a bad mode or quota is refused."""
    cluster = EtcdCluster(1, quota_backend_bytes=4096, auto_compaction=None)
    try:
        assert list(cluster.members[0].extra_args) == ["--quota-backend-bytes=4096"]
    finally:
        cluster.stop()
    periodic = EtcdCluster(1, auto_compaction=("periodic", "5m"))
    try:
        assert "--auto-compaction-retention=5m" in periodic.members[0].extra_args
    finally:
        periodic.stop()
    with pytest.raises(ValueError, match="auto_compaction mode"):
        EtcdCluster(1, auto_compaction=("hourly", "1"))
    with pytest.raises(ValueError, match="quota_backend_bytes"):
        EtcdCluster(1, quota_backend_bytes=0)
