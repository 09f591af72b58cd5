"""A stalled etcd and a process's open files, for the connection-bound tests.

``stalled`` stops an etcd member with SIGSTOP: the kernel still completes TCP
handshakes on its listening socket and buffers what is sent, but nothing is
answered, which is what an overloaded or hung member looks like to a client.
It always sends SIGCONT on the way out, so the fixtures can stop the member.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from etcdwamp.testing import EtcdMember

__all__ = ["open_files", "stalled"]


@contextmanager
def stalled(member: EtcdMember) -> Iterator[None]:
    """``member``'s process stopped (SIGSTOP) for the ``with`` block, then continued."""
    assert member.process is not None and member.running, "the member is not running"
    pid = member.process.pid
    os.kill(pid, signal.SIGSTOP)
    # The kill only queues the signal: a busy etcd may still take (and forward to
    # its leader) a request sent right after it, as if the stop came later. Its
    # parent, this process, is told once it has stopped: wait for that (WNOWAIT
    # leaves the report, and the exit of a member that died, to its other waits).
    stopped = os.waitid(os.P_PID, pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
    assert stopped is not None and stopped.si_code == os.CLD_STOPPED, \
        f"the member did not stop: {stopped}"
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def open_files(pid: int | str = "self") -> int:
    """How many file descriptors process ``pid`` has open (from /proc)."""
    return len(os.listdir(f"/proc/{pid}/fd"))
