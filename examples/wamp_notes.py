"""The browser demo from the command line: list the "notes" map, write one note,
and print live changes, through the etcdwamp component in Crossbar.

    ETCDWAMP_WRITER_TICKET=... python examples/wamp_notes.py --url ws://HOST:PORT/ws [--seconds 5]

The writer's ticket is the one the Crossbar node was started with (its
``ETCDWAMP_WRITER_TICKET``); it is read from the environment, never written down.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from autobahn.twisted.component import Component
from twisted.internet import reactor, task
from twisted.internet.task import deferLater


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to watch")
    args = parser.parse_args()
    ticket = os.environ.get("ETCDWAMP_WRITER_TICKET")
    if not ticket:
        sys.exit("wamp_notes.py: set ETCDWAMP_WRITER_TICKET to the node's writer ticket")
    component = Component(
        transports=[{"url": args.url, "max_retries": 0}], realm="realm1",
        authentication={"ticket": {"authid": "writer", "ticket": ticket}})

    @component.on_join  # type: ignore[untyped-decorator]
    async def joined(session: Any, details: Any) -> None:
        def changed(event: dict[str, Any]) -> None:
            print(f"change: {event['op']} {event['key']} = {event['value']!r} "
                  f"(revision {event['revision']})")

        await session.subscribe(changed, "etcd.map.notes.on_change")
        snapshot = await session.call("etcd.map.get_and_watch", "notes")
        print(f"{len(snapshot['items'])} notes at revision {snapshot['revision']}:")
        for item in snapshot["items"]:
            print(f"  {item['key']} = {item['value']!r}")
        put = await session.call("etcd.map.put", "notes", "from-python",
                                 {"written_at": time.time()})
        print(f"wrote from-python at revision {put['revision']}")
        await deferLater(reactor, args.seconds)
        await session.leave()

    # component.start() rather than autobahn's run(), which would route print()
    # through its logger.
    task.react(lambda reactor_: component.start(reactor_))


if __name__ == "__main__":
    main()
