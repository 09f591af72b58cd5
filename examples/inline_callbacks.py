"""The client in ``inlineCallbacks`` style: every method returns a Deferred to ``yield``.

    python examples/inline_callbacks.py --url http://127.0.0.1:2379
"""

from __future__ import annotations

import argparse
from collections.abc import Generator
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, inlineCallbacks

from etcdwamp import CompVersion, KeySet, OpSet, Transaction
from etcdwamp.client import Client


@inlineCallbacks
def main(reactor: Any, url: str) -> Generator[Deferred[Any], Any, None]:
    etcd = Client(reactor, url=url)
    try:
        yield etcd.put(b"demo/ic/a", b"1")
        result = yield etcd.get(b"demo/ic/a")
        print(f"get demo/ic/a -> {result.kvs[0].value!r}")

        create_once = Transaction(compare=[CompVersion(b"demo/ic/b", "==", 0)],
                                  success=[OpSet(b"demo/ic/b", b"created")])
        first = yield etcd.txn(create_once)
        second = yield etcd.txn(create_once)
        print(f"create-once: first {first.succeeded}, second {second.succeeded}")

        lease = yield etcd.lease(10)
        yield etcd.put(b"demo/ic/leased", b"x", lease=lease.id)
        yield lease.revoke()

        deleted = yield etcd.delete(KeySet(b"demo/ic/", prefix=True))
        print(f"deleted {deleted.deleted} keys")
    finally:
        yield etcd.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:2379", help="etcd client URL")
    args = parser.parse_args()
    task.react(main, [args.url])
