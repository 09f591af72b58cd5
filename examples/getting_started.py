"""Getting started: put, get, a prefix range, a transaction, against one etcd.

    python examples/getting_started.py --url http://127.0.0.1:2379
"""

from __future__ import annotations

import argparse

from twisted.internet import defer, task

from etcdwamp import CompValue, KeySet, OpGet, OpSet, Transaction
from etcdwamp.client import Client


async def main(reactor: object, url: str) -> None:
    etcd = Client(reactor, url=url)
    try:
        status = await etcd.status()
        print(f"connected to etcd {status.version}, revision {status.revision}")

        put = await etcd.put(b"demo/greeting", b"hello", prev_kv=True)
        print(f"put demo/greeting at revision {put.revision}")

        got = await etcd.get(b"demo/greeting")
        print(f"get demo/greeting -> {got.kvs[0].value!r} (version {got.kvs[0].version})")

        for name in (b"alice", b"bob", b"carol"):
            await etcd.put(b"demo/users/" + name, name.upper())
        users = await etcd.get(KeySet(b"demo/users/", prefix=True))
        print(f"{users.count} users: {[kv.key.decode() for kv in users.kvs]}")

        # Change the greeting only if nobody changed it since we read it.
        txn = Transaction(
            compare=[CompValue(b"demo/greeting", "==", b"hello")],
            success=[OpSet(b"demo/greeting", b"hello, world")],
            failure=[OpGet(b"demo/greeting")],
        )
        result = await etcd.txn(txn)
        print(f"transaction {'committed' if result.succeeded else 'lost the race'} "
              f"at revision {result.revision}")

        async for kv in etcd.range_iter(KeySet(b"demo/", prefix=True), page_size=2):
            print(f"  {kv.key.decode()} = {kv.value.decode()}")

        deleted = await etcd.delete(KeySet(b"demo/", prefix=True))
        print(f"deleted {deleted.deleted} keys")
    finally:
        await etcd.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:2379", help="etcd client URL")
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.url)))
