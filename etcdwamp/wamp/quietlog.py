"""Log lines a caller can provoke, at most one per key a minute, with a count.

Anything a browser can make the component log (etcd unreachable, NOSPACE,
calls abandoned by a caller that left) must not be able to fill the disk: the
first occurrence of a key is logged at once, further ones within ``interval``
are only counted and summed up in the next line logged for that key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

__all__ = ["QuietLog"]

#: at most this many distinct keys are remembered; keys are chosen by the
#: code (a kind of failure), never by callers, so this is only a safety net
_MAX_KEYS = 1024


class QuietLog:
    """A rate-limited warning log: :meth:`warn` logs a key at most once per ``interval``.

    :param seconds: the clock (``reactor.seconds``; a ``task.Clock``'s in tests)
    :param interval: seconds between two lines of one key
    """

    def __init__(self, seconds: Callable[[], float], *, interval: float = 60.0,
                 log: Any = None) -> None:
        self._seconds = seconds
        self.interval = interval
        self.log: Any = log if log is not None else Logger()
        # key -> (time of the last line logged, occurrences not logged since)
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, key: str, fmt: str, **kwargs: Any) -> bool:
        """Log ``fmt`` (a twisted.logger format) as a warning under ``key`` unless ``key`` was
        logged less than ``interval`` ago; returns whether a line was written (one written
        after suppressed ones says how many)."""
        return self._emit(key, self.log.warn, fmt, kwargs)

    def failure(self, key: str, fmt: str, failure: Any, **kwargs: Any) -> bool:
        """Log ``failure`` with its traceback under ``key``, rate-limited as :meth:`warn`."""
        kwargs["failure"] = failure
        return self._emit(key, self.log.failure, fmt, kwargs)

    def _emit(self, key: str, write: Callable[..., None], fmt: str,
              kwargs: dict[str, Any]) -> bool:
        now = self._seconds()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if last is None and len(self._last) >= _MAX_KEYS:
            self._last.pop(next(iter(self._last)))
        self._last[key] = (now, 0)
        if last is not None and last[1]:
            fmt += " ({suppressed} more like this in the last {interval:.0f}s)"
            kwargs.update(suppressed=last[1], interval=now - last[0])
        write(fmt, **kwargs)
        return True
