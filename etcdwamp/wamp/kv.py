"""The raw-key service: ``<prefix>.kv.*`` over the keys under ``extra.kv_prefixes`` only.

- ``kv.get(key)`` → ``{key, value, revision, version, lease}``
- ``kv.put(key, value)`` → ``{revision}``
- ``kv.delete(key, prefix=False)`` → ``{deleted, revision}``
- ``kv.range(prefix, limit=0, from_key=None)`` → list of ``{key, value, revision}``
  (progressive, cancellable; bounded like ``map.range``)
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
from ..namespace import Namespace
from ..wire import KeySet, KeyValue, text_or_bytes
from .access import Access, Caller
from .errors import ErrorUris
from .ops import TxnItem, parse_txn, read_range, run_txn
from .quota import Cap, check_sizes
from .reads import ReadBounds
from .settings import KvPrefix

__all__ = ["KvService"]


def _record(kv: KeyValue) -> dict[str, Any]:
    return {"key": kv.key, "value": kv.value, "revision": kv.mod_revision}


class KvService:
    """The ``kv.*`` procedures over raw etcd keys under the configured prefixes, with each
    prefix's read and write rules.

    :raises ValueError: no prefixes are given
    """

    def __init__(self, client: Client | Namespace[Client],
                 prefixes: tuple[KvPrefix, ...], access: Access,
                 uris: ErrorUris, reads: ReadBounds) -> None:
        if not prefixes:
            raise ValueError("KvService needs at least one kv prefix")
        self.client = client
        # Longest first: the most specific prefix's rules win.
        self.prefixes = sorted(prefixes, key=lambda p: len(p.prefix), reverse=True)
        self.access = access
        self.uris = uris
        self.reads = reads

    def procedures(self) -> dict[str, Callable[..., Any]]:
        """The procedures by name relative to the URI prefix (``"kv.get"``, ...)."""
        return {"kv.get": self.get, "kv.put": self.put, "kv.delete": self.delete,
                "kv.range": self.range, "kv.txn": self.txn}

    # -- rules -----------------------------------------------------------------

    def _check(self, raw: bytes, caller: Caller, procedure: str, action: str, *,
               whole_prefix: bool = False) -> KvPrefix:
        """Refuse unless ``raw`` (or, with ``whole_prefix``, every key under it)
        lies under a configured prefix whose ``action`` rule admits the caller;
        returns the prefix whose rules and limits apply to ``raw``."""
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
            # The target named is the caller's own key: a nested prefix's name
            # is the configuration's business, not the caller's.
            self.access.require_role(caller, roles, procedure=procedure, target=target,
                                     action=action)
        return covering

    def _sized(self, p: KvPrefix, raw: bytes, value: bytes | None) -> Cap | None:
        """Refuse a key or value beyond ``p``'s limits; ``p``'s key cap, if any."""
        check_sizes(self.uris, "raw key", key=len(raw),
                    value=None if value is None else len(value),
                    max_key=p.max_key_bytes, max_value=p.max_value_bytes)
        if p.max_keys is None:
            return None
        return Cap(KeySet(p.prefix, prefix=True), p.max_keys, "this kv prefix")

    # -- procedures ----------------------------------------------------------------

    async def get(self, key: Any, details: Any = None) -> dict[str, Any]:
        """``kv.get(key)``: ``{key, value, revision, version, lease}`` (lease as a string).

        Raises ``ApplicationError`` ``not_found`` for an absent key, ``permission_denied`` for a
        key outside the prefixes or a caller the read rule does not admit.
        """
        raw = text_or_bytes(key, "key")
        self._check(raw, Caller.of(details), "kv.get", "read")
        kv = (await self.client.get(raw)).first
        if kv is None:
            raise ApplicationError(self.uris.not_found, f"no key {key!r}")
        return {"key": kv.key, "value": kv.value, "revision": kv.mod_revision,
                "version": kv.version, "lease": str(kv.lease)}

    async def put(self, key: Any, value: Any, details: Any = None) -> dict[str, Any]:
        """``kv.put(key, value)``: write ``value`` at ``key``; returns ``{revision}``.

        Raises ``ApplicationError`` ``permission_denied`` unless the write rule admits the caller.
        """
        raw = text_or_bytes(key, "key")
        data = text_or_bytes(value, "value")
        cap = self._sized(self._check(raw, Caller.of(details), "kv.put", "write"), raw, data)
        if cap is not None:
            return await run_txn(self.client, self.uris, [TxnItem(raw, "put", data)], [], [cap])
        result = await self.client.put(raw, data)
        return {"revision": result.revision}

    async def delete(self, key: Any, prefix: Any = False,
                     details: Any = None) -> dict[str, Any]:
        """``kv.delete(key, prefix=False)``: delete the key, or every key under it; returns
        ``{deleted, revision}``.

        A prefix delete also needs the write rules of every configured prefix inside it.
        Raises ``TypeError`` for a non-bool ``prefix``; ``ApplicationError``
        ``permission_denied`` when a rule does not admit the caller.
        """
        if not isinstance(prefix, bool):
            raise TypeError("prefix must be true or false")
        raw = text_or_bytes(key, "key")
        self._check(raw, Caller.of(details), "kv.delete", "write", whole_prefix=prefix)
        result = await self.client.delete(KeySet(raw, prefix=prefix))
        return {"deleted": result.deleted, "revision": result.revision}

    async def range(self, prefix: Any, limit: Any = 0, from_key: Any = None,
                    details: Any = None) -> list[dict[str, Any]]:
        """``kv.range(prefix, limit=0, from_key=None)``: ``{key, value, revision}`` of every
        key under ``prefix`` from ``from_key`` on (a key under ``prefix``; None: the first),
        at most ``limit`` (0: no limit), at one revision.

        Progressive callers get full pages as they are read; cancelling stops the read.
        Other callers get at most ``max_range_rows`` rows, else ``too_large`` (page with
        ``limit`` and ``from_key``). Needs the read rules of the covering prefix and of
        every configured prefix inside it.
        """
        raw = text_or_bytes(prefix, "prefix")
        self._check(raw, Caller.of(details), "kv.range", "read", whole_prefix=True)
        keyset = KeySet(raw, prefix=True)
        if from_key is not None:
            start = text_or_bytes(from_key, "from_key")
            if not start.startswith(raw):
                raise ValueError("from_key must lie under prefix")
            keyset = KeySet(start, range_end=keyset.resolve()[1])
        return await read_range(self.client, keyset, limit, details, self.reads, self.uris,
                                _record)

    async def txn(self, ops: Any, expect: Any = None, details: Any = None) -> dict[str, Any]:
        """``kv.txn(ops, expect=None)``: all ``ops`` (``{op: "put"|"delete", key, value}``) at once
        if every expectation ``{key, revision}`` holds (mod revision equal; 0: absent); returns
        ``{revision}``.

        Every key is checked against the rules (write for ops, read for expectations) before
        anything is sent. Raises ``ApplicationError`` ``conflict`` when an expectation fails
        (nothing is written), ``TypeError``/``ValueError`` for a malformed call, ``TooManyOps``
        beyond 128 ops or expectations.
        """
        ops, expect = parse_txn(ops, expect)
        caller = Caller.of(details)
        writes = []
        caps = []
        for item in ops:
            raw = text_or_bytes(item.get("key"), "key")
            covering = self._check(raw, caller, "kv.txn", "write")
            value = text_or_bytes(item.get("value"), "value") if item["op"] == "put" else None
            caps.append(self._sized(covering, raw, value))
            writes.append(TxnItem(raw, item["op"], value))
        expectations = []
        for item in expect:
            raw = text_or_bytes(item.get("key"), "key")
            self._check(raw, caller, "kv.txn", "read")
            expectations.append(TxnItem(raw, revision=item["revision"]))
        return await run_txn(self.client, self.uris, writes, expectations, caps)
