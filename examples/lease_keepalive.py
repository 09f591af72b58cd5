"""A lease kept alive: its key outlives the TTL until the lease is revoked.

    python examples/lease_keepalive.py --url http://127.0.0.1:2379
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import defer, task

from etcdwamp.client import Client

TTL = 2


async def main(reactor: Any, url: str) -> None:
    etcd = Client(reactor, url=url)
    try:
        lease = await etcd.lease(TTL, keep_alive=True)  # renewed every TTL / 3 seconds
        await etcd.put(b"demo/lease/me", b"alive", lease=lease.id)
        print(f"lease {lease.id:x} granted for {TTL}s, key demo/lease/me attached")

        # Let the keep-alive work for longer than the TTL.
        started = reactor.seconds()
        while reactor.seconds() - started < 1.5 * TTL:
            await task.deferLater(reactor, 0.25)
        still = await etcd.get(b"demo/lease/me")
        print(f"after {lease.renewals} renewals ({1.5 * TTL:.0f}s > TTL): "
              f"key {'still there' if still.count else 'gone'}, "
              f"{await lease.remaining()}s left")

        await lease.revoke()
        gone = await etcd.get(b"demo/lease/me")
        print(f"lease revoked: key {'gone' if not gone.count else 'still there'}")
    finally:
        await etcd.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:2379", help="etcd client URL")
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.url)))
