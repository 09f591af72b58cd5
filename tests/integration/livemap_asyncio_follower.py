"""A program on asyncio that follows map "notes" with :class:`etcdwamp.asyncio.livemap.LiveMap`
over a reconnecting ``autobahn.asyncio`` Component, and reports on stdout, one JSON object
a line: ``{"joined": session_id}``, ``{"state": state}``, ``{"error": type name}`` and
``{"rows": {key: [value, revision]}, "revision": r, "snapshots": n}`` after each change.

A process of its own: importing ``autobahn.asyncio`` picks txaio's framework, and the
test process's WAMP clients are Twisted. SIGTERM stops the live map, leaves, exits 0;
so does the end of stdin (the test process gone), so no follower outlives its test run.

    LIVEMAP_TICKET=... python livemap_asyncio_follower.py URL REALM
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from autobahn.asyncio.component import Component

from etcdwamp.asyncio.livemap import LiveMap
from etcdwamp.wamp.mapcopy import Key, Row


def report(**fields: Any) -> None:
    """One line of news for the test."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def follow(url: str, realm: str, ticket: str) -> None:
    """Follow "notes" until SIGTERM."""
    component = Component(
        transports=[{"type": "websocket", "url": url, "serializers": ["json"],
                     "max_retries": -1, "initial_retry_delay": 0.2,
                     "max_retry_delay": 1.0, "retry_delay_jitter": 0.1}],
        realm=realm,
        authentication={"ticket": {"authid": "writer", "ticket": ticket}},
    )
    live: LiveMap

    def changed(rows: dict[Key, Row], revision: int | None) -> None:
        report(rows={str(k): [r.value, r.revision] for k, r in rows.items()},
               revision=revision, snapshots=live.snapshots)

    live = LiveMap("notes", on_value=changed, on_state=lambda state: report(state=state),
                   on_error=lambda exc: report(error=type(exc).__name__))
    # Before follow's handler: the test knows the session before the read starts.
    component.on("join", lambda session, details: report(joined=details.session))
    live.follow(component)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_reader(sys.stdin.fileno(), lambda: os.read(sys.stdin.fileno(), 4096)
                    or stopping.set())
    running = component.start(loop)
    await asyncio.wait([running, asyncio.ensure_future(stopping.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    live.stop()
    if not running.done():
        await asyncio.wait_for(component.stop(), 10)


if __name__ == "__main__":
    asyncio.run(follow(sys.argv[1], sys.argv[2], os.environ["LIVEMAP_TICKET"]))
