"""Throw-away etcd servers on loopback, for tests, benchmarks and demos.

Blocking code on purpose (subprocess + urllib): it runs before and after the
reactor-driven code under test, never inside it. Every process started here is
stopped by its PID; nothing is killed by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["EtcdCluster", "EtcdMember", "etcd_binary", "free_port"]

_HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def etcd_binary() -> str:
    """Path of the etcd server binary (``$ETCD_BINARY`` or ``etcd`` on ``PATH``)."""
    path = os.environ.get("ETCD_BINARY") or shutil.which("etcd")
    if not path:
        raise FileNotFoundError(
            "etcd server binary not found: install it (apt-get install -y etcd-server) "
            "or set ETCD_BINARY"
        )
    return path


@dataclass
class EtcdMember:
    """One etcd process of a cluster; ``start()``/``kill()`` may be repeated."""

    name: str
    client_port: int
    peer_port: int
    data_dir: str
    initial_cluster: str = ""
    extra_args: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: str = ""

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{_HOST}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, cluster_state: str = "new") -> None:
        if self.running:
            return
        self.log_path = os.path.join(os.path.dirname(self.data_dir), f"{self.name}.log")
        args = [
            etcd_binary(),
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-state", cluster_state,
            "--initial-cluster-token", f"etcdwamp-{os.getpid()}",
            *self.extra_args,
        ]
        env = dict(os.environ)
        # Debian's etcd 3.4 refuses nothing here, but newer builds warn on
        # unknown ETCD_* variables; keep the environment of the caller clean.
        env.pop("ETCDCTL_API", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process by PID (SIGKILL by default: a crash, not a shutdown)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self.process = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                body = json.loads(resp.read())
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return str(body.get("health")) == "true"

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return ""


class EtcdCluster:
    """``size`` etcd members on free loopback ports with temporary data dirs.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, size: int = 1, *, extra_args: Sequence[str] = ()) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix="etcdwamp-etcd-")
        self.members: list[EtcdMember] = []
        for i in range(size):
            name = f"m{i}"
            self.members.append(
                EtcdMember(
                    name=name,
                    client_port=free_port(),
                    peer_port=free_port(),
                    data_dir=os.path.join(self.tmpdir, name),
                    extra_args=tuple(extra_args),
                )
            )
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.initial_cluster = initial

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    @property
    def url(self) -> str:
        return self.members[0].url

    def start(self, timeout: float = 60.0) -> EtcdCluster:
        for m in self.members:
            m.start()
        self.wait_healthy(timeout=timeout)
        return self

    def wait_healthy(self, members: Sequence[EtcdMember] | None = None,
                     timeout: float = 60.0) -> None:
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
        for m in self.members:
            m.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
