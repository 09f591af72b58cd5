"""Throw-away etcd clusters: members on free loopback ports with temporary data dirs."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence

from ._processes import free_port
from .pki import TLSFiles
from .servers import DEFAULT_AUTO_COMPACTION, DEFAULT_QUOTA_BACKEND_BYTES, EtcdMember

__all__ = ["EtcdCluster"]


class EtcdCluster:
    """``size`` etcd members on free loopback ports with temporary data dirs.

    Storage is bounded: ``quota_backend_bytes`` (``--quota-backend-bytes``) and
    ``auto_compaction`` (mode and retention, e.g. ``("periodic", "5m")``; None
    compacts nothing, for a test that needs every revision whatever it writes).
    ``extra_args`` come after them, so a flag given there again wins.
    Use as a context manager, or call :meth:`start` and :meth:`stop`.

    :raises ValueError: a quota below 1 or an unknown compaction mode
    """

    def __init__(self, size: int = 1, *, extra_args: Sequence[str] = (),
                 tls: TLSFiles | None = None,
                 quota_backend_bytes: int = DEFAULT_QUOTA_BACKEND_BYTES,
                 auto_compaction: tuple[str, str] | None = DEFAULT_AUTO_COMPACTION) -> None:
        if quota_backend_bytes < 1:
            raise ValueError(f"quota_backend_bytes must be positive, not {quota_backend_bytes}")
        storage = [f"--quota-backend-bytes={quota_backend_bytes}"]
        if auto_compaction is not None:
            mode, retention = auto_compaction
            if mode not in ("periodic", "revision"):
                raise ValueError(f"auto_compaction mode must be 'periodic' or 'revision', "
                                 f"not {mode!r}")
            storage += [f"--auto-compaction-mode={mode}",
                        f"--auto-compaction-retention={retention}"]
        self.tmpdir = tempfile.mkdtemp(prefix="etcdwamp-etcd-")
        self.extra_args = (*storage, *extra_args)
        self.tls = tls
        self.members: list[EtcdMember] = []
        for i in range(size):
            self.members.append(self.new_member(f"m{i}"))
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.initial_cluster = initial

    def new_member(self, name: str | None = None) -> EtcdMember:
        """A member on free ports with its own data dir, not started and not in
        :attr:`members`: announce its ``peer_url`` with ``member_add``, then :meth:`join`."""
        if name is None:
            taken = {m.name for m in self.members}
            name = next(f"m{i}" for i in range(len(taken) + 1) if f"m{i}" not in taken)
        return EtcdMember(
            name=name,
            client_port=free_port(),
            peer_port=free_port(),
            data_dir=os.path.join(self.tmpdir, name),
            extra_args=self.extra_args,
            tls=self.tls,
        )

    def join(self, member: EtcdMember, initial_cluster: str, *, learner: bool = False,
             timeout: float = 60.0) -> EtcdMember:
        """Start ``member`` (already added with ``member_add``) with
        ``--initial-cluster-state existing`` and wait until it serves: healthy
        for a voting member, answering ``/version`` for a learner (a learner
        does not serve the linearizable read ``/health`` makes)."""
        member.initial_cluster = initial_cluster
        self.members.append(member)
        member.start(cluster_state="existing")
        if learner:
            self.wait_serving(member, timeout=timeout)
        else:
            self.wait_healthy([member], timeout=timeout)
        return member

    def forget(self, member: EtcdMember) -> None:
        """Stop ``member`` (removed from the cluster with ``member_remove``) and
        drop it from :attr:`members`."""
        member.stop()
        self.members.remove(member)

    def wait_serving(self, member: EtcdMember, timeout: float = 60.0) -> None:
        """Block until ``member`` answers on its client URL.

        :raises RuntimeError: the member's process exited
        :raises TimeoutError: not serving within ``timeout`` seconds
        """
        deadline = time.monotonic() + timeout
        while not member.serving():
            if not member.running:
                raise RuntimeError(f"etcd member {member.name} exited:\n{member.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd {member.name} not serving after {timeout}s:\n"
                                   f"{member.log_tail()}")
            time.sleep(0.1)

    @property
    def urls(self) -> list[str]:
        """The client URLs of every member."""
        return [m.url for m in self.members]

    @property
    def url(self) -> str:
        """The client URL of the first member."""
        return self.members[0].url

    def start(self, timeout: float = 60.0) -> EtcdCluster:
        """Start every member and wait until all are healthy; returns the cluster.

        :raises RuntimeError: a member's process exited
        :raises TimeoutError: not healthy within ``timeout`` seconds
        """
        for m in self.members:
            m.start()
        self.wait_healthy(timeout=timeout)
        return self

    def wait_healthy(self, members: Sequence[EtcdMember] | None = None,
                     timeout: float = 60.0) -> None:
        """Block until ``members`` (default: all) report healthy.

        :raises RuntimeError: a member's process exited
        :raises TimeoutError: not all healthy within ``timeout`` seconds
        """
        waiting = list(self.members if members is None else members)
        deadline = time.monotonic() + timeout
        while waiting:
            for m in list(waiting):
                if not m.running:
                    raise RuntimeError(f"etcd member {m.name} exited:\n{m.log_tail()}")
                if m.healthy():
                    waiting.remove(m)
            if waiting and time.monotonic() > deadline:
                tails = "\n".join(m.log_tail() for m in waiting)
                raise TimeoutError(f"etcd not healthy after {timeout}s:\n{tails}")
            if waiting:
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop every member and delete the data directories."""
        for m in self.members:
            m.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
