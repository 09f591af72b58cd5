"""The ``etcdwamp`` commands that run on Twisted's reactor: everything but ``get``,
``put`` and ``del``, which run without it (:mod:`etcdwamp.blocking`).

Imported only when such a command runs: the reactor and Twisted's HTTP client
take longer to import than a one-shot command takes to run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
from typing import Any

from twisted.internet import defer, protocol, task
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from . import errors
from .cli_output import CliError, json_out, keys, kv_json, out, report
from .client import Client
from .wire.watch import EventType

__all__ = ["cmd_lock", "cmd_watch", "run"]


async def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    """``watch KEY [--prefix] [--rev R]``: print each event until Ctrl-C or a closed stdout."""
    stopped: Deferred[None] = Deferred()

    def show(batch: Any) -> None:
        if stopped.called:
            return
        try:
            for event in batch.events:
                if args.write_out == "json":
                    json_out({"type": event.type.value, "kv": kv_json(event.kv),
                               "revision": event.revision})
                else:
                    value = event.kv.value if event.type is EventType.PUT else b""
                    out(event.type.value.encode() + b"\n" + event.kv.key + b"\n"
                         + value + b"\n")
            sys.stdout.flush()  # a reader at the other end of a pipe sees each event now
        except BrokenPipeError as exc:
            # The watch logs and survives callback errors; a closed stdout must end it.
            stopped.errback(exc)

    watch = client.watch(keys(args.key, args.prefix), show, start_revision=args.rev)
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


class _Child(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred[int] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        self.ended.callback(code if code is not None else 128 + (sig or 0))


async def cmd_lock(client: Client, args: argparse.Namespace) -> int:
    """``lock NAME [-- COMMAND...]``: hold the lock while the command runs (its status is
    ours), or print the key and hold it until Ctrl-C; a lost lease stops the command."""
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


def run(args: argparse.Namespace, urls: list[str], options: dict[str, Any],
        writes: bool) -> int:
    """Run the parsed command (``args.run``) on a reactor with a :class:`Client` of
    ``urls`` and ``options``; the exit status. ``writes``: the command changes what
    etcd stores (a failure says its outcome is open)."""
    outcome: list[int] = []

    async def body(reactor: Any) -> None:
        client: Client | None = None
        abandoned = False
        try:
            client = Client(reactor, endpoints=urls, **options)
            outcome.append(await args.run(client, args))
            sys.stdout.flush()
        except GeneratorExit:
            # The reactor stopped (Ctrl-C) and this coroutine is being discarded:
            # nothing to report, and nothing may be awaited any more.
            abandoned = True
            raise
        except BaseException as exc:
            outcome.append(report(exc, write=writes))
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
