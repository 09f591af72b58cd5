"""Throw-away etcd servers on loopback, for tests, benchmarks and demos.

Blocking code on purpose (subprocess + urllib): it runs before and after the
reactor-driven code under test, never inside it. Every process started here is
stopped by its PID; nothing is killed by name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BACKEND_PATH",
    "DEFAULT_AUTO_COMPACTION",
    "DEFAULT_QUOTA_BACKEND_BYTES",
    "CrossbarNode",
    "EtcdCluster",
    "EtcdMember",
    "TLSFiles",
    "etcd_binary",
    "free_port",
    "make_test_pki",
]

_HOST = "127.0.0.1"

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


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for an https etcd (see :func:`make_test_pki`)."""

    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str = ""
    client_key: str = ""
    client_cert_auth: bool = False


def make_test_pki(directory: str) -> TLSFiles:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(filename: str, data: bytes) -> str:
        path = os.path.join(directory, filename)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("etcdwamp test CA"))
          .issuer_name(name("etcdwamp test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, *usage: x509.ObjectIdentifier) -> tuple[bytes, bytes]:
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address(_HOST)), x509.DNSName("localhost")]),
                    critical=False)
                .add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
                .sign(ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    # etcd's gateway dials its own gRPC server with the server certificate, so
    # under --client-cert-auth that certificate must be valid for clients too.
    server_cert, server_key = leaf("etcd", ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH)
    client_cert, client_key = leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH)
    return TLSFiles(
        ca_cert=write("ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        server_cert=write("server.pem", server_cert),
        server_key=write("server-key.pem", server_key),
        client_cert=write("client.pem", client_cert),
        client_key=write("client-key.pem", client_key),
    )


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


def _tail(path: str, lines: int) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            return "".join(log.readlines()[-lines:])
    except OSError:
        return ""


def _stop_process(process: subprocess.Popen[bytes], sig: int) -> None:
    """Stop ``process`` (a session leader of its own) by its PID: ``sig``, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


#: the web transport path where :class:`CrossbarNode` admits backend components
BACKEND_PATH = "backend"


def _backend_path() -> dict[str, Any]:
    """A WebSocket path admitting only the ``backend`` principal, by a ticket Crossbar
    reads from ``$ETCDWAMP_BACKEND_TICKET`` (its value never lands in a file)."""
    return {
        "type": "websocket", "serializers": ["cbor", "msgpack", "json"],
        "auth": {"ticket": {"type": "static", "principals": {"backend": {
            "ticket": "${ETCDWAMP_BACKEND_TICKET}", "role": "backend"}}}},
    }


def _worker_title(worker_id: str) -> str:
    return f"crossbar-worker [{worker_id}]"


#: what the component logs when it will not serve: bad ``extra``, or etcd failed its check
_COMPONENT_REFUSALS = ("invalid configuration in extra", "failed the start-up check")


class CrossbarNode:
    """A Crossbar router generated from a committed node config, on a free port.

    The config's web transport port, the etcd endpoints in every etcdwamp
    component's ``extra`` and the static web directory are substituted; the
    rest is used as committed. Stopped by PID.

    ``extra_overrides`` replace top-level fields of the components' ``extra``;
    an ``"etcd"`` override is merged into the committed one (so a test may set
    ``{"etcd": {"timeout": 2}}`` and keep the substituted endpoints).

    With ``container=True`` the etcdwamp components run in a container worker
    (id :attr:`CONTAINER_ID`) instead of the router worker: they connect to the
    router over a rawsocket on a unix socket in the node's private directory
    (mode 0700), where the router admits anonymous sessions as ``backend``
    (container components cannot authenticate otherwise). The node then runs
    Crossbar's edge personality, keeps running when a worker dies, and its
    router hosts :class:`etcdwamp.crossbar_control.WorkerControl` so a test can
    start a killed container worker again (see :attr:`backend_socket`).

    Every node's web transport gets a ``/backend`` WebSocket path
    (:attr:`backend_url`) where only the ``backend`` principal joins, with the
    node's random :attr:`backend_ticket` (in Crossbar's environment, not in
    the config); the committed config has no such path, so a node started from
    it by hand asks for no second secret. With ``component_loop="asyncio"``
    the etcdwamp components do not run in Crossbar at all: the node runs
    without them, and :meth:`start` starts ``instances`` processes of
    ``python -m etcdwamp.asyncio.component`` that join there, configured
    with the same ``extra`` (written to :attr:`component_config`;
    :meth:`start_component` starts one more, e.g. after ``instances=0``, or
    beside the components Crossbar hosts).
    Their output is part of :meth:`log_tail`; :meth:`stop` stops them by PID
    before the router.
    """

    CONTAINER_ID = "etcdwamp"
    CONTROL_PREFIX = "etcdwamp.control"

    def __init__(self, config_path: str, etcd_urls: Sequence[str], *,
                 web_dir: str | None = None, instances: int = 1,
                 extra_overrides: dict[str, object] | None = None,
                 env: dict[str, str] | None = None,
                 writer_ticket: str | None = None,
                 container: bool = False,
                 component_loop: str = "twisted") -> None:
        if component_loop not in ("twisted", "asyncio"):
            raise ValueError(f"component_loop must be 'twisted' or 'asyncio', "
                             f"not {component_loop!r}")
        if container and component_loop == "asyncio":
            raise ValueError("container=True hosts the components in Crossbar; "
                             "component_loop='asyncio' runs them outside it")
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        # Secrets reach Crossbar through its environment ("${VAR}" in the
        # config), never through a file: fresh random tickets per node.
        self.writer_ticket = writer_ticket or secrets.token_urlsafe(24)
        self.backend_ticket = secrets.token_urlsafe(24)
        self.env = {**os.environ, "ETCDWAMP_WRITER_TICKET": self.writer_ticket,
                    "ETCDWAMP_BACKEND_TICKET": self.backend_ticket, **(env or {})}
        # The edge personality would dial this management uplink: never.
        self.env.pop("CROSSBAR_FABRIC_URL", None)
        self.container = container
        self.component_loop = component_loop
        self.instances = instances
        self.port = free_port()
        self.tmpdir = tempfile.mkdtemp(prefix="etcdwamp-crossbar-")
        self.cbdir = os.path.join(self.tmpdir, ".crossbar")
        os.makedirs(self.cbdir)
        self.backend_socket = os.path.join(self.tmpdir, "backend.sock")
        source_dir = os.path.dirname(os.path.abspath(config_path))
        web = web_dir or os.path.join(os.path.dirname(source_dir), "web")
        overrides = dict(extra_overrides or {})
        etcd_override = overrides.pop("etcd", None)
        contained: list[dict[str, Any]] = []
        external: list[dict[str, Any]] = []
        for worker in config["workers"]:
            for transport in worker.get("transports", []):
                transport["endpoint"]["port"] = self.port
                transport["endpoint"]["interface"] = _HOST
                root = transport.get("paths", {}).get("/")
                if root and root.get("type") == "static":
                    root["directory"] = os.path.abspath(web)
                if "ws" in transport.get("paths", {}):
                    transport["paths"].setdefault(BACKEND_PATH, _backend_path())
            components: list[dict[str, Any]] = []
            for component in worker.get("components", []):
                if component.get("classname", "").startswith("etcdwamp."):
                    extra = component["extra"]
                    if isinstance(etcd_override, dict):
                        extra["etcd"] = {**extra["etcd"], **etcd_override}
                    extra["etcd"]["endpoints"] = list(etcd_urls)
                    extra.update(overrides)
                    copies = [json.loads(json.dumps(component)) for _ in range(instances)]
                    # Kept even for instances=0: the extra of asyncio
                    # components started later (start_component).
                    external.append(json.loads(json.dumps(component)))
                    if component_loop == "twisted":
                        (contained if container else components).extend(copies)
                else:
                    components.append(component)
            worker["components"] = components
            if container and worker.get("type") == "router" and contained:
                self._host_control(worker)
        if container:
            if not contained:
                raise ValueError(f"{config_path} embeds no etcdwamp component to contain")
            config["workers"].append(self._container_worker(contained))
            controller = config.setdefault("controller", {})
            # Crossbar's default ends the node when any worker exits; here a
            # killed container worker is started again instead.
            controller.setdefault("options", {})["shutdown"] = [
                "shutdown_on_shutdown_requested"]
        if component_loop == "asyncio" and not external:
            raise ValueError(f"{config_path} has no etcdwamp component to run on asyncio")
        #: the ``extra`` file of asyncio components (None without an etcdwamp component)
        self.component_config: str | None = None
        self.realm = "realm1"
        if external:
            self.realm = external[0].get("realm", self.realm)
            self.component_config = os.path.join(self.tmpdir, "component.json")
            with open(self.component_config, "w", encoding="utf-8") as f:
                json.dump(external[0]["extra"], f, indent=2)
        with open(os.path.join(self.cbdir, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        self.process: subprocess.Popen[bytes] | None = None
        #: the asyncio component processes, in start order, and their output files
        self.components: list[subprocess.Popen[bytes]] = []
        self.component_logs: list[str] = []
        self.log_path = os.path.join(self.tmpdir, "crossbar.log")

    def _host_control(self, router: dict[str, Any]) -> None:
        router["id"] = router.get("id", "router")
        router.setdefault("options", {})["expose_controller"] = True
        router.setdefault("transports", []).append({
            "type": "rawsocket",
            "endpoint": {"type": "unix", "path": self.backend_socket},
            "serializers": ["cbor"],
            "auth": {"anonymous": {"type": "static", "role": "backend"}},
        })
        realm = router["realms"][0]["name"]
        router["components"].append({
            "type": "class", "classname": "etcdwamp.crossbar_control.WorkerControl",
            "realm": realm, "role": "backend", "extra": {"prefix": self.CONTROL_PREFIX},
        })

    def _container_worker(self, components: list[dict[str, Any]]) -> dict[str, Any]:
        transport = {"type": "rawsocket", "serializer": "cbor",
                     "endpoint": {"type": "unix", "path": self.backend_socket}}
        hosted = []
        for i, component in enumerate(components):
            # A container component joins anonymously; its role comes from the
            # router transport, so the router-side "role" does not apply.
            component.pop("role", None)
            hosted.append({**component, "id": f"etcdwamp{i}", "transport": transport})
        # The title names the process, so worker_pid() finds it in the tree
        # (Crossbar otherwise titles every container worker alike).
        return {"id": self.CONTAINER_ID, "type": "container",
                "options": {"title": _worker_title(self.CONTAINER_ID)}, "components": hosted}

    def worker_pid(self, worker_id: str) -> int | None:
        """The PID of the node's worker process ``worker_id`` (None if not running)."""
        if self.process is None:
            return None
        # Titled workers show their title; untitled ones (no setproctitle)
        # keep the command line, where "--worker <id>" names them.
        title, wanted = _worker_title(worker_id), ["--worker", worker_id]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    # "pid (comm) state ppid ...": comm may hold spaces, so
                    # split after its closing parenthesis.
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid != self.process.pid:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().decode(errors="replace").rstrip("\0").split("\0")
            except (OSError, IndexError, ValueError):
                continue  # exited meanwhile
            if (args[0].strip() == title
                    or any(args[i:i + 2] == wanted for i in range(len(args) - 1))):
                return int(entry)
        return None

    @property
    def url(self) -> str:
        """The WebSocket URL of the node's WAMP transport."""
        return f"ws://{_HOST}:{self.port}/ws"

    @property
    def backend_url(self) -> str:
        """The WebSocket URL where backend components join (ticket auth, ``backend`` role)."""
        return f"ws://{_HOST}:{self.port}/{BACKEND_PATH}"

    @property
    def http_url(self) -> str:
        """The node's web root (the demo page)."""
        return f"http://{_HOST}:{self.port}/"

    def start(self, timeout: float = 60.0) -> CrossbarNode:
        """Start Crossbar and wait until the node booted, the component registered its procedures
        and the port accepts connections; returns the node.

        :raises FileNotFoundError: no ``crossbar`` executable
        :raises RuntimeError: Crossbar exited, or the component refused its config or
            could not reach etcd as configured (its start-up check)
        :raises TimeoutError: not ready within ``timeout`` seconds
        """
        # The crossbar beside this Python first: it imports the same etcdwamp.
        beside = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "crossbar")
        crossbar = beside if os.path.exists(beside) else shutil.which("crossbar")
        if crossbar is None:
            raise FileNotFoundError("crossbar not found: pip install crossbar")
        with open(self.log_path, "ab") as log:
            # The edge personality is the one that hands the node management
            # API to router components (WorkerControl).
            personality = ["edge"] if self.container else []
            self.process = subprocess.Popen(
                [crossbar, *personality, "start", "--cbdir", self.cbdir, "--loglevel", "info"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.tmpdir,
                start_new_session=True, env=self.env)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"crossbar exited:\n{self.log_tail()}")
            booted = self.log_tail(100_000)
            if any(refusal in booted for refusal in _COMPONENT_REFUSALS):
                raise RuntimeError(f"the component refused to start:\n{self.log_tail()}")
            # Crossbar starts components before transports, and a transport's
            # web services (the "ws" path) after it listens: only a booted
            # node serves WAMP at the URL.
            hosted = self.component_loop == "twisted" and self.instances > 0
            if (("procedures under" in booted or not hosted) and "NODE_BOOT_COMPLETE" in booted
                    and self._accepting()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"crossbar not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.2)
        if self.component_loop == "asyncio":
            # Started together, awaited together: each takes seconds to import.
            started = [self._spawn_component() for _ in range(self.instances)]
            for process, log_path in started:
                self._await_component(process, log_path, deadline)
        return self

    def start_component(self, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        """Start one more asyncio component process and wait until it registered its
        procedures; returns the process. On a node whose components Crossbar hosts
        (``component_loop="twisted"``) it joins them: both kinds serve side by side.

        :raises RuntimeError: the process exited, or the component refused its config
        :raises TimeoutError: not registered within ``timeout`` seconds
        """
        process, log_path = self._spawn_component()
        self._await_component(process, log_path, time.monotonic() + timeout)
        return process

    def _spawn_component(self) -> tuple[subprocess.Popen[bytes], str]:
        if self.component_config is None:
            raise RuntimeError("the node config has no etcdwamp component to take extra from")
        log_path = os.path.join(self.tmpdir, f"component-{len(self.components)}.log")
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "etcdwamp.asyncio.component", "--router",
                 self.backend_url, "--realm", self.realm, "--config", self.component_config],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.tmpdir,
                start_new_session=True, env=self.env)
        self.components.append(process)
        self.component_logs.append(log_path)
        return process, log_path

    @staticmethod
    def _await_component(process: subprocess.Popen[bytes], log_path: str,
                         deadline: float) -> None:
        while True:
            said = _tail(log_path, 100_000)
            if "procedures under" in said:
                return
            if process.poll() is not None or any(r in said for r in _COMPONENT_REFUSALS):
                raise RuntimeError(f"the asyncio component ended:\n{_tail(log_path, 60)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the asyncio component did not register in "
                                   f"time:\n{_tail(log_path, 60)}")
            time.sleep(0.1)

    def _accepting(self) -> bool:
        try:
            with socket.create_connection((_HOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the node's log ("" if there is none yet), followed by
        the last ``lines`` of each asyncio component process's output."""
        tails = [_tail(self.log_path, lines)]
        tails += [_tail(path, lines) for path in self.component_logs]
        return "".join(tails)

    def stop(self) -> None:
        """Stop the asyncio components (SIGTERM, SIGKILL after 20 s) and then the node (SIGINT;
        SIGKILL to its group after 20 s), and delete its directory."""
        for process in self.components:
            _stop_process(process, signal.SIGTERM)
        if self.process is not None and self.process.poll() is None:
            # SIGINT is crossbar's orderly shutdown; the whole session (router
            # worker processes included) goes if it does not finish in time.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        self.process = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> CrossbarNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
