"""A 3-member etcd cluster whose members live in network namespaces of their own,
so that one member can be cut off from its peers while clients still reach it.

Layout (every name unique to this process and cluster, ``ew<pid>n<n>-...``)::

    switch namespace:  bridge "peers"  <- veth p0, p1, p2   (10.77.1.1-3: raft traffic)
                       bridge "clients" <- veth c0, c1, c2   (10.77.2.1-3: client traffic)
                                        <- veth cl           (10.77.2.100: the client namespace)
    member namespaces m0, m1, m2: etcd listens on 10.77.2.<i+1> for clients and
                       on 10.77.1.<i+1> for its peers
    client namespace:  where the workload, its Crossbar node and etcdctl run

Addresses exist only inside these namespaces; the root namespace gets nothing.
Faults: :meth:`NetnsCluster.cut` sets the member's port on the peer bridge down
(its peers lose it, clients do not), :meth:`~NetnsCluster.heal` sets it up again;
:meth:`~NetnsCluster.hang` stops the member's process (SIGSTOP),
:meth:`~NetnsCluster.resume` continues it. :meth:`~NetnsCluster.stop` ends every
process inside the namespaces by PID and deletes the namespaces by name, whatever
state the test left them in.

Blocking code, like :mod:`etcdwamp.testing`: it runs between the steps of a test,
never inside a reactor.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from etcdwamp.testing import (
    DEFAULT_AUTO_COMPACTION,
    DEFAULT_QUOTA_BACKEND_BYTES,
    EtcdMember,
)

__all__ = ["CLIENT_ADDRESS", "NamespacesUnavailable", "NetnsCluster", "probe_namespaces"]

PEER_NET = "10.77.1"
CLIENT_NET = "10.77.2"
#: the client namespace's address on the client bridge
CLIENT_ADDRESS = f"{CLIENT_NET}.100"
_CLIENT_PORT = 2379
_PEER_PORT = 2380

_names = itertools.count()


class NamespacesUnavailable(RuntimeError):
    """This machine (or user) cannot create network namespaces and veth pairs."""


def _unique(role: str) -> str:
    return f"ew{os.getpid()}n{next(_names)}-{role}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; a failure raises with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def probe_namespaces() -> None:
    """Create and delete a namespace with a veth pair in it.

    :raises NamespacesUnavailable: with the reason (no ``ip``, not root, no veth support)
    """
    if shutil.which("ip") is None:
        raise NamespacesUnavailable("the ip command (iproute2) is not installed")
    name = _unique("probe")
    try:
        _ip("netns", "add", name)
    except (RuntimeError, OSError) as exc:
        raise NamespacesUnavailable(f"cannot create a network namespace (root needed): "
                                    f"{exc}") from exc
    try:
        _ip("-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        _ip("-n", name, "link", "add", "vbr", "type", "bridge")
    except RuntimeError as exc:
        raise NamespacesUnavailable(f"cannot create veth pairs or bridges: {exc}") from exc
    finally:
        _ip("netns", "del", name, check=False)


def _netns_pids(name: str) -> list[int]:
    done = _ip("netns", "pids", name, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


class NetnsCluster:
    """``size`` etcd members (Debian's etcd) in namespaces of their own, a switch
    namespace joining them, and a client namespace; see the module docstring.

    Use as a context manager, or call :meth:`start` and (always) :meth:`stop`.
    """

    def __init__(self, size: int = 3) -> None:
        self.switch = _unique("sw")
        self.client = _unique("cl")
        self.member_namespaces = [_unique(f"m{i}") for i in range(size)]
        #: every namespace this cluster created, in creation order (deleted in reverse)
        self.namespaces: list[str] = []
        #: the members' data directories and logs (made by :meth:`start`)
        self.tmpdir = ""
        flags = [f"--initial-cluster-token={self.switch}",
                 f"--quota-backend-bytes={DEFAULT_QUOTA_BACKEND_BYTES}",
                 f"--auto-compaction-mode={DEFAULT_AUTO_COMPACTION[0]}",
                 f"--auto-compaction-retention={DEFAULT_AUTO_COMPACTION[1]}"]
        self.members = [
            EtcdMember(name=f"m{i}", client_port=_CLIENT_PORT, peer_port=_PEER_PORT,
                       data_dir="", host=f"{CLIENT_NET}.{i + 1}",
                       peer_host=f"{PEER_NET}.{i + 1}",
                       command_prefix=("ip", "netns", "exec", ns), extra_args=flags)
            for i, ns in enumerate(self.member_namespaces)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.initial_cluster = initial
        self._cut: set[str] = set()
        self._hung: set[str] = set()

    # -- set-up and tear-down ------------------------------------------------

    def start(self, timeout: float = 60.0) -> NetnsCluster:
        """Build the network, start every member and wait until all are healthy.

        :raises RuntimeError: a namespace, link or address could not be made, or a
            member exited
        :raises TimeoutError: not healthy within ``timeout`` seconds
        """
        # Shared memory when there is some: raft's fsyncs then cost nothing, so
        # what a test measures is the fault, not a busy disk.
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.tmpdir = tempfile.mkdtemp(prefix="etcdwamp-netns-", dir=base)
        try:
            self._build_network()
            for m in self.members:
                m.data_dir = os.path.join(self.tmpdir, m.name)
                m.start()
            self.wait_healthy(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _plug(self, port: str, bridge: str, namespace: str, address: str) -> None:
        """A veth pair: ``port`` on ``bridge`` in the switch; its other end, named
        after the bridge, in ``namespace``, holding ``address``."""
        sw = self.switch
        _ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", bridge,
            "netns", namespace)
        _ip("-n", sw, "link", "set", port, "master", bridge, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", bridge)
        _ip("-n", namespace, "link", "set", bridge, "up")

    def _build_network(self) -> None:
        self._add_namespace(self.switch)
        for bridge in ("peers", "clients"):
            # No spanning tree and no forwarding delay: a port forwards once it is up.
            _ip("-n", self.switch, "link", "add", bridge, "type", "bridge",
                "forward_delay", "0", "stp_state", "0")
            _ip("-n", self.switch, "link", "set", bridge, "up")
        for i, ns in enumerate(self.member_namespaces):
            self._add_namespace(ns)
            self._plug(f"p{i}", "peers", ns, f"{PEER_NET}.{i + 1}")
            self._plug(f"c{i}", "clients", ns, f"{CLIENT_NET}.{i + 1}")
        self._add_namespace(self.client)
        self._plug("cl", "clients", self.client, CLIENT_ADDRESS)

    def stop(self) -> None:
        """Stop every process inside the namespaces by PID (continued first, if hung),
        delete the namespaces and the data directories. Safe to call more than once,
        and after a failed :meth:`start`."""
        for m in self.members:
            if m.process is not None and m.process.poll() is None:
                os.kill(m.process.pid, signal.SIGCONT)
            m.kill()
        stuck = []
        for ns in reversed(self.namespaces):
            try:
                self._empty(ns)
            except RuntimeError as exc:
                stuck.append(str(exc))
            _ip("netns", "del", ns, check=False)
        self.namespaces = []
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if stuck:
            raise RuntimeError("; ".join(stuck))

    @staticmethod
    def _empty(ns: str) -> None:
        """End what still runs in ``ns`` (a workload's Crossbar node left behind, say)."""
        deadline = time.monotonic() + 20
        while pids := _netns_pids(ns):
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {pids} in {ns} would not end")
            # A killed process leaves the namespace when it is reaped, and nothing
            # announces that: poll under the deadline.
            time.sleep(0.05)  # wait-ok: polling /proc under a deadline

    def __enter__(self) -> NetnsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the client namespace ------------------------------------------------

    def in_client(self, args: Sequence[str]) -> list[str]:
        """``args`` as a command line that runs in the client namespace."""
        return ["ip", "netns", "exec", self.client, *args]

    @property
    def urls(self) -> list[str]:
        """The client URLs of every member (reachable from the client namespace only)."""
        return [m.url for m in self.members]

    def _etcdctl(self, members: Sequence[EtcdMember], *args: str,
                 timeout: float = 2.0) -> Any:
        endpoints = ",".join(m.url for m in members)
        done = subprocess.run(
            self.in_client(["etcdctl", f"--endpoints={endpoints}",
                            f"--command-timeout={timeout}s", "-w", "json", *args]),
            capture_output=True, text=True, timeout=timeout + 10,
            env={**os.environ, "ETCDCTL_API": "3"})
        try:
            return json.loads(done.stdout)
        except ValueError:
            return None

    def healthy(self, member: EtcdMember) -> bool:
        """Whether ``member`` answers a linearizable read (it has a leader)."""
        answer = self._etcdctl([member], "endpoint", "health")
        return bool(answer) and bool(answer[0].get("health"))

    def has_leader(self, member: EtcdMember, timeout: float = 1.0) -> bool:
        """Whether ``member`` answers within ``timeout`` seconds that it knows a leader
        (``endpoint status``: quick, even on a member cut off)."""
        answer = self._etcdctl([member], "endpoint", "status", timeout=timeout)
        if not answer:
            return False
        status = answer[0]["Status"]
        return bool(status.get("leader")) and not status.get("errors")

    def wait_leaderless(self, member: EtcdMember, timeout: float = 5.0) -> None:
        """Block until ``member`` knows no leader or does not answer: a follower cut off
        keeps its leader until its randomized election timeout (1-2 s by default) runs out.

        :raises TimeoutError: it still has one after ``timeout`` seconds
        """
        deadline = time.monotonic() + timeout
        while self.has_leader(member):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{member.name} still has a leader after {timeout}s")
            time.sleep(0.05)  # wait-ok: a member announces no leader loss: poll

    def wait_healthy(self, members: Sequence[EtcdMember] | None = None,
                     timeout: float = 60.0) -> None:
        """Block until ``members`` (default: all) are healthy.

        :raises RuntimeError: a member's process exited
        :raises TimeoutError: not all healthy within ``timeout`` seconds
        """
        waiting = list(self.members if members is None else members)
        deadline = time.monotonic() + timeout
        while waiting:
            for m in list(waiting):
                if not m.running:
                    raise RuntimeError(f"etcd member {m.name} exited:\n{m.log_tail()}")
                if self.healthy(m):
                    waiting.remove(m)
            if waiting and time.monotonic() > deadline:
                tails = "\n".join(m.log_tail() for m in waiting)
                raise TimeoutError(f"etcd not healthy after {timeout}s:\n{tails}")
            if waiting:
                # A refused connection answers at once: poll gently.
                time.sleep(0.1)  # wait-ok: polling health under a deadline

    def leader(self) -> EtcdMember:
        """The member the reachable members agree leads (asked with ``endpoint status``).

        :raises RuntimeError: no majority names the same leader
        """
        statuses = self._etcdctl(self.members, "endpoint", "status") or []
        ids = {s["Status"]["header"]["member_id"]: s["Endpoint"] for s in statuses}
        votes: dict[int, int] = {}
        for s in statuses:
            votes[s["Status"]["leader"]] = votes.get(s["Status"]["leader"], 0) + 1
        for leader, count in votes.items():
            if count > len(self.members) // 2 and leader in ids:
                return next(m for m in self.members if m.url == ids[leader])
        raise RuntimeError(f"no majority agrees on a leader: {statuses}")

    # -- faults --------------------------------------------------------------

    def _port(self, member: EtcdMember) -> str:
        return f"p{self.members.index(member)}"

    def cut(self, member: EtcdMember) -> None:
        """Cut ``member`` off its peers: its port on the peer bridge goes down (clients
        still reach it on the client bridge)."""
        _ip("-n", self.switch, "link", "set", self._port(member), "down")
        self._cut.add(member.name)

    def heal(self, member: EtcdMember) -> None:
        """Undo :meth:`cut`."""
        _ip("-n", self.switch, "link", "set", self._port(member), "up")
        self._cut.discard(member.name)

    def hang(self, member: EtcdMember) -> None:
        """Stop ``member``'s process (SIGSTOP): its sockets accept, nothing answers."""
        assert member.process is not None and member.running, f"{member.name} is not running"
        os.kill(member.process.pid, signal.SIGSTOP)
        self._hung.add(member.name)

    def resume(self, member: EtcdMember) -> None:
        """Undo :meth:`hang` (SIGCONT)."""
        assert member.process is not None, f"{member.name} was never started"
        os.kill(member.process.pid, signal.SIGCONT)
        self._hung.discard(member.name)

    def heal_all(self) -> None:
        """Undo every fault still in place."""
        for m in self.members:
            if m.name in self._cut:
                self.heal(m)
            if m.name in self._hung:
                self.resume(m)
