"""A throw-away HAProxy in front of Crossbar nodes, from the committed ``crossbar/haproxy.cfg``."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ._processes import _HOST, _stop_process, _tail, free_port

__all__ = ["BACKEND", "HAProxy", "ServerState"]

#: the backend of the committed config, whose servers are the Crossbar nodes
BACKEND = "crossbar"
_STATS_SOCKET = "stats.sock"
#: the longest unix socket path connect() takes (sun_path holds 108 bytes with its NUL)
_SUN_PATH_MAX = 107


@dataclass(frozen=True)
class ServerState:
    """One backend server as HAProxy's stats socket reports it.

    ``status`` is ``"UP"``, ``"DOWN"``, or a transition such as ``"UP 1/2"`` (up, one
    failed check of the two that mark it down); ``check`` is the last check's result
    (``"L7OK"``, ``"L4CON"``: connection refused, ...); ``current`` the connections
    open to it now and ``total`` those it was given since HAProxy started.
    """

    name: str
    status: str
    check: str
    current: int
    total: int


class HAProxy:
    """HAProxy on a free loopback port, balancing over ``servers`` (``(name, port)`` on
    127.0.0.1), configured from ``template`` (``crossbar/haproxy.cfg``). Stopped by PID.

    :raises FileNotFoundError: no ``haproxy`` executable (Debian package ``haproxy``)
    """

    def __init__(self, template: str, servers: Sequence[tuple[str, int]]) -> None:
        # Debian installs it in /usr/sbin, which a user's PATH may lack.
        found = shutil.which("haproxy", path=os.pathsep.join(
            [os.environ.get("PATH", ""), "/usr/sbin"]))
        if found is None:
            raise FileNotFoundError("haproxy not found: apt-get install haproxy")
        self.executable = found
        if not servers:
            raise ValueError("HAProxy needs at least one server to balance over")
        self.port = free_port()
        self.tmpdir = tempfile.mkdtemp(prefix="etcdwamp-haproxy-")
        self.stats_socket = os.path.join(self.tmpdir, _STATS_SOCKET)
        self.config_path = os.path.join(self.tmpdir, "haproxy.cfg")
        self.log_path = os.path.join(self.tmpdir, "haproxy.log")
        self.servers = list(servers)
        with open(template, encoding="utf-8") as f:
            text = string.Template(f.read()).substitute(
                # Relative to HAProxy's working directory (this one): a unix socket's
                # path has at most ~100 bytes, and a test's TMPDIR can be longer.
                bind=f"{_HOST}:{self.port}", stats_socket=f"unix@{_STATS_SOCKET}",
                servers="\n".join(f"    server {name} {_HOST}:{port}"
                                  for name, port in self.servers))
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(text)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The WebSocket URL of the WAMP transport, through the balancer."""
        return f"ws://{_HOST}:{self.port}/ws"

    @property
    def http_url(self) -> str:
        """The web root (the demo page), through the balancer."""
        return f"http://{_HOST}:{self.port}/"

    def start(self, timeout: float = 30.0) -> HAProxy:
        """Start HAProxy and wait until its stats socket answers and every server passed a
        health check; returns it.

        :raises RuntimeError: HAProxy exited (its config refused: the message has its output)
        :raises TimeoutError: not every server up within ``timeout`` seconds
        """
        with open(self.log_path, "ab") as log:
            # -db: in the foreground, so this PID is HAProxy's and stopping it stops it all.
            self.process = subprocess.Popen(
                [self.executable, "-db", "-f", self.config_path],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.tmpdir,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{self.log_tail()}")
            try:
                states = self.server_states()
            except OSError:
                states = {}  # the socket is not there yet
            # HAProxy starts its servers UP before checking them: only a passed check counts.
            if states and all(s.status == "UP" and s.check == "L7OK" for s in states.values()):
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"haproxy servers not all up after {timeout}s: "
                                   f"{states}\n{self.log_tail()}")
            time.sleep(0.1)

    def command(self, line: str) -> str:
        """Send one command to the stats socket (admin level); returns its answer.

        :raises OSError: the socket does not answer (HAProxy not running)
        """
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            if len(os.fsencode(self.stats_socket)) <= _SUN_PATH_MAX:
                sock.connect(self.stats_socket)
            else:
                # Too long a path: reach the socket through a descriptor of its directory.
                directory = os.open(self.tmpdir, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    sock.connect(f"/proc/self/fd/{directory}/{_STATS_SOCKET}")
                finally:
                    os.close(directory)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def server_states(self) -> dict[str, ServerState]:
        """The backend's servers by name, as the stats socket reports them now.

        :raises OSError: the socket does not answer
        """
        answer = self.command("show stat").lstrip("# ")
        states = {}
        for row in csv.DictReader(answer.splitlines()):
            if row.get("pxname") == BACKEND and row.get("svname") != "BACKEND":
                states[row["svname"]] = ServerState(
                    name=row["svname"], status=row["status"], check=row["check_status"],
                    current=int(row["scur"] or 0), total=int(row["stot"] or 0))
        return states

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of HAProxy's output ("" if none)."""
        return _tail(self.log_path, lines)

    def stop(self) -> None:
        """Stop HAProxy (SIGTERM, its immediate stop; SIGKILL after 20 s) and delete its
        directory."""
        if self.process is not None:
            _stop_process(self.process, signal.SIGTERM)
        self.process = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
