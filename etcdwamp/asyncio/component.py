"""The etcdwamp WAMP component on asyncio, connecting to a Crossbar router from outside.

The same procedures, topics, rules and publisher election as the component
Crossbar hosts (:class:`etcdwamp.wamp.EtcdWampComponent`, Twisted): both are
:class:`~etcdwamp.wamp.session.EtcdWampSession`, configured by the same
``extra`` and validated the same strict way; here the etcd client is
:class:`etcdwamp.asyncio.Client` and the session an
``autobahn.asyncio.component.Component``'s. Crossbar itself stays Twisted;
instances on both frameworks may serve one realm side by side (procedures are
registered ``roundrobin``, and they campaign in one publisher election).

Run it::

    ETCDWAMP_BACKEND_TICKET=... python -m etcdwamp.asyncio.component \\
        --router ws://127.0.0.1:8080/backend --config extra.json [--realm realm1]

``--config`` is a JSON file holding the component's ``extra``, or a Crossbar
node config whose etcdwamp component's ``extra`` (and realm) are taken. The
component authenticates with WAMP-Ticket as ``--authid`` (default
``backend``); the ticket is read from the environment variable named by
``--ticket-env`` (default ``ETCDWAMP_BACKEND_TICKET``), never from a file or
the command line. SIGINT or SIGTERM leaves the realm in order: the publisher
resigns (a waiting candidate gives its lease back), presence leases are
revoked, the etcd client closes (also when a step before failed); stopped
while starting, it ends the start-up first.

The router must admit it with a role that may register and publish under the
prefix and subscribe to ``wamp.session.on_leave`` (the committed node config's
``backend``); callers' roles must disclose the caller, as for the hosted
component. :class:`etcdwamp.testing.CrossbarNode` adds such a path to the web
transport; in a node config of your own, e.g. beside ``"ws"``::

    "backend": {"type": "websocket", "serializers": ["cbor"],
                "auth": {"ticket": {"type": "static", "principals": {
                    "backend": {"ticket": "${ETCDWAMP_BACKEND_TICKET}",
                                "role": "backend"}}}}}

(Crossbar reads the ticket from its environment; it refuses to start while
the variable is unset, which is why the committed demo config, run with the
writer's ticket alone, has no such path.)

In your own asyncio program, :func:`component` builds the Autobahn
``Component``, :func:`serve` runs it until a signal and :func:`start_logging`
shows what it logs (see ``examples/asyncio_component.py``). The session class is
``etcdwamp.asyncio.component.EtcdWampComponent``, loaded on first use.

txaio's framework is chosen per process: importing ``autobahn.asyncio`` (which
this module does on first use, not at import) switches it to asyncio, so the
asyncio component runs in a process of its own, never beside Autobahn's
Twisted sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..wamp.settings import Settings, SettingsError

if TYPE_CHECKING:
    from ..wamp._asyncio import EtcdWampComponent

__all__ = ["component", "load_config", "main", "serve", "start_logging"]

_CLASSNAME = "etcdwamp.wamp.EtcdWampComponent"

# The sessions each Component made, so serve() can wait for their clean-up:
# Autobahn's Component is done at the disconnect, which on asyncio does not
# wait for onLeave to finish.
_sessions: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def __getattr__(name: str) -> Any:
    if name == "EtcdWampComponent":
        from ..wamp._asyncio import EtcdWampComponent

        return EtcdWampComponent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_config(path: str) -> tuple[dict[str, Any], str | None]:
    """The ``extra`` in the JSON file ``path``, validated, and the realm the file names (if any).

    The file is either the ``extra`` object itself or a Crossbar node config,
    whose first component of class ``etcdwamp.wamp.EtcdWampComponent`` gives
    ``extra`` and ``realm``.

    :raises OSError: the file cannot be read
    :raises SettingsError: not JSON, no etcdwamp component in a node config, or an
        invalid ``extra`` (the message names the field)
    """
    with open(path, encoding="utf-8") as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{path}: not JSON: {exc}") from exc
    realm: str | None = None
    if isinstance(raw, Mapping) and "workers" in raw:
        found = [c for w in raw.get("workers") or [] if isinstance(w, Mapping)
                 for c in w.get("components") or []
                 if isinstance(c, Mapping) and c.get("classname") == _CLASSNAME]
        if not found:
            raise SettingsError(f"{path}: a node config without an {_CLASSNAME} component")
        raw, realm = found[0].get("extra", {}), found[0].get("realm")
    Settings.from_extra(raw)
    return dict(raw), realm if isinstance(realm, str) else None


def component(router: str, *, realm: str, extra: Mapping[str, Any], authid: str = "backend",
              ticket: str | None = None, serializers: Sequence[str] = ("cbor",),
              max_retries: int = -1) -> Any:
    """An ``autobahn.asyncio.component.Component`` running the etcdwamp component.

    :param router: the router's WebSocket URL (``ws://`` or ``wss://``)
    :param realm: the realm to join
    :param extra: the component's settings, as Crossbar's ``extra``
    :param authid: the WAMP-Ticket authid (used only with ``ticket``)
    :param ticket: the WAMP-Ticket secret; None joins anonymously
    :param max_retries: reconnections after a lost connection (-1: for ever)
    :raises SettingsError: ``extra`` is invalid
    :raises ValueError: ``router`` is no WebSocket URL, or ``serializers`` is empty
    """
    if not router.startswith(("ws://", "wss://")):
        raise ValueError(f"router must be a ws:// or wss:// URL, not {router!r}")
    if not serializers:
        raise ValueError("serializers must name at least one serializer")
    Settings.from_extra(extra)
    # Here and not at import: this import picks txaio's framework (asyncio).
    from autobahn.asyncio.component import Component as _Component

    from ..wamp._asyncio import EtcdWampComponent

    auth = None if ticket is None else {"ticket": {"authid": authid, "ticket": ticket}}
    made: list[EtcdWampComponent] = []

    def new_session(config: Any) -> EtcdWampComponent:
        session = EtcdWampComponent(config)
        made.append(session)
        return session

    make: Any = _Component  # Autobahn's constructor carries no annotations
    wamp = make(
        transports=[{"type": "websocket", "url": router, "serializers": list(serializers),
                     "max_retries": max_retries}],
        realm=realm, extra=dict(extra), authentication=auth, session_factory=new_session)
    _sessions[wamp] = made
    return wamp


async def serve(wamp: Any, *, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)
                ) -> None:
    """Run the Autobahn ``Component`` ``wamp`` until it is done; each of ``signals`` stops it
    in order (the session leaves the realm, which stops the publisher and closes etcd).
    Returns once the clean-up of every session :func:`component` made for it is done.

    :raises Exception: what ended the component (e.g. the router refused the connection
        and no retries were left)
    """
    loop = asyncio.get_running_loop()
    done = wamp.start(loop)

    def stop() -> None:
        wamp.stop()

    for sig in signals:
        loop.add_signal_handler(sig, stop)
    try:
        await done
    finally:
        try:
            for session in _sessions.get(wamp, []):
                await session.closed()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)


def start_logging(level: str = "info") -> None:
    """Log Autobahn's messages and the component's own (which the shared services write
    to Twisted's logger) to stderr, as lines, at ``level`` and above.

    Sets txaio's framework to asyncio: call it in the asyncio component's process only."""
    import txaio
    from twisted.logger import ILogObserver, STDLibLogObserver, globalLogBeginner

    txaio_api: Any = txaio  # its functions are bound at run time (txaio.use_asyncio)
    # This process runs the asyncio component: say so even if nothing imported
    # autobahn.asyncio yet (txaio refuses to log before a framework is chosen).
    txaio_api.use_asyncio()
    txaio_api.start_logging(level=level)
    # The shared services log through twisted.logger; hand it to the stdlib
    # logging txaio just set up, so one stream holds everything.
    observer = ILogObserver(STDLibLogObserver(name="etcdwamp"))
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status.

    2: invalid arguments or settings (nothing connected); 1: the component ended with an
    error; 0: it was stopped.
    """
    parser = argparse.ArgumentParser(
        prog="python -m etcdwamp.asyncio.component",
        description="Run the etcdwamp WAMP component on asyncio against a Crossbar router.")
    parser.add_argument("--router", required=True, help="the router's ws:// or wss:// URL")
    parser.add_argument("--config", required=True,
                        help="JSON file: the component's extra, or a Crossbar node config")
    parser.add_argument("--realm", help="the realm (default: the node config's, else realm1)")
    parser.add_argument("--authid", default="backend", help="WAMP-Ticket authid")
    parser.add_argument("--ticket-env", default="ETCDWAMP_BACKEND_TICKET",
                        help="environment variable holding the ticket ('' joins anonymously)")
    parser.add_argument("--serializer", action="append", dest="serializers",
                        choices=["cbor", "msgpack", "json"], help="(repeatable; default cbor)")
    parser.add_argument("--max-retries", type=int, default=-1,
                        help="reconnections after a lost connection (-1: for ever)")
    parser.add_argument("--loglevel", default="info",
                        choices=["debug", "info", "warn", "error", "critical"])
    args = parser.parse_args(argv)
    ticket = None
    if args.ticket_env:
        ticket = os.environ.get(args.ticket_env)
        if not ticket:
            print(f"etcdwamp: set {args.ticket_env} to the router's ticket for "
                  f"{args.authid!r} (or pass --ticket-env '' to join anonymously)",
                  file=sys.stderr)
            return 2
    try:
        extra, named_realm = load_config(args.config)
        wamp = component(args.router, realm=args.realm or named_realm or "realm1",
                         extra=extra, authid=args.authid, ticket=ticket,
                         serializers=args.serializers or ["cbor"],
                         max_retries=args.max_retries)
    except (OSError, ValueError) as exc:  # SettingsError is a ValueError
        print(f"etcdwamp: {exc}", file=sys.stderr)
        return 2
    start_logging(args.loglevel)
    try:
        asyncio.run(serve(wamp))
    except Exception as exc:
        logging.getLogger("etcdwamp").error("etcdwamp: the component ended: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
