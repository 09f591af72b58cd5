"""The raw-key service: ``<prefix>.kv.*`` over the keys under ``extra.kv_prefixes`` only.

- ``kv.get(key)`` → ``{key, value, revision, version, lease}``
- ``kv.put(key, value)`` → ``{revision}``
- ``kv.delete(key, prefix=False)`` → ``{deleted, revision}``
- ``kv.range(prefix, limit=0)`` → list of ``{key, value, revision}`` (progressive, cancellable)
- ``kv.txn(ops, expect=None)`` with ``ops`` = ``[{op, key, value}]``, ``expect`` =
  ``[{key, revision}]``

Keys are str (UTF-8) or bytes. A key outside every configured prefix, which
includes the component's own election, checkpoint and presence keys (settings
keep those disjoint), gets ``permission_denied``. When configured prefixes
nest, the longest one's rules apply to a key; an operation over a whole prefix
also needs the rules of every configured prefix inside it. Without
``kv_prefixes`` the component registers none of these procedures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autobahn.wamp.exception import ApplicationError

from ..client import Client
from ..wire import KeySet, KeyValue, text_or_bytes
from .access import Access, Caller
from .errors import ErrorUris
from .ops import TxnItem, parse_txn, read_range, run_txn
from .settings import KvPrefix

__all__ = ["KvService"]


def _record(kv: KeyValue) -> dict[str, Any]:
    return {"key": kv.key, "value": kv.value, "revision": kv.mod_revision}


class KvService:
    def __init__(self, client: Client, prefixes: tuple[KvPrefix, ...], access: Access,
                 uris: ErrorUris, range_page: int) -> None:
        if not prefixes:
            raise ValueError("KvService needs at least one kv prefix")
        self.client = client
        # Longest first: the most specific prefix's rules win.
        self.prefixes = sorted(prefixes, key=lambda p: len(p.prefix), reverse=True)
        self.access = access
        self.uris = uris
        self.range_page = range_page

    def procedures(self) -> dict[str, Callable[..., Any]]:
        return {"kv.get": self.get, "kv.put": self.put, "kv.delete": self.delete,
                "kv.range": self.range, "kv.txn": self.txn}

    # -- rules -----------------------------------------------------------------

    def _check(self, raw: bytes, caller: Caller, procedure: str, action: str, *,
               whole_prefix: bool = False) -> None:
        """Refuse unless ``raw`` (or, with ``whole_prefix``, every key under it)
        lies under a configured prefix whose ``action`` rule admits the caller."""
        covering = next((p for p in self.prefixes if p.covers(raw)), None)
        target = f"raw key {raw[:200]!r}"
        if covering is None:
            raise self.access.deny(caller, procedure, target,
                                   "outside every configured kv prefix")
        rules = [covering]
        if whole_prefix:  # nested prefixes inside the range have rules too
            rules += [p for p in self.prefixes if p is not covering and p.prefix.startswith(raw)]
        for p in rules:
            roles = p.read if action == "read" else p.write
            self.access.require_role(caller, roles, procedure=procedure,
                                     target=f"kv prefix {p.prefix!r}", action=action)

    # -- procedures ----------------------------------------------------------------

    async def get(self, key: Any, details: Any = None) -> dict[str, Any]:
        raw = text_or_bytes(key, "key")
        self._check(raw, Caller.of(details), "kv.get", "read")
        kv = (await self.client.get(raw)).first
        if kv is None:
            raise ApplicationError(self.uris.not_found, f"no key {key!r}")
        return {"key": kv.key, "value": kv.value, "revision": kv.mod_revision,
                "version": kv.version, "lease": str(kv.lease)}

    async def put(self, key: Any, value: Any, details: Any = None) -> dict[str, Any]:
        raw = text_or_bytes(key, "key")
        data = text_or_bytes(value, "value")
        self._check(raw, Caller.of(details), "kv.put", "write")
        result = await self.client.put(raw, data)
        return {"revision": result.revision}

    async def delete(self, key: Any, prefix: Any = False,
                     details: Any = None) -> dict[str, Any]:
        if not isinstance(prefix, bool):
            raise TypeError("prefix must be true or false")
        raw = text_or_bytes(key, "key")
        self._check(raw, Caller.of(details), "kv.delete", "write", whole_prefix=prefix)
        result = await self.client.delete(KeySet(raw, prefix=prefix))
        return {"deleted": result.deleted, "revision": result.revision}

    async def range(self, prefix: Any, limit: Any = 0,
                    details: Any = None) -> list[dict[str, Any]]:
        raw = text_or_bytes(prefix, "prefix")
        self._check(raw, Caller.of(details), "kv.range", "read", whole_prefix=True)
        return await read_range(self.client, KeySet(raw, prefix=True), limit, details,
                                self.range_page, _record)

    async def txn(self, ops: Any, expect: Any = None, details: Any = None) -> dict[str, Any]:
        ops, expect = parse_txn(ops, expect)
        caller = Caller.of(details)
        writes = []
        for item in ops:
            raw = text_or_bytes(item.get("key"), "key")
            self._check(raw, caller, "kv.txn", "write")
            value = text_or_bytes(item.get("value"), "value") if item["op"] == "put" else None
            writes.append(TxnItem(raw, item["op"], value))
        expectations = []
        for item in expect:
            raw = text_or_bytes(item.get("key"), "key")
            self._check(raw, caller, "kv.txn", "read")
            expectations.append(TxnItem(raw, revision=item["revision"]))
        return await run_txn(self.client, self.uris, writes, expectations)
