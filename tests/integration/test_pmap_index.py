"""Secondary indexes stay consistent with their table (hypothesis against a real etcd)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loops import ensure

from etcdwamp import Client, Database, pmap

_run = itertools.count()


def tables() -> tuple[Any, Any, Any]:
    people = pmap.MapOidJson(1)
    by_city = pmap.MapStringOid(2)   # non-unique: many people per city
    by_email = pmap.MapStringOid(3)  # unique
    people.attach_index("city", by_city, lambda p: p["city"])
    people.attach_index("email", by_email, lambda p: p.get("email"), nullable=True,
                        unique=True)
    return people, by_city, by_email


async def check_consistent(db: Database, model: dict[int, dict[str, Any]]) -> None:
    people, by_city, by_email = tables()
    async with db.begin() as txn:
        stored = {k: v async for k, v in people.select(txn)}
        assert stored == model
        for city in {p["city"] for p in model.values()} | {"nowhere"}:
            expected = sorted(k for k, p in model.items() if p["city"] == city)
            assert sorted(await by_city.lookup(txn, city)) == expected
        assert await by_city.count(txn) == len(model)
        emails = {p["email"]: k for k, p in model.items() if p.get("email")}
        assert await by_email.count(txn) == len(emails)
        for email, oid in emails.items():
            assert await by_email.lookup(txn, email) == [oid]


ops = st.lists(st.tuples(
    st.sampled_from(["put", "delete"]),
    st.integers(min_value=1, max_value=6),
    st.sampled_from(["Berlin", "Paris", "Lima", "a\u0000b", "a"]),
    st.sampled_from([None, "x@example.com", "y@example.com", "z@example.com"]),
), min_size=1, max_size=12)


@pytest.mark.usefixtures("etcd")
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
@ensure
async def test_random_insert_update_delete_keeps_indexes_consistent(
        client: Client, sequence: list[tuple[str, int, str, str | None]]) -> None:
    db = Database(client, prefix=b"idx%d/" % next(_run))
    people, _, _ = tables()
    model: dict[int, dict[str, Any]] = {}
    for op, oid, city, email in sequence:
        record = {"city": city, "email": email}
        taken = email is not None and any(p.get("email") == email for k, p in model.items()
                                          if k != oid)
        try:
            async with db.begin(write=True) as txn:
                if op == "put":
                    people[txn, oid] = record
                else:
                    del people[txn, oid]
        except pmap.UniqueViolation:
            assert op == "put" and taken
            continue
        assert not (op == "put" and taken)
        if op == "put":
            model[oid] = record
        else:
            model.pop(oid, None)
    await check_consistent(db, model)


@ensure
async def test_several_writes_of_one_record_in_one_transaction(client: Client,
                                                               prefix: bytes) -> None:
    db = Database(client, prefix=prefix)
    people, by_city, _ = tables()
    async with db.begin(write=True) as txn:
        people[txn, 1] = {"city": "Berlin"}
        people[txn, 1] = {"city": "Paris"}
        people[txn, 2] = {"city": "Paris"}
        del people[txn, 2]
    await check_consistent(db, {1: {"city": "Paris"}})
    async with db.begin() as txn:
        assert await by_city.lookup(txn, "Berlin") == []


@ensure
async def test_non_nullable_index_refuses_none(client: Client, prefix: bytes) -> None:
    db = Database(client, prefix=prefix)
    people, _, _ = tables()
    with pytest.raises(ValueError, match="nullable"):
        async with db.begin(write=True) as txn:
            people[txn, 1] = {"city": None}
    await check_consistent(db, {})
