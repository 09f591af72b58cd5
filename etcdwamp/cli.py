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
import getpass
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from .blocking import BlockingClient
from .cli_endpoints import endpoint_urls
from .cli_output import (
    CLOSED_PIPE,
    PROG,
    CliError,
    UsageError,
    b64,
    header_json,
    json_out,
    key_arg,
    keys,
    kv_json,
    message,
    out,
    quiet_stdout,
    report,
)
from .cli_transfer_args import add_arguments

if TYPE_CHECKING:
    from .client import Client

__all__ = ["CliError", "UsageError", "build_parser", "main", "parse_lease_id"]

_DESCRIPTION = """\
An etcd command line with etcdctl's habits.

Endpoints: --endpoints, else $ETCDWAMP_ENDPOINTS, else $ETCDCTL_ENDPOINTS, else
http://127.0.0.1:2379. Global options go before or after the command.
Errors are one line on stderr; exit status 1 for a failure, 2 for a usage error
(ETCDWAMP_DEBUG=1 adds the traceback)."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``etcdwamp: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


#: a command that runs on the reactor with a :class:`~etcdwamp.client.Client`
Command = Callable[["Client", argparse.Namespace], Awaitable[int]]
#: a command that sends one request, run without Twisted (start-up time)
Blocking = Callable[[BlockingClient, argparse.Namespace], int]

# The names the rest of the package and its tests knew these by.
_message = message
_key = key_arg


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


# -- commands ------------------------------------------------------------------------

def cmd_get(client: BlockingClient, args: argparse.Namespace) -> int:
    result = client.get(keys(args.key, args.prefix), limit=args.limit,
                        revision=args.rev, keys_only=args.keys_only)
    if args.write_out == "json":
        json_out({"header": header_json(result.header), "kvs": [kv_json(kv) for kv in result.kvs],
                  "more": result.more, "count": result.count})
        return 0
    for kv in result.kvs:
        out(kv.key + b"\n")
        if not args.keys_only:
            out(kv.value + b"\n")
    return 0


def cmd_put(client: BlockingClient, args: argparse.Namespace) -> int:
    if args.value is not None:
        value = key_arg(args.value)
    else:
        if sys.stdin.isatty():
            print("reading the value from stdin (end with Ctrl-D)", file=sys.stderr)
        value = sys.stdin.buffer.read()
        if not value:
            # As etcdctl: an empty stdin is more often a mistake (a variable that was
            # empty, a file not there) than a wish; an empty value is asked for as "".
            raise UsageError('put needs a value: give it after the key ("" for an empty '
                             "value) or on standard input, which was empty")
    result = client.put(args.key, value, lease=args.lease)
    if args.write_out == "json":
        json_out({"header": header_json(result.header)})
    else:
        out(b"OK\n")
    return 0


def cmd_del(client: BlockingClient, args: argparse.Namespace) -> int:
    result = client.delete(keys(args.key, args.prefix))
    if args.write_out == "json":
        json_out({"header": header_json(result.header), "deleted": result.deleted})
    else:
        out(b"%d\n" % result.deleted)
    return 0


async def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    from .cli_reactor import cmd_watch as watch

    return await watch(client, args)


async def cmd_lease(client: Client, args: argparse.Namespace) -> int:
    as_json = args.write_out == "json"
    if args.lease_command == "grant":
        granted = await client.lease_grant(args.ttl)
        if as_json:
            json_out({"header": header_json(granted.header), "ID": granted.id, "TTL": granted.ttl})
        else:
            print(f"lease {granted.id:016x} granted with TTL({granted.ttl}s)")
    elif args.lease_command == "revoke":
        revoked = await client.lease_revoke(args.id)
        if as_json:
            json_out({"header": header_json(revoked.header)})
        else:
            print(f"lease {args.id:016x} revoked")
    else:
        info = await client.lease_time_to_live(args.id, keys=args.keys)
        if as_json:
            json_out({"header": header_json(info.header), "ID": info.id, "TTL": info.ttl,
                       "granted-ttl": info.granted_ttl, "keys": [b64(k) for k in info.keys]})
        elif info.ttl == -1:
            print(f"lease {args.id:016x} already expired")
        else:
            text = f"lease {args.id:016x} granted with TTL({info.granted_ttl}s), " \
                   f"remaining({info.ttl}s)"
            if args.keys:
                text += ", attached keys([" + " ".join(os.fsdecode(k) for k in info.keys) + "])"
            print(text)
    return 0


async def cmd_lock(client: Client, args: argparse.Namespace) -> int:
    from .cli_reactor import cmd_lock as lock

    return await lock(client, args)


async def cmd_compact(client: Client, args: argparse.Namespace) -> int:
    result = await client.compact(args.revision, physical=args.physical)
    if args.write_out == "json":
        json_out({"header": header_json(result.header), "revision": args.revision})
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


def _get_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("key", type=_key)
    s.add_argument("--prefix", action="store_true", help="every key starting with KEY")
    s.add_argument("--limit", type=_nonnegative, default=0, help="at most N keys (0: all)")
    s.add_argument("--rev", type=_nonnegative, default=0, help="read at revision R")
    s.add_argument("--keys-only", action="store_true", help="print keys without values")


def _put_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("key", type=_key)
    s.add_argument("value", nargs="?")
    s.add_argument("--lease", type=parse_lease_id, default=0, help="attach to this lease (hex)")


def _del_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("key", type=_key)
    s.add_argument("--prefix", action="store_true")


#: the commands that send one request, run without Twisted: name -> (run, help, arguments)
ONE_REQUEST: dict[str, tuple[Blocking, str, Callable[[argparse.ArgumentParser], None]]] = {
    "get": (cmd_get, "read a key, or the keys under a prefix", _get_arguments),
    "put": (cmd_put, 'write a value (from stdin when VALUE is missing; "" for an empty value)',
            _put_arguments),
    "del": (cmd_del, "delete a key, or the keys under a prefix; prints how many",
            _del_arguments),
}

#: the global options that take a value (as ``--name VALUE``; ``--name=VALUE`` is one word)
_VALUED_GLOBALS = frozenset(("--endpoints", "--user", "--password", "--cacert", "--cert",
                             "--key", "--timeout", "--attempt-timeout", "-w", "--write-out"))


def command_name(argv: list[str]) -> str | None:
    """The command ``argv`` names: its first word that is neither a global option
    nor an option's value (as the top-level parser reads it), or None."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word in _VALUED_GLOBALS:
            next(words, None)
        elif not word.startswith("-") or word == "-":
            return word
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line: global options and every command, or with ``only`` one of
    :data:`ONE_REQUEST` (building ~60 subcommands costs more than running ``get``)."""
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

    for name, (run, help_text, arguments) in ONE_REQUEST.items():
        if only is None or name == only:
            one = sub.add_parser(name, help=help_text, description=help_text)
            _add_globals(one, top=False)
            one.set_defaults(blocking=run)
            arguments(one)
    if only is not None:
        return p
    # The operator commands' module, only when they may run (start-up time).
    from .cli_ops import add_commands as add_operator_commands
    from .cli_ops import cmd_endpoint_status

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
    for nested in (grant, revoke, ttl):
        _add_globals(nested, top=False)

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


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; the exit status."""
    writes = _writes(args)
    try:
        if getattr(args, "url", None) and args.endpoints is None:
            args.endpoints = args.url
        options = _client_options(args)
        urls = endpoint_urls(args.endpoints,
                             tls=args.cacert is not None or args.cert is not None)
    except Exception as exc:
        return report(exc, write=writes)
    blocking: Blocking | None = getattr(args, "blocking", None)
    if blocking is None:
        from .cli_reactor import run as run_on_reactor

        return run_on_reactor(args, urls, options, writes)
    try:
        with BlockingClient(urls, **options) as client:
            status = blocking(client, args)
            sys.stdout.flush()
            return status
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        return report(exc, write=writes)


def main(argv: list[str] | None = None) -> int:
    """The ``etcdwamp`` console script; returns the exit status."""
    words = sys.argv[1:] if argv is None else argv
    name = command_name(words)
    try:
        args = build_parser(only=name if name in ONE_REQUEST else None).parse_args(words)
    except SystemExit as exc:  # --help, --version, or a usage error (status 2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return run(args)
    except BrokenPipeError:
        quiet_stdout()
        return CLOSED_PIPE
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
