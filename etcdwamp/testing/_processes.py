"""Loopback ports and the output and stopping of the processes :mod:`etcdwamp.testing` starts."""

from __future__ import annotations

import socket
import subprocess

__all__ = ["free_port"]

_HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port



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
