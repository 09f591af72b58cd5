"""Persistent maps: a users table keyed by UUID, values CBOR, in real transactions.

    python examples/pmap_users.py --url http://127.0.0.1:2379
"""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task

from etcdwamp import Client, Database, pmap


@dataclass
class User:
    oid: uuid.UUID
    name: str
    email: str

    def marshal(self) -> dict[str, Any]:
        return {"oid": self.oid.bytes, "name": self.name, "email": self.email}

    @staticmethod
    def unmarshal(data: dict[str, Any]) -> User:
        return User(oid=uuid.UUID(bytes=data["oid"]), name=data["name"], email=data["email"])


async def main(reactor: Any, url: str) -> None:
    tab_users = pmap.MapUuidCbor(1, marshal=lambda user: user.marshal(),
                                 unmarshal=User.unmarshal)
    etcd = Client(reactor, url=url)
    db = Database(etcd)
    revision = await db.status()
    print(f"database at revision {revision}")

    user = User(oid=uuid.uuid4(), name="alice", email="alice@example.com")
    async with db.begin(write=True) as txn:
        tab_users[txn, user.oid] = user
    print(f"stored {user.name} at revision {txn.committed_revision}")

    async with db.begin() as txn:
        user = await tab_users[txn, user.oid]
    print(f"read back: {user}")

    # Optimistic concurrency: db.run re-runs the function if someone else
    # changed what it read before it could commit.
    async def rename(txn: pmap.MapTransaction) -> None:
        current = await tab_users[txn, user.oid]
        current.name = current.name.title()
        tab_users[txn, user.oid] = current

    await db.run(rename)
    async with db.begin() as txn:
        print(f"after rename: {(await tab_users[txn, user.oid]).name}")
        print(f"users in table: {await tab_users.count(txn)}")
    await etcd.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:2379", help="etcd client URL")
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args.url)))
