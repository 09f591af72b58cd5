"""Loopback ports and the output and stopping of the processes :mod:`etcdwamp.testing` starts."""

from __future__ import annotations

import random
import socket
import subprocess
from collections import deque

__all__ = ["free_port"]

_HOST = "127.0.0.1"


#: where :func:`free_port` picks from: below Linux's ephemeral range (32768-60999 by
#: default), from which the kernel also takes the local port of every outgoing
#: connection; a port picked there could be taken by a connection of another test
#: between the pick and the server binding it ("address already in use", seen in CI)
_PORTS = range(20000, 32000)


#: the ports this process handed out lately: a port picked and not yet bound by its
#: server is free to bind, so without this a second pick (the next member of the same
#: cluster) could get it too ("address already in use", seen in CI)
_RECENT: deque[int] = deque(maxlen=2000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, outside the ephemeral range, and
    not one of the last 2,000 this process handed out."""
    for _ in range(200):
        port = random.choice(_PORTS)
        if port in _RECENT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((_HOST, port))
            except OSError:
                continue
            _RECENT.append(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))  # that whole range busy: let the kernel choose
        chosen: int = sock.getsockname()[1]
        return chosen



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
