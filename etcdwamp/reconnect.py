"""Where a stream reconnects next, and whether it pauses first.

A watch or an observed election that lost its stream (the member ended it
with ``no leader``, failed a probe, was restarted, could not be reached)
moves **at once** to the next endpoint it has not tried in the current
*round*, in the transport's health order (healthy members first, demoted
ones last): one failed member never costs a pause while another may serve
the stream. Only when every endpoint was tried in a round does the stream
pause, ``min_backoff`` seconds doubling up to ``max_backoff``, before the
next round. A stream etcd confirmed (created) starts a fresh round in which
its own endpoint counts as tried (when that stream ends, the others are tried
first), and the pause from its first length again.

Pure bookkeeping over a function giving the endpoint order: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable

from . import errors

__all__ = ["Reconnects", "may_resume"]


def may_resume(exc: errors.EtcdError) -> bool:
    """Whether a stream that failed with ``exc`` may resume (on another member):
    a transport failure, a member without leader or a garbled frame may heal;
    compaction, a permission or a bad request will not."""
    if isinstance(exc, (errors.TransportError, errors.Unavailable, errors.ProtocolError)):
        return True
    return isinstance(exc, errors.ServerError) and exc.code in (4, 13, 14)


class Reconnects:
    """The reconnection rounds of one stream over the endpoints ``order()`` lists."""

    def __init__(self, order: Callable[[], list[str]], *, min_backoff: float,
                 max_backoff: float) -> None:
        if not 0 < min_backoff <= max_backoff:
            raise ValueError("need 0 < min_backoff <= max_backoff")
        self._order = order
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._backoff = min_backoff
        self._tried: set[str] = set()
        self._current: str | None = None

    def next_endpoint(self) -> str:
        """The endpoint of the next attempt (counted as tried in this round): the
        first in ``order()`` not yet tried, or the first of all when a new round
        begins."""
        order = self._order()
        endpoint = next((e for e in order if e not in self._tried), order[0])
        self._tried.add(endpoint)
        self._current = endpoint
        return endpoint

    def pause(self) -> float:
        """Seconds to wait before the next attempt: 0 while an endpoint is left
        in this round; else the backoff (which then doubles), and a new round
        begins."""
        if any(e not in self._tried for e in self._order()):
            return 0.0
        pause, self._backoff = self._backoff, min(self._backoff * 2, self.max_backoff)
        self._tried.clear()
        return pause

    def worked(self) -> None:
        """The stream of the latest attempt was created: a new round begins in
        which only its endpoint counts as tried, and the next pause is
        ``min_backoff``."""
        self._tried = set() if self._current is None else {self._current}
        self._backoff = self.min_backoff
