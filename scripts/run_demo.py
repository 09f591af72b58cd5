"""The demo: a throw-away etcd on a free loopback port, the examples against it,
then Crossbar (from crossbar/.crossbar/config.json) serving the live page.

    .venv/bin/python scripts/run_demo.py [--no-serve | --no-examples] [--nodes N]

With ``--nodes N`` (N > 1): a 3-member etcd, N Crossbar nodes and HAProxy in front
of them (from crossbar/haproxy.cfg); the page is served through the balancer.

SIGINT (Ctrl-C), SIGTERM and SIGHUP stop it, however it was started: HAProxy, Crossbar
and etcd are stopped by their PIDs and their temporary directories deleted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from etcdwamp.testing import BalancedNodes, CrossbarNode, EtcdCluster

ROOT = Path(__file__).resolve().parent.parent
# The page lets anyone write notes, and etcd keeps every revision until compacted:
# at its default 2 GiB quota ~2,000 puts of 1 MB raise NOSPACE, which stops every
# write for everyone. So history older than 5 to 10 minutes is compacted (a publisher
# failover or a reconnecting watch needs seconds of it), and the quota is explicit:
# 512 MiB holds more than 30 minutes of writes at the guest rate limit (256 KiB/s).
# See docs/operations.rst, "Bounding storage".
DEMO_QUOTA_BACKEND_BYTES = 512 * 1024 ** 2
DEMO_AUTO_COMPACTION = ("periodic", "5m")
EXAMPLES = ["getting_started.py", "asyncio_client.py", "pmap_users.py", "flatbuffers/users.py"]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CONFIG = ROOT / "crossbar" / ".crossbar" / "config.json"
HAPROXY_TEMPLATE = ROOT / "crossbar" / "haproxy.cfg"
#: etcd members behind several nodes: a cluster that outlives one member, as in production
BALANCED_ETCD_MEMBERS = 3


class Stopped(BaseException):
    """A stop signal arrived; ``args[0]`` is its number. A BaseException, so that no
    ``except Exception`` on the way swallows it before the cleanup runs."""


def _stop(signum: int, frame: FrameType | None) -> None:
    # Further signals are ignored: a second Ctrl-C must not cut the cleanup
    # short and leave etcd or Crossbar behind (it is bounded: SIGKILL after 20 s).
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


def _hold_signals() -> None:
    """Hold the stop signals back while a directory is created that no ``finally`` owns
    yet; :func:`_release_signals`, called first thing in that ``try``, delivers them."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _release_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def shown(path: str | Path) -> str:
    """``path`` as a user pastes it: relative to the working directory if below it."""
    relative = os.path.relpath(path)
    return shlex.quote(str(path) if relative.startswith("..") else relative)


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run ``examples/NAME``; a stop signal kills it. :raises CalledProcessError: it failed"""
    print(f"--- examples/{name}", flush=True)
    command = [sys.executable, str(ROOT / "examples" / name), *args]
    # Held until the process is ours: a signal inside Popen() would leave it running.
    _hold_signals()
    process = subprocess.Popen(command, env=env, preexec_fn=_release_signals)
    try:
        _release_signals()
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if code != 0:
        raise subprocess.CalledProcessError(code, command)


def _stop_strays(timeout: float = 20.0) -> None:
    """Stop, by PID, any child process still running: one whose start a signal cut short
    (in Popen(), before its owner learnt its PID). SIGTERM, then SIGKILL after ``timeout``."""
    strays = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                # "pid (comm) state ppid ...": comm may hold spaces.
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError, ValueError):
            continue  # not a process, or exited meanwhile
        if int(ppid) == os.getpid() and state != "Z":
            strays.append(int(entry))
    for pid in strays:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in strays:
        try:
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.05)
        except ChildProcessError:
            pass  # reaped already


def _wait_for_an_exit(processes: dict[int, str]) -> str:
    """Block until one of our children exits (a stop signal interrupts it); returns the name
    ``processes`` gives its PID ("a child process" if none). The child is left unreaped,
    for its owner's stop()."""
    while True:
        exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        if exited is not None:
            return processes.get(exited.si_pid, f"a child process ({exited.si_pid})")


def _serve(front: CrossbarNode | BalancedNodes, serve: bool, where: str, stops: str) -> int:
    """Run the WAMP example through ``front`` (one node, or the balancer), then, if
    ``serve``, print how to reach the page and block until one of its processes exits
    (1) or a stop signal arrives. ``front`` is started here; its owner stops it."""
    front.start()
    run_example("wamp_notes.py", "--url", front.url, "--seconds", "1", env=front.env)
    if not serve:
        return 0
    notes = shown(ROOT / "examples" / "wamp_notes.py")
    print(f"\nLive demo: open {front.http_url} in a browser: {where} (the page needs no "
          "password).\n"
          f"Writer ticket for this run (authid 'writer'): {front.writer_ticket}\n"
          f"  e.g. ETCDWAMP_WRITER_TICKET={front.writer_ticket} "
          f"{shown(sys.executable)} {notes} --url {front.url}\n"
          f"Ctrl-C stops {stops}.", flush=True)
    if isinstance(front, CrossbarNode) and front.metrics_port is not None:
        print(f"Metrics: {front.metrics_url}metrics, health: {front.metrics_url}health "
              "(loopback only)", flush=True)
    pids: dict[int, str] = {}
    if isinstance(front, CrossbarNode) and front.process is not None:
        pids[front.process.pid] = "crossbar"
    elif isinstance(front, BalancedNodes):
        if front.balancer.process is not None:
            pids[front.balancer.process.pid] = "haproxy"
        for i, node in enumerate(front.nodes):
            if node.process is not None:
                pids[node.process.pid] = f"crossbar {front.server_name(i)}"
    gone = _wait_for_an_exit(pids)
    print(f"{gone} exited:\n{front.log_tail()}", file=sys.stderr, flush=True)
    return 1


def demo(examples: bool, serve: bool, nodes: int = 1) -> int:
    """Run the demo until done or stopped; etcd and Crossbar are stopped on every way out."""
    _hold_signals()
    etcd = EtcdCluster(1 if nodes == 1 else BALANCED_ETCD_MEMBERS,
                       quota_backend_bytes=DEMO_QUOTA_BACKEND_BYTES,
                       auto_compaction=DEMO_AUTO_COMPACTION)
    try:
        _release_signals()
        etcd.start()
        print(f"etcd running at {', '.join(etcd.urls)} (data in {etcd.tmpdir})", flush=True)
        for name in EXAMPLES if examples else []:
            run_example(name, "--url", etcd.url)
        _hold_signals()
        front: CrossbarNode | BalancedNodes
        if nodes == 1:
            front = CrossbarNode(str(CONFIG), etcd.urls)
            where = "two tabs show the same notes, live"
            stops = "Crossbar and etcd"
        else:
            front = BalancedNodes(str(CONFIG), str(HAPROXY_TEMPLATE), etcd.urls, count=nodes)
            where = (f"HAProxy in front of {nodes} Crossbar nodes over {len(etcd.urls)} "
                     "etcd members; each connection goes to the next node")
            stops = "HAProxy, Crossbar and etcd"
        try:
            _release_signals()
            return _serve(front, serve, where, stops)
        finally:
            front.stop()
    finally:
        _stop_strays()
        etcd.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-serve", action="store_true",
                      help="stop after the examples instead of serving the web page")
    mode.add_argument("--no-examples", action="store_true",
                      help="serve the web page at once, without running the examples first")
    parser.add_argument("--nodes", type=int, default=1, metavar="N",
                        help="run N Crossbar nodes behind HAProxy over a 3-member etcd")
    args = parser.parse_args()
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    # Installed whatever the inherited disposition: a shell starting us in the
    # background (non-interactive, no job control) sets SIGINT to "ignore".
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop)
    try:
        code = demo(examples=not args.no_examples, serve=not args.no_serve, nodes=args.nodes)
    except Stopped as stopped:
        print(f"stopped ({signal.Signals(stopped.args[0]).name})", flush=True)
        return 128 + int(stopped.args[0])
    print("stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
