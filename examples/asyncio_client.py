"""The asyncio client: put/get, a watch, a lock, a lease and a pmap transaction.

    python examples/asyncio_client.py --url http://127.0.0.1:2379

No Twisted reactor runs here: ``asyncio.run`` drives everything.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from etcdwamp import Database, KeySet, pmap
from etcdwamp.asyncio import Client

notes = pmap.MapUuidJson(1)


async def main(url: str) -> None:
    async with Client(url=url) as etcd:
        status = await etcd.status()
        print(f"connected to etcd {status.version} (asyncio)")

        await etcd.put(b"aio-demo/greeting", b"hello")
        got = await etcd.get(b"aio-demo/greeting")
        print(f"get aio-demo/greeting -> {got.kvs[0].value!r}")

        # A watch from now on; the put below arrives as one batch.
        watch = await etcd.watch(KeySet(b"aio-demo/", prefix=True))
        await etcd.put(b"aio-demo/counter", b"1")
        async for batch in watch:
            print("watched:", [(ev.type.name, ev.kv.key.decode()) for ev in batch.events])
            break
        await watch.cancel()

        # A lock held while a leased key exists; the lease is revoked after.
        async with etcd.lock(b"aio-demo-lock", ttl=10):
            lease = await etcd.lease(10, keep_alive=True)
            await etcd.put(b"aio-demo/owner", b"me", lease=lease.id)
            print("locked; owner key attached to lease", lease.id)
            await lease.revoke()
        owner = await etcd.get(b"aio-demo/owner")
        print(f"after revoking the lease the owner key is {'gone' if not owner.kvs else 'there'}")

        # pmap works unchanged on the asyncio client.
        db = Database(etcd, prefix=b"aio-demo/db/")
        oid = uuid.uuid4()
        async with db.begin(write=True) as txn:
            notes[txn, oid] = {"text": "hello from asyncio"}
        async with db.begin() as txn:
            print("pmap note:", (await notes[txn, oid])["text"])

        # Cancelling what awaits a call cancels it: here wait_for gives up on a
        # lock another holder has, and the waiting acquire is withdrawn.
        holder = etcd.lock(b"aio-demo-lock2")
        await holder.acquire()
        try:
            await asyncio.wait_for(etcd.lock(b"aio-demo-lock2").acquire(), 0.5)
        except TimeoutError:
            print("second acquire cancelled after 0.5 s while the lock was held")
        await holder.release()

        deleted = await etcd.delete(KeySet(b"aio-demo/", prefix=True))
        print(f"deleted {deleted.deleted} keys")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:2379", help="etcd client URL")
    asyncio.run(main(parser.parse_args().url))
