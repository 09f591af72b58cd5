"""A one-time outcome that many parties can wait for."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ._deferred import Dual

__all__ = ["Signal"]


class Signal:
    """A one-time outcome many parties may wait for, each with its own Deferred
    (so one waiter's callbacks never change what another receives)."""

    def __init__(self) -> None:
        self._fired = False
        self._error: BaseException | None = None
        self._waiters: list[Deferred[None]] = []

    def fire(self, error: BaseException | None) -> None:
        if self._fired:
            return
        self._fired, self._error = True, error
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            self._settle(d)

    def _settle(self, d: Deferred[None]) -> None:
        if self._error is None:
            d.callback(None)
        else:
            d.errback(Failure(self._error))  # type: ignore[no-untyped-call]

    def wait(self) -> Dual[None]:
        """A new Dual that fires with the outcome (at once if it is known)."""
        d: Dual[None] = Dual()
        if self._fired:
            self._settle(d)
        else:
            self._waiters.append(d)
        return d
