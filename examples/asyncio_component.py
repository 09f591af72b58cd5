"""The etcdwamp WAMP component on asyncio, in your own asyncio program.

Crossbar routes (and stays Twisted); this process joins it from outside and
serves the same procedures, topics and rules as the component Crossbar
hosts, configured by the same ``extra`` (here the demo's, from
crossbar/.crossbar/config.json, with your etcd), through
``etcdwamp.asyncio.Client``:

    ETCDWAMP_BACKEND_TICKET=... python examples/asyncio_component.py \\
        --router ws://127.0.0.1:8080/backend --etcd http://127.0.0.1:2379

It prints one line once it serves, and leaves the realm in order on Ctrl-C or
SIGTERM (its publisher resigns, so another instance takes over at once). The
router needs a ``/backend`` path for the ``backend`` principal (the snippet is
in ``etcdwamp.asyncio.component``'s docstring; ``etcdwamp.testing.CrossbarNode``
adds it); the ticket is the one that node was started with (its
``ETCDWAMP_BACKEND_TICKET``), read from the environment, never written down.
Without a program of your own around it, ``python -m etcdwamp.asyncio.component``
does the same.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from etcdwamp.asyncio.component import component, load_config, serve, start_logging

CONFIG = Path(__file__).resolve().parents[1] / "crossbar" / ".crossbar" / "config.json"


async def run(router: str, etcd: str, ticket: str) -> None:
    extra, realm = load_config(str(CONFIG))
    extra["etcd"] = {**extra["etcd"], "endpoints": [etcd]}
    wamp = component(router, realm=realm or "realm1", extra=extra, ticket=ticket)
    prefix = extra.get("prefix", "etcd")

    @wamp.on_ready  # type: ignore[untyped-decorator]
    async def ready(session: Any) -> None:
        # Autobahn on asyncio says "ready" before the session's onJoin is done.
        await session.serving()
        # Any instance may answer: procedures are shared round-robin.
        status = await session.call(f"{prefix}.status")
        print(f"serving {prefix}.* as session {session.session_id}; etcd {status['version']} "
              f"at revision {status['revision']}", flush=True)

    @wamp.on_leave  # type: ignore[untyped-decorator]
    def left(session: Any, details: Any) -> None:
        print(f"left the realm: {details.reason}", flush=True)

    await serve(wamp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--router", default="ws://127.0.0.1:8080/backend")
    parser.add_argument("--etcd", default="http://127.0.0.1:2379")
    args = parser.parse_args()
    ticket = os.environ.get("ETCDWAMP_BACKEND_TICKET")
    if not ticket:
        sys.exit("asyncio_component.py: set ETCDWAMP_BACKEND_TICKET to the node's backend ticket")
    start_logging("warn")
    asyncio.run(run(args.router, args.etcd, ticket))


if __name__ == "__main__":
    main()
