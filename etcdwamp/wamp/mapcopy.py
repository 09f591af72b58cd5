"""The merge rules of a live map copy, pure (no I/O, no Twisted): snapshot + events.

A client keeps an exact copy of one etcdwamp map from two sources: the map's
``on_change`` events and a ``get_and_watch`` snapshot ``{revision, items}``.
:class:`MapCopy` holds the copy and decides what each of them changes:

- events that arrive while a snapshot is being read wait in a buffer (the client
  subscribes first, then reads, so no event falls between the two);
- an event changes the copy only if its revision is above the snapshot's and above
  the revision the copy last saw for its key (a delete is remembered as a tombstone
  until the next snapshot): re-delivered events (a publisher resuming from its
  checkpoint) and the events of a new node after a reconnect change nothing twice;
- a snapshot replaces the copy whole, then the buffered events above it are applied.

:class:`etcdwamp.wamp.livemapcore.LiveMapCore` drives it over WAMP sessions (for
Twisted in :mod:`etcdwamp.wamp.livemap`, for asyncio in :mod:`etcdwamp.asyncio.livemap`);
``crossbar/web/livemap.js`` applies the same rules in the browser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: a map key as it travels: a string, or an oid (int, or a decimal string above 2**53 - 1)
Key = Any


@dataclass(frozen=True)
class Row:
    """One row of the copy: its value, the etcd revision that wrote it, and ``error``
    (``{uri, message}``) when the stored value cannot be read (then ``value`` is None)."""

    value: Any
    revision: int
    error: Mapping[str, Any] | None = None


class MapCopy:
    """An exact copy of one map built from snapshots and change events.

    Events before the first snapshot, and between :meth:`begin_read` and
    :meth:`snapshot`, are buffered; at other times they apply at once. The buffer holds at
    most ``max_pending`` events: past that it is dropped and :attr:`overflowed` set, and
    the snapshot under way is incomplete (read another one).

    :raises ValueError: ``max_pending`` is below 1
    """

    def __init__(self, max_pending: int = 100_000) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._max_pending = max_pending
        #: the buffer overflowed since :meth:`begin_read`: events were dropped, so the
        #: next snapshot may miss changes after its revision and must be read again
        self.overflowed = False
        self.rows: dict[Key, Row] = {}
        #: the highest etcd revision the copy reflects (None before the first snapshot)
        self.revision: int | None = None
        self._tombstones: dict[Key, int] = {}
        self._snapshot_revision: int | None = None
        self._pending: list[Mapping[str, Any]] = []

    @property
    def reading(self) -> bool:
        """Whether events are being buffered for a snapshot under way."""
        return self._snapshot_revision is None

    def begin_read(self) -> None:
        """Buffer events from now on until :meth:`snapshot`; the copy keeps its rows.

        Call it before subscribing on a new session (and before each re-read): events
        received before it were committed before the snapshot about to be read, so the
        buffer starts empty.
        """
        self._snapshot_revision = None
        self._pending = []
        self.overflowed = False

    def event(self, event: Mapping[str, Any]) -> bool:
        """Take one ``on_change`` event ``{op, key, value, revision[, error]}``; whether
        it changed the copy (a buffered event has not, yet).

        :raises ValueError: the event has no int ``revision``, or ``op`` is not
            ``put``/``delete``
        """
        revision = event.get("revision")
        if not isinstance(revision, int) or isinstance(revision, bool):
            raise ValueError("a map event needs an int revision")
        if event.get("op") not in ("put", "delete"):
            raise ValueError("a map event's op is 'put' or 'delete'")
        if self._snapshot_revision is None:
            # A read that never ends (it failed, nobody re-reads) must not grow the buffer
            # without bound; once over, every later event would be re-read anyway.
            if self.overflowed:
                return False
            if len(self._pending) >= self._max_pending:
                self._pending = []
                self.overflowed = True
                return False
            self._pending.append(event)
            return False
        return self._apply(event)

    def snapshot(self, revision: int, items: Iterable[Mapping[str, Any]]) -> None:
        """Replace the copy by the snapshot ``items`` (``{key, value, revision[, error]}``)
        at ``revision``, then apply the buffered events above it."""
        self.rows = {item["key"]: _row(item) for item in items}
        self._tombstones = {}
        self._snapshot_revision = revision
        self.revision = revision
        pending, self._pending = self._pending, []
        for event in pending:
            self._apply(event)

    def _apply(self, event: Mapping[str, Any]) -> bool:
        assert self._snapshot_revision is not None
        revision: int = event["revision"]
        if revision <= self._snapshot_revision:
            return False  # already in the snapshot
        key = event["key"]
        row = self.rows.get(key)
        seen = row.revision if row is not None else self._tombstones.get(key, 0)
        if revision <= seen:
            return False  # re-delivered, or older than what the copy has
        if event["op"] == "delete":
            self.rows.pop(key, None)
            self._tombstones[key] = revision
        else:
            self.rows[key] = _row(event)
            self._tombstones.pop(key, None)
        if self.revision is None or revision > self.revision:
            self.revision = revision
        return True


def _row(item: Mapping[str, Any]) -> Row:
    return Row(item.get("value"), item["revision"], item.get("error"))
