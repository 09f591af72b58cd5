"""The session handling of a live map, written once for both event loops.

:class:`LiveMapCore` keeps an exact copy of one etcdwamp map across WAMP sessions.
On every join (the first, and each reconnect, through a balancer to whichever node
answers) it subscribes to ``<prefix>.map.<map>.on_change`` and ``.on_resync`` FIRST,
then calls ``get_and_watch`` (progressively, so a big map comes in pages): the events
that arrive meanwhile are buffered, the snapshot replaces the copy and the buffered
events above it apply with the per-key revision rule of :class:`.MapCopy`. No change
written while the client was away is lost (the snapshot has it) and none is applied
twice (the revision rules drop what the snapshot or the copy already has). Between a
leave and the next join the copy keeps its last rows (``state`` says
``"disconnected"``). ``on_resync`` (the publisher lost history) re-reads the same way;
resyncs during a read cost one more read after it.

The algorithm is ``async def`` code awaiting what the session's ``subscribe`` and
``call`` return, so it runs unchanged over an ``autobahn.twisted`` session (Deferreds,
driven by ``ensureDeferred``) and an ``autobahn.asyncio`` one (futures, driven by an
asyncio task). What differs per loop, how to run that code and what to hand back,
is left to two thin shells: :class:`etcdwamp.wamp.livemap.LiveMap` (Twisted) and
:class:`etcdwamp.asyncio.livemap.LiveMap` (asyncio).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ClassVar, Generic, Literal, TypeVar

from autobahn.wamp.types import CallOptions

from .mapcopy import Key, MapCopy, Row

__all__ = ["LiveMapCore", "State"]

#: where a live map stands: no session, reading a snapshot, following events, stopped
State = Literal["disconnected", "reading", "live", "stopped"]

#: what :meth:`LiveMapCore.attach` and :meth:`LiveMapCore.resync` hand back: a
#: ``Deferred[None]`` on Twisted, an ``asyncio.Future[None]`` on asyncio
Handle = TypeVar("Handle")


def _gather(items: list[Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], None]:
    """A progress handler adding each snapshot page's items to ``items``."""
    def page(result: Mapping[str, Any]) -> None:
        items.extend(result["items"])
    return page


def check_map_name(map: str) -> None:
    """:raises ValueError: ``map`` is not a map name (lowercase letters, digits, ``_``)"""
    if not map or not map.isascii() \
            or not all(c.islower() or c.isdigit() or c == "_" for c in map):
        raise ValueError("a live map needs the map's name (a-z, 0-9, _)")


class LiveMapCore(ABC, Generic[Handle]):
    """Keep :attr:`rows` equal to map ``map`` across sessions (see the module docstring).

    ``on_value(rows, revision)`` gets a fresh dict after every change; ``on_state(state)``
    every change of :attr:`state`; ``on_error(exception)`` failures of subscribing and
    reading on a session that is still current (the copy then stays as it was, not
    following changes, until the next :meth:`resync` or join). Cancelling what
    :meth:`attach` or :meth:`resync` returned, or :meth:`stop`, ends a read under way
    at once (the copy keeps its rows); a cancellation is not an error. At most
    ``max_pending`` events wait for a snapshot under way; past that they are dropped and
    the snapshot is read once more when it arrives.

    :raises ValueError: ``map`` is not a map name (lowercase letters, digits, ``_``), or
        ``max_pending`` is below 1
    """

    #: the exceptions that mean "cancelled" on this loop (not reported to on_error)
    _cancelled: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, map: str, *, prefix: str = "etcd",
                 on_value: Callable[[dict[Key, Row], int | None], object] | None = None,
                 on_state: Callable[[State], object] | None = None,
                 on_error: Callable[[BaseException], object] | None = None,
                 max_pending: int = 100_000) -> None:
        check_map_name(map)
        self._base = f"{prefix}.map.{map}"
        self._on_value = on_value
        self._on_state = on_state
        self._on_error = on_error
        self._copy = MapCopy(max_pending)
        self._session: Any = None
        self._reading = False
        self._again = False
        # The attach or resync that runs the read under way, for stop() to cancel.
        self._work: Handle | None = None
        self.state: State = "disconnected"
        #: snapshots read so far (one per join and per resync), for tests and debugging
        self.snapshots = 0

    # -- what each loop's shell provides --------------------------------------------

    @abstractmethod
    def _start(self, work: Coroutine[Any, Any, None]) -> Handle:
        """Run ``work`` on this loop; its handle (cancelling it cancels ``work``)."""

    @abstractmethod
    def _finished(self) -> Handle:
        """A handle that has already succeeded."""

    @abstractmethod
    def _cancel(self, handle: Handle) -> None:
        """Cancel ``handle`` (nothing if it is done)."""

    @abstractmethod
    def _quiet(self, handle: Handle) -> None:
        """Consume ``handle``'s failure (on_error has had it)."""

    @abstractmethod
    def _warn(self, message: str) -> None:
        """Log ``message`` (no values in it) as a warning."""

    # -- the API ----------------------------------------------------------------------

    @property
    def rows(self) -> Mapping[Key, Row]:
        """The copy: key -> :class:`.Row` (read it, never change it)."""
        return self._copy.rows

    @property
    def revision(self) -> int | None:
        """The highest etcd revision the copy reflects (None before the first snapshot)."""
        return self._copy.revision

    def follow(self, component: Any) -> None:
        """Attach to every session ``component`` (an autobahn Component) joins and
        detach when it leaves."""
        component.on("join", lambda session, details: self._attach_quietly(session))
        component.on("leave", lambda session, details: self.detach(session))

    def attach(self, session: Any) -> Handle:
        """Follow the map on the joined ``session``: subscribe, then read the snapshot;
        done once the copy is exact (or failed as the subscription or read did).

        :raises RuntimeError: the live map was stopped
        """
        if self.state == "stopped":
            raise RuntimeError("this live map was stopped")
        self._session = session
        # Buffer from before the subscriptions: every event of the new session either
        # is in the snapshot or is applied after it.
        self._copy.begin_read()
        self._set_state("reading")
        # Its read counts as under way from now: a resync before it starts is merged
        # into it (two reads at once could land out of order).
        self._reading = True
        self._again = False
        self._work = self._start(self._subscribe_and_read(session))
        return self._work

    def detach(self, session: Any = None) -> None:
        """The session (by default the current one) is gone: keep the rows, follow
        nothing until the next :meth:`attach`."""
        if session is not None and session is not self._session:
            return
        self._session = None
        if self.state != "stopped":
            self._set_state("disconnected")

    def resync(self) -> Handle:
        """Re-read the snapshot on the current session and replace the copy; a resync
        during a read is merged into one more read after it."""
        session = self._session
        if session is None or self.state == "stopped":
            return self._finished()
        if self._reading:
            self._again = True
            return self._finished()
        self._reading = True
        self._work = self._start(self._read(session))
        return self._work

    def stop(self) -> None:
        """Follow nothing any more: a read under way is cancelled, the rows stay (the
        subscriptions end with their session)."""
        self._session = None
        self._set_state("stopped")
        work, self._work = self._work, None
        if work is not None:
            self._cancel(work)

    # -- the algorithm ----------------------------------------------------------------

    def _attach_quietly(self, session: Any) -> None:
        # A failure reaches on_error; a join handler must not fail the session.
        self._quiet(self.attach(session))

    async def _subscribe_and_read(self, session: Any) -> None:
        try:
            await session.subscribe(lambda event: self._event(session, event),
                                    f"{self._base}.on_change")
            await session.subscribe(lambda *args, **kwargs: self._resync_asked(session),
                                    f"{self._base}.on_resync")
        except BaseException as exc:
            if session is self._session:
                self._reading = False
            self._failed(session, exc)
            raise
        await self._read(session)

    async def _read(self, session: Any) -> None:
        # Called with self._reading set; clears it when done, if still current.
        try:
            while True:
                self._again = False
                self._copy.begin_read()
                if session is self._session:
                    self._set_state("reading")
                items: list[Mapping[str, Any]] = []
                try:
                    last = await session.call(
                        f"{self._base}.get_and_watch",
                        options=CallOptions(on_progress=_gather(items)))
                except BaseException as exc:
                    self._failed(session, exc)
                    raise
                if session is not self._session:
                    return  # a newer session reads its own snapshot
                self.snapshots += 1
                items.extend(last["items"])
                self._copy.snapshot(last["revision"], items)
                self._changed()
                if self._copy.overflowed:
                    self._again = True  # events were dropped meanwhile: read again
                if not self._again:
                    self._set_state("live")
                    return
        finally:
            if session is self._session:
                self._reading = False

    def _event(self, session: Any, event: Mapping[str, Any]) -> None:
        if session is not self._session:
            return  # a late event of a session already left
        try:
            changed = self._copy.event(event)
        except ValueError:
            self._warn(f"live map {self._base}: dropped a malformed event")
            return
        if changed:
            self._changed()

    def _resync_asked(self, session: Any) -> None:
        if session is self._session:
            self._quiet(self.resync())

    def _failed(self, session: Any, exc: BaseException) -> None:
        if isinstance(exc, self._cancelled) or not isinstance(exc, Exception):
            return  # cancelled (asyncio's CancelledError is no Exception): no error
        if session is self._session and self._on_error is not None:
            self._on_error(exc)

    def _changed(self) -> None:
        if self._on_value is not None and self.state != "stopped":
            self._on_value(dict(self._copy.rows), self._copy.revision)

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            if self._on_state is not None:
                self._on_state(state)
