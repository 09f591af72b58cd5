"""Three workers increment one counter under a lock, each write fenced by its token.

    python examples/lock.py --url http://127.0.0.1:2379

The write only happens while the worker's lock key still exists with the
fencing token it acquired (a compare on the key's create revision): a worker
that lost its lock (lease expired during a pause) cannot overwrite the next
holder's work.
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import defer, task

from etcdwamp import CompCreated, OpSet, Transaction
from etcdwamp.client import Client

COUNTER = b"demo/lock/counter"


async def worker(etcd: Client, name: str) -> None:
    lock = etcd.lock(b"demo/lock/counter-lock", ttl=5)
    token = await lock.acquire(timeout=10)
    try:
        assert lock.key is not None
        current = await etcd.get(COUNTER)
        n = int(current.kvs[0].value) if current.kvs else 0
        fenced = Transaction(compare=[CompCreated(lock.key, "==", token)],
                             success=[OpSet(COUNTER, b"%d" % (n + 1))])
        result = await etcd.txn(fenced)
        print(f"{name} holds the lock (fencing token {token}): "
              f"{n} -> {n + 1} {'written' if result.succeeded else 'refused (lock lost)'}")
    finally:
        await lock.release()


async def main(reactor: Any, url: str) -> None:
    etcd = Client(reactor, url=url)
    try:
        await etcd.delete(COUNTER)
        await defer.gatherResults([defer.ensureDeferred(worker(etcd, f"worker-{i}"))
                                   for i in range(3)])
        final = await etcd.get(COUNTER)
        print(f"counter = {final.kvs[0].value.decode()}")
        await etcd.delete(COUNTER)
    finally:
        await etcd.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:2379", help="etcd client URL")
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.url)))
