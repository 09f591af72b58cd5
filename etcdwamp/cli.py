"""``etcdwamp``: an etcd command line with etcdctl's habits, over this library.

Global options (before or after the command): ``--endpoints`` (comma-separated
``host:port`` or URLs; default ``$ETCDWAMP_ENDPOINTS``, then
``$ETCDCTL_ENDPOINTS``, then http://127.0.0.1:2379), ``--user NAME[:PASSWORD]``
and ``--password`` (asked for when missing), ``--cacert``, ``--cert``,
``--key``, ``--timeout``, ``-w/--write-out simple|json|table``.

Commands: ``get``, ``put``, ``del``, ``watch``, ``lease grant|revoke|ttl``,
``lock``, ``status``, ``compact``, ``export``, ``import``, and the operator
commands of :mod:`etcdwamp.cli_ops` (``member``, ``endpoint``, ``alarm``,
``defrag``, ``snapshot``, ``move-leader``, ``user``, ``role``, ``auth``).
``etcdwamp COMMAND --help`` describes each.

Errors are one line on stderr (``etcdwamp: error: ...``); the exit status is 1
for a failure and 2 for a usage error. ``ETCDWAMP_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import getpass
import json
import os
import shutil
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, NoReturn

from twisted.internet import defer, protocol, task
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from . import __version__, errors
from .cli_endpoints import EndpointError, endpoint_urls
from .cli_ops import add_commands as add_operator_commands
from .cli_ops import cmd_endpoint_status
from .cli_transfer_args import TransferError, add_arguments
from .client import Client
from .wire import Header, KeySet, KeyValue
from .wire.watch import EventType

__all__ = ["CliError", "UsageError", "build_parser", "main", "parse_lease_id"]

PROG = "etcdwamp"


_DESCRIPTION = """\
An etcd command line with etcdctl's habits.

Endpoints: --endpoints, else $ETCDWAMP_ENDPOINTS, else $ETCDCTL_ENDPOINTS, else
http://127.0.0.1:2379. Global options go before or after the command.
Errors are one line on stderr; exit status 1 for a failure, 2 for a usage error
(ETCDWAMP_DEBUG=1 adds the traceback)."""


class CliError(Exception):
    """A failure to report as one line and exit status 1."""


class UsageError(CliError):
    """A command given wrongly, found after parsing: one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``etcdwamp: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


Command = Callable[[Client, argparse.Namespace], Awaitable[int]]


# -- output ------------------------------------------------------------------------

def _out(data: bytes) -> None:
    sys.stdout.buffer.write(data)


def _json_out(obj: Any) -> None:
    _out(json.dumps(obj).encode("utf-8") + b"\n")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _header(header: Header) -> dict[str, int]:
    return asdict(header)


def _kv_json(kv: KeyValue) -> dict[str, Any]:
    # As etcdctl -w json: keys and values base64 (they are bytes), lease as a number.
    return {"key": _b64(kv.key), "create_revision": kv.create_revision,
            "mod_revision": kv.mod_revision, "version": kv.version,
            "value": _b64(kv.value), "lease": kv.lease}


def parse_lease_id(text: str) -> int:
    """A lease id as etcdctl prints it: hexadecimal (``694d77aa9e38260f``, ``0x`` allowed)."""
    digits = text[2:] if text.lower().startswith("0x") else text
    try:
        value = int(digits, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hexadecimal lease id: {text!r}") from None
    if not 0 < value < 2**63:
        raise argparse.ArgumentTypeError(f"lease id out of range: {text!r}")
    return value


def _key(text: str) -> bytes:
    return os.fsencode(text)  # what the shell passed, byte for byte


def _keys(key: bytes, prefix: bool) -> bytes | KeySet:
    return KeySet(key, prefix=True) if prefix else key


# -- commands ------------------------------------------------------------------------

async def cmd_get(client: Client, args: argparse.Namespace) -> int:
    result = await client.get(_keys(args.key, args.prefix), limit=args.limit,
                              revision=args.rev, keys_only=args.keys_only)
    if args.write_out == "json":
        _json_out({"header": _header(result.header), "kvs": [_kv_json(kv) for kv in result.kvs],
                   "more": result.more, "count": result.count})
        return 0
    for kv in result.kvs:
        _out(kv.key + b"\n")
        if not args.keys_only:
            _out(kv.value + b"\n")
    return 0


async def cmd_put(client: Client, args: argparse.Namespace) -> int:
    if args.value is not None:
        value = _key(args.value)
    else:
        if sys.stdin.isatty():
            print("reading the value from stdin (end with Ctrl-D)", file=sys.stderr)
        value = sys.stdin.buffer.read()
        if not value:
            # As etcdctl: an empty stdin is more often a mistake (a variable that was
            # empty, a file not there) than a wish; an empty value is asked for as "".
            raise UsageError('put needs a value: give it after the key ("" for an empty '
                             "value) or on standard input, which was empty")
    result = await client.put(args.key, value, lease=args.lease)
    if args.write_out == "json":
        _json_out({"header": _header(result.header)})
    else:
        _out(b"OK\n")
    return 0


async def cmd_del(client: Client, args: argparse.Namespace) -> int:
    result = await client.delete(_keys(args.key, args.prefix))
    if args.write_out == "json":
        _json_out({"header": _header(result.header), "deleted": result.deleted})
    else:
        _out(b"%d\n" % result.deleted)
    return 0


async def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    stopped: Deferred[None] = Deferred()

    def show(batch: Any) -> None:
        if stopped.called:
            return
        try:
            for event in batch.events:
                if args.write_out == "json":
                    _json_out({"type": event.type.value, "kv": _kv_json(event.kv),
                               "revision": event.revision})
                else:
                    value = event.kv.value if event.type is EventType.PUT else b""
                    _out(event.type.value.encode() + b"\n" + event.kv.key + b"\n"
                         + value + b"\n")
            sys.stdout.flush()  # a reader at the other end of a pipe sees each event now
        except BrokenPipeError as exc:
            # The watch logs and survives callback errors; a closed stdout must end it.
            stopped.errback(exc)

    watch = client.watch(_keys(args.key, args.prefix), show, start_revision=args.rev)
    ended = defer.DeferredList([watch.finished, stopped], fireOnOneCallback=True,
                               fireOnOneErrback=True, consumeErrors=True)
    try:
        await ended
    except defer.FirstError as exc:
        failure: Any = exc.subFailure
        raise failure.value from None
    finally:
        if not watch.finished.called:
            await watch.cancel()
    return 0


async def cmd_lease(client: Client, args: argparse.Namespace) -> int:
    json_out = args.write_out == "json"
    if args.lease_command == "grant":
        granted = await client.lease_grant(args.ttl)
        if json_out:
            _json_out({"header": _header(granted.header), "ID": granted.id, "TTL": granted.ttl})
        else:
            print(f"lease {granted.id:016x} granted with TTL({granted.ttl}s)")
    elif args.lease_command == "revoke":
        revoked = await client.lease_revoke(args.id)
        if json_out:
            _json_out({"header": _header(revoked.header)})
        else:
            print(f"lease {args.id:016x} revoked")
    else:
        info = await client.lease_time_to_live(args.id, keys=args.keys)
        if json_out:
            _json_out({"header": _header(info.header), "ID": info.id, "TTL": info.ttl,
                       "granted-ttl": info.granted_ttl, "keys": [_b64(k) for k in info.keys]})
        elif info.ttl == -1:
            print(f"lease {args.id:016x} already expired")
        else:
            text = f"lease {args.id:016x} granted with TTL({info.granted_ttl}s), " \
                   f"remaining({info.ttl}s)"
            if args.keys:
                text += ", attached keys([" + " ".join(os.fsdecode(k) for k in info.keys) + "])"
            print(text)
    return 0


class _Child(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred[int] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        self.ended.callback(code if code is not None else 128 + (sig or 0))


async def cmd_lock(client: Client, args: argparse.Namespace) -> int:
    command = list(args.child)
    if command and command[0] == "--":
        command = command[1:]
    executable = None
    if command:
        executable = shutil.which(command[0])
        if executable is None:
            raise CliError(f"{command[0]}: command not found")
    lock = client.lock(args.name, ttl=args.ttl)
    await lock.acquire()
    assert lock.key is not None and lock.lease is not None  # for mypy: acquire() set them
    reactor: Any = client._reactor

    shutting_down = False
    running: list[tuple[Any, _Child]] = []  # the command's process and its protocol

    def release_on_shutdown() -> Deferred[None] | None:
        # Ctrl-C (or SIGTERM) stops the reactor with this coroutine suspended: release
        # here so the next holder need not wait for the lease's TTL, and stop the
        # command, which must not go on once the lock is given up.
        nonlocal shutting_down
        shutting_down = True
        for process, child in running:
            if not child.ended.called:
                with contextlib.suppress(Exception):  # it may have exited meanwhile
                    process.signalProcess("TERM")
        return lock.release() if lock.held else None

    trigger = reactor.addSystemEventTrigger("before", "shutdown", release_on_shutdown)
    try:
        if not command:
            # etcdctl's habit: print the key and hold the lock until interrupted.
            print(os.fsdecode(lock.key), flush=True)
            with contextlib.suppress(errors.LeaseExpired):
                await lock.lost
            if shutting_down:
                return 0  # released on Ctrl-C, as asked
            raise CliError(f"lock {os.fsdecode(args.name)} lost: its lease expired")
        env = dict(os.environ, ETCD_LOCK_KEY=os.fsdecode(lock.key),
                   ETCD_LOCK_REV=str(lock.fencing_token))
        child = _Child()
        process = reactor.spawnProcess(child, executable, command, env=env,
                                       childFDs={0: 0, 1: 1, 2: 2})
        running.append((process, child))
        # lock.lost only ever fails (LeaseExpired): as a result, the list sees it
        # (a failure would wait for the command to end, two holders meanwhile).
        lost: Deferred[Any] = lock.lost.addErrback(lambda failure: failure.value)
        ended: Deferred[Any] = child.ended
        first = defer.DeferredList([ended, lost], fireOnOneCallback=True, consumeErrors=True)
        outcome, which = await first
        if which == 0:
            return int(outcome)  # the command's exit status
        if shutting_down:
            return 128 + signal.SIGINT  # Ctrl-C reached the command too
        # Mutual exclusion is gone: stop the command rather than let it run unguarded.
        process.signalProcess("TERM")
        await child.ended
        raise CliError(f"lock {os.fsdecode(args.name)} lost while {command[0]} ran; "
                       "it was sent SIGTERM")
    finally:
        if not shutting_down:  # else the trigger ran and is gone, and released the lock
            reactor.removeSystemEventTrigger(trigger)
            if lock.held:
                await lock.release()


async def cmd_compact(client: Client, args: argparse.Namespace) -> int:
    result = await client.compact(args.revision, physical=args.physical)
    if args.write_out == "json":
        _json_out({"header": _header(result.header), "revision": args.revision})
    else:
        print(f"compacted revision {args.revision}")
    return 0


async def cmd_export(client: Client, args: argparse.Namespace) -> int:
    # Imported here: the pmap codecs and tqdm cost every other command start-up time.
    from .cli_transfer import do_export

    return await do_export(client, args)


async def cmd_import(client: Client, args: argparse.Namespace) -> int:
    from .cli_transfer import do_import

    return await do_import(client, args)


# -- parser ------------------------------------------------------------------------

def _nonnegative(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {n}")
    return n


def _positive_int(text: str) -> int:
    n = _nonnegative(text)
    if n == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _seconds(text: str) -> float:
    try:
        n = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not n > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return n


def _add_globals(p: argparse.ArgumentParser, *, top: bool) -> None:
    # On the subcommands the defaults are SUPPRESS, so that a global option given
    # before the command is not reset by the subcommand's default.
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("global options")
    g.add_argument("--endpoints", default=default(None), metavar="LIST",
                   help="comma-separated host:port or URLs (default: $ETCDWAMP_ENDPOINTS, "
                        "$ETCDCTL_ENDPOINTS, http://127.0.0.1:2379)")
    g.add_argument("--user", default=default(None), metavar="NAME[:PASSWORD]",
                   help="authenticate as this user")
    g.add_argument("--password", default=default(None),
                   help="the user's password (asked for when --user has none)")
    g.add_argument("--cacert", default=default(None), metavar="FILE",
                   help="CA bundle to verify the servers (https)")
    g.add_argument("--cert", default=default(None), metavar="FILE",
                   help="client certificate (with --key)")
    g.add_argument("--key", dest="key_file", default=default(None), metavar="FILE",
                   help="client private key (with --cert)")
    g.add_argument("--timeout", type=_seconds, default=default(10.0), metavar="SECONDS",
                   help="per request, failover included (default 10)")
    g.add_argument("--attempt-timeout", type=_seconds, default=default(2.0), metavar="SECONDS",
                   help="how long a read waits on one endpoint before trying the next "
                        "(default 2)")
    g.add_argument("-w", "--write-out", choices=("simple", "json", "table"),
                   default=default("simple"),
                   help="output format (default simple; table: the operator commands)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options and every command."""
    p = _Parser(prog=PROG, description=_DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_globals(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Command, help_text: str) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help_text, description=help_text)
        _add_globals(s, top=False)
        s.set_defaults(run=run)
        return s

    s = command("get", cmd_get, "read a key, or the keys under a prefix")
    s.add_argument("key", type=_key)
    s.add_argument("--prefix", action="store_true", help="every key starting with KEY")
    s.add_argument("--limit", type=_nonnegative, default=0, help="at most N keys (0: all)")
    s.add_argument("--rev", type=_nonnegative, default=0, help="read at revision R")
    s.add_argument("--keys-only", action="store_true", help="print keys without values")

    s = command("put", cmd_put, 'write a value (from stdin when VALUE is missing; "" for an '
                "empty value)")
    s.add_argument("key", type=_key)
    s.add_argument("value", nargs="?")
    s.add_argument("--lease", type=parse_lease_id, default=0, help="attach to this lease (hex)")

    s = command("del", cmd_del, "delete a key, or the keys under a prefix; prints how many")
    s.add_argument("key", type=_key)
    s.add_argument("--prefix", action="store_true")

    s = command("watch", cmd_watch, "print changes until Ctrl-C (resumes across etcd "
                "restarts without losing or repeating an event)")
    s.add_argument("key", type=_key)
    s.add_argument("--prefix", action="store_true")
    s.add_argument("--rev", type=_nonnegative, default=0,
                   help="start at revision R (replays history from there)")

    s = command("lease", cmd_lease, "grant, revoke or inspect a lease")
    leases = s.add_subparsers(dest="lease_command", required=True, metavar="grant|revoke|ttl")
    grant = leases.add_parser("grant", help="grant a lease of TTL seconds")
    grant.add_argument("ttl", type=_positive_int)
    revoke = leases.add_parser("revoke", help="revoke a lease (deletes its keys)")
    revoke.add_argument("id", type=parse_lease_id)
    ttl = leases.add_parser("ttl", help="remaining time of a lease")
    ttl.add_argument("id", type=parse_lease_id)
    ttl.add_argument("--keys", action="store_true", help="also list the attached keys")
    for one in (grant, revoke, ttl):
        _add_globals(one, top=False)

    s = command("lock", cmd_lock, "hold a lock while COMMAND runs (its exit status is ours); "
                "without COMMAND print the key and hold it until Ctrl-C")
    s.add_argument("name", type=_key)
    s.add_argument("--ttl", type=_positive_int, default=10,
                   help="seconds the lock outlives this process if it dies (default 10)")
    s.add_argument("child", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]")

    command("status", cmd_endpoint_status, "version, leader, revision and db size of each "
            "endpoint (the same as endpoint status)")

    s = command("compact", cmd_compact, "discard the history before revision REV")
    s.add_argument("revision", type=_positive_int)
    s.add_argument("--physical", action="store_true", help="wait until the space is freed")

    add_operator_commands(command, lambda nested: _add_globals(nested, top=False))

    s = command("export", cmd_export, "write the keys under --prefix (or a map) to a file")
    add_arguments(s, export=True)
    s.add_argument("--url", help=argparse.SUPPRESS)  # the 0.1 spelling of --endpoints
    s = command("import", cmd_import, "write the records of a file to etcd")
    add_arguments(s, export=False)
    s.add_argument("--url", help=argparse.SUPPRESS)
    return p


# -- running -----------------------------------------------------------------------

def _writes(args: argparse.Namespace) -> bool:
    """Whether the command changes what etcd stores (so that a failure after
    sending may leave it applied)."""
    if args.command in ("put", "del", "compact", "import"):
        return True
    return args.command == "lease" and getattr(args, "lease_command", None) in ("grant",
                                                                               "revoke")


def _message(exc: BaseException, *, write: bool = False) -> str:
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


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    user, password = args.user, args.password
    if user is not None and ":" in user and password is None:
        user, password = user.split(":", 1)
    if user is not None and password is None:
        if sys.stdin.isatty():
            password = getpass.getpass(f"Password for {user}: ")
        else:
            # Piped in (echo "$PW" | etcdwamp --user NAME ...): getpass would only
            # warn that it cannot hide the echo, so read the line ourselves.
            password = sys.stdin.readline().rstrip("\r\n")
    if password is not None and user is None:
        raise CliError("--password needs --user")
    if (args.cert is None) != (args.key_file is None):
        raise CliError("--cert and --key go together")
    for path in (args.cacert, args.cert, args.key_file):
        if path is not None and not os.path.isfile(path):
            raise CliError(f"{path}: no such file")
    return {"timeout": args.timeout, "user": user, "password": password,
            "attempt_timeout": args.attempt_timeout,
            "ca_file": args.cacert, "cert_file": args.cert, "key_file": args.key_file}


def _quiet_stdout() -> None:
    # After EPIPE, point stdout at /dev/null so the interpreter's final flush is silent.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


#: The status of a command whose reader went away (``| head``): what etcdctl and
#: coreutils show, being killed by SIGPIPE (a shell's ``$PIPESTATUS`` says 141).
_CLOSED_PIPE = 128 + signal.SIGPIPE


def _report(exc: BaseException, *, write: bool = False) -> int:
    if isinstance(exc, BrokenPipeError):
        _quiet_stdout()  # the reader went away (| head): not worth a message
        return _CLOSED_PIPE
    if os.environ.get("ETCDWAMP_DEBUG"):
        traceback.print_exception(exc)
    print(f"{PROG}: error: {_message(exc, write=write)}", file=sys.stderr)
    return 2 if isinstance(exc, UsageError) else 1


def run(args: argparse.Namespace) -> int:
    """Run the parsed command on a reactor; the exit status."""
    outcome: list[int] = []

    async def body(reactor: Any) -> None:
        client: Client | None = None
        abandoned = False
        try:
            if getattr(args, "url", None) and args.endpoints is None:
                args.endpoints = args.url
            options = _client_options(args)
            args.client_options = options
            urls = endpoint_urls(args.endpoints,
                                 tls=args.cacert is not None or args.cert is not None)
            client = Client(reactor, endpoints=urls, **options)
            outcome.append(await args.run(client, args))
            sys.stdout.flush()
        except GeneratorExit:
            # The reactor stopped (Ctrl-C) and this coroutine is being discarded:
            # nothing to report, and nothing may be awaited any more.
            abandoned = True
            raise
        except BaseException as exc:
            outcome.append(_report(exc, write=_writes(args)))
        finally:
            if client is not None and not abandoned:
                await client.close()

    def start(reactor: Any) -> Deferred[None]:
        return defer.ensureDeferred(body(reactor))

    with contextlib.suppress(SystemExit):  # react always exits; our status is in outcome
        task.react(start)
    if outcome:
        return outcome[0]
    # The reactor stopped first: Ctrl-C. A lock held without a command is given up
    # as asked (status 0, as etcdctl); anything else, a watch included, was
    # interrupted (128 + SIGINT, as etcdctl's watch and a shell report it).
    released_as_asked = args.command == "lock" and not args.child
    return 0 if released_as_asked else 128 + signal.SIGINT


def main(argv: list[str] | None = None) -> int:
    """The ``etcdwamp`` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (status 2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return run(args)
    except BrokenPipeError:
        _quiet_stdout()
        return _CLOSED_PIPE
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
