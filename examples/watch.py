"""Watch a prefix: print each change as etcd reports it, then stop.

    python examples/watch.py --url http://127.0.0.1:2379
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import defer, task

from etcdwamp import KeySet
from etcdwamp.client import Client
from etcdwamp.watch import WatchBatch

EXPECTED = 4  # the changes this example makes below


async def main(reactor: Any, url: str) -> None:
    etcd = Client(reactor, url=url)
    seen: list[str] = []
    all_seen: defer.Deferred[None] = defer.Deferred()

    def on_batch(batch: WatchBatch) -> None:
        for event in batch.events:
            line = f"{event.type.value} {event.kv.key.decode()}"
            if event.kv.value:
                line += f" = {event.kv.value.decode()}"
            print(f"{line} (revision {event.revision})")
            seen.append(line)
        if len(seen) >= EXPECTED and not all_seen.called:
            all_seen.callback(None)

    watch = etcd.watch(KeySet(b"demo/watch/", prefix=True), on_batch)
    try:
        await watch.created  # from here on, no change under the prefix is missed
        await etcd.put(b"demo/watch/a", b"1")
        await etcd.put(b"demo/watch/b", b"2")
        await etcd.put(b"demo/watch/a", b"3")
        await etcd.delete(b"demo/watch/a")
        await all_seen.addTimeout(10, reactor)
        print(f"saw {len(seen)} changes")
    finally:
        await watch.cancel()
        await etcd.delete(KeySet(b"demo/watch/", prefix=True))
        await etcd.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:2379", help="etcd client URL")
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.url)))
