"""Two candidates, one leader: the second takes over when the first resigns.

    python examples/election.py --url http://127.0.0.1:2379
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import defer, task

from etcdwamp.client import Client

NAME = b"demo/election/publisher"


async def main(reactor: Any, url: str) -> None:
    etcd = Client(reactor, url=url)
    first, second = etcd.election(NAME, ttl=5), etcd.election(NAME, ttl=5)
    try:
        await first.campaign(b"instance-a")
        leader = await first.leader()
        print(f"leader: {leader.value.decode() if leader else None}")

        waiting = second.campaign(b"instance-b")  # blocks while instance-a leads
        print(f"instance-b waiting: {not waiting.called}")

        await first.resign()
        led = await waiting.addTimeout(10, reactor)
        leader = await second.leader()
        print(f"after resign, leader: {leader.value.decode() if leader else None} "
              f"(fencing token {led.rev})")
        await second.resign()
    finally:
        await etcd.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:2379", help="etcd client URL")
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.url)))
