"""What the ``etcdwamp`` command line prints: records as etcdctl prints them, and
failures as one line on stderr with an exit status.

Shared by the commands that run without Twisted (:mod:`etcdwamp.cli`) and those that
run on its reactor (:mod:`etcdwamp.cli_reactor`); it imports neither.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import traceback
from dataclasses import asdict
from typing import Any

from . import errors
from .cli_endpoints import EndpointError
from .cli_transfer_args import TransferError
from .wire import Header, KeySet, KeyValue

__all__ = ["CLOSED_PIPE", "PROG", "CliError", "UsageError", "b64", "header_json", "json_out",
           "key_arg", "keys", "kv_json", "message", "out", "quiet_stdout", "report"]

PROG = "etcdwamp"


class CliError(Exception):
    """A failure to report as one line and exit status 1."""


class UsageError(CliError):
    """A command given wrongly, found after parsing: one line and exit status 2."""


# -- records -----------------------------------------------------------------------

def out(data: bytes) -> None:
    """Write ``data`` to stdout as it is (keys and values are bytes)."""
    sys.stdout.buffer.write(data)


def json_out(obj: Any) -> None:
    """Write ``obj`` as one line of JSON."""
    out(json.dumps(obj).encode("utf-8") + b"\n")


def b64(data: bytes) -> str:
    """``data`` in base64, as etcdctl -w json prints keys and values."""
    return base64.b64encode(data).decode("ascii")


def header_json(header: Header) -> dict[str, int]:
    """A response header as etcdctl -w json prints it."""
    return asdict(header)


def kv_json(kv: KeyValue) -> dict[str, Any]:
    """A key-value as etcdctl -w json prints it: key and value base64, lease a number."""
    return {"key": b64(kv.key), "create_revision": kv.create_revision,
            "mod_revision": kv.mod_revision, "version": kv.version,
            "value": b64(kv.value), "lease": kv.lease}


def key_arg(text: str) -> bytes:
    """A key given on the command line: what the shell passed, byte for byte."""
    return os.fsencode(text)


def keys(key: bytes, prefix: bool) -> bytes | KeySet:
    """``key`` alone, or every key under it (``--prefix``)."""
    return KeySet(key, prefix=True) if prefix else key


# -- failures ----------------------------------------------------------------------

def message(exc: BaseException, *, write: bool = False) -> str:
    """The one line reporting ``exc``; ``write``: the command changes what etcd
    stores, so an outcome left open is said to be open."""
    if isinstance(exc, errors.ConnectFailed):
        return f"cannot reach etcd: {exc}"
    if isinstance(exc, errors.IndefiniteAnswer):
        # Its text says both: etcd's answer, and that the request may have been applied.
        return f"outcome unknown: {exc}; read it back before retrying"
    open_outcome = "; it may or may not have been applied" if write else ""
    if isinstance(exc, errors.RequestTimeout):
        return f"no answer in time (--timeout): {exc}{open_outcome}"
    if isinstance(exc, errors.ConnectionLost):
        return f"{exc}{open_outcome}"  # it says "connection to ... lost" itself
    if isinstance(exc, errors.OutcomeUnknown):
        return f"{type(exc).__name__}: {exc}{open_outcome}"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, (CliError, TransferError, EndpointError)):
        return str(exc)
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def quiet_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


#: The status of a command whose reader went away (``| head``): what etcdctl and
#: coreutils show, being killed by SIGPIPE (a shell's ``$PIPESTATUS`` says 141).
CLOSED_PIPE = 128 + signal.SIGPIPE


def report(exc: BaseException, *, write: bool = False) -> int:
    """Print the one line for ``exc``; the exit status it gives."""
    if isinstance(exc, BrokenPipeError):
        quiet_stdout()  # the reader went away (| head): not worth a message
        return CLOSED_PIPE
    if os.environ.get("ETCDWAMP_DEBUG"):
        traceback.print_exception(exc)
    print(f"{PROG}: error: {message(exc, write=write)}", file=sys.stderr)
    return 2 if isinstance(exc, UsageError) else 1
