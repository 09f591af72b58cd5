"""Throw-away etcd servers: one process, started and stopped by its PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._processes import _HOST
from .pki import TLSFiles

__all__ = ["DEFAULT_AUTO_COMPACTION", "DEFAULT_QUOTA_BACKEND_BYTES", "EtcdMember", "etcd_binary"]

# etcd keeps every revision of every key until it is compacted, and a backend grown
# past --quota-backend-bytes raises NOSPACE, which stops every write, of every user,
# until an operator compacts, defragments and disarms (one browser could fill etcd's
# default 2 GiB with ~2,000 puts of 1 MB). So no etcd started here runs unbounded; see
# docs/operations.rst, "Bounding storage".

#: the backend quota of the servers :class:`EtcdCluster` starts: far above what a test
#: writes, but a runaway test fills it with NOSPACE instead of the disk
DEFAULT_QUOTA_BACKEND_BYTES = 1024 ** 3
#: their auto-compaction (``--auto-compaction-mode``, ``--auto-compaction-retention``):
#: by revision, keeping the newest million, so a test never loses history it reads or
#: watches to a compaction it did not make (that would depend on timing)
DEFAULT_AUTO_COMPACTION = ("revision", "1000000")

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
    tls: TLSFiles | None = None
    #: the address it serves clients at, and the one its peers reach it at ("": ``host``)
    host: str = _HOST
    peer_host: str = ""
    #: what runs etcd, e.g. ``("ip", "netns", "exec", NAME)``: a prefix that execs its
    #: command in place, so the process started is etcd's own (signals reach it)
    command_prefix: Sequence[str] = ()

    @property
    def url(self) -> str:
        """The client URL (https when the member has TLS files)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """The peer URL other members reach this one at."""
        return f"http://{self.peer_host or self.host}:{self.peer_port}"

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self, *, cluster_state: str = "new") -> None:
        """Start the etcd process (no-op while it runs), logging to ``<name>.log``.

        ``cluster_state`` is etcd's ``--initial-cluster-state``: ``"new"``, or ``"existing"``
        for a member joining a running cluster. Returns at once; wait with
        :meth:`EtcdCluster.wait_healthy` or :meth:`EtcdCluster.wait_serving`.
        """
        if self.running:
            return
        self.log_path = os.path.join(os.path.dirname(self.data_dir), f"{self.name}.log")
        args = [
            *self.command_prefix,
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
        if self.tls is not None:
            args += ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key,
                     "--trusted-ca-file", self.tls.ca_cert]
            if self.tls.client_cert_auth:
                args.append("--client-cert-auth")
        env = dict(os.environ)
        # Debian's etcd 3.4 refuses nothing here, but newer builds warn on
        # unknown ETCD_* variables; keep the environment of the caller clean.
        env.pop("ETCDCTL_API", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process by PID (SIGKILL by default: a crash, not a shutdown) and wait
        for it to exit.

        :raises ValueError: ``sig`` is SIGSTOP or SIGCONT, which do not end the process (to
            hang a member, send SIGSTOP to ``process.pid`` yourself)
        """
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            raise ValueError("kill() waits for the process to exit: send SIGSTOP/SIGCONT "
                             "to process.pid to hang or resume it")
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
        """Stop the process with SIGTERM (an orderly shutdown), waiting for it to exit."""
        self.kill(signal.SIGTERM)

    def healthy(self) -> bool:
        """Whether ``/health`` answers that the member is healthy (false if it does not answer)."""
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=self.tls.ca_cert)
            if self.tls.client_cert:
                context.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2,
                                        context=context) as resp:
                body = json.loads(resp.read())
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return str(body.get("health")) == "true"

    def serving(self) -> bool:
        """Whether the member answers on its client URL at all (``/version``)."""
        try:
            with urllib.request.urlopen(self.url + "/version", timeout=2,
                                        context=self._ssl_context()) as resp:
                resp.read()
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return True

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(cafile=self.tls.ca_cert)
        if self.tls.client_cert:
            context.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        return context

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the member's log ("" if there is none yet)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return ""
