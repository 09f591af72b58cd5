"""Throw-away Crossbar nodes generated from a committed node config, on a free port."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ._processes import _HOST, _stop_process, _tail, free_port

__all__ = ["BACKEND_PATH", "CrossbarNode"]

#: the class of the operator web transport's root (``/metrics``, ``/health``): that
#: transport gets a port of its own
OPERATOR_RESOURCE = "etcdwamp.wamp.metrics_web.OperatorResource"

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
        #: the operator transport's port (``/metrics``, ``/health``); None without one
        self.metrics_port: int | None = None
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
                root = transport.get("paths", {}).get("/")
                transport["endpoint"]["interface"] = _HOST
                if root and root.get("classname") == OPERATOR_RESOURCE:
                    self.metrics_port = transport["endpoint"]["port"] = free_port()
                    continue
                transport["endpoint"]["port"] = self.port
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
    def metrics_url(self) -> str:
        """The operator transport's URL (``/metrics``, ``/health`` under it).

        :raises ValueError: the config has no operator transport
        """
        if self.metrics_port is None:
            raise ValueError("the node config has no web transport serving "
                             f"{OPERATOR_RESOURCE}")
        return f"http://{_HOST}:{self.metrics_port}/"

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
