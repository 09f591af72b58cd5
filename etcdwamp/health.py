"""Which endpoints are worth trying first: demotion with back-off.

A member that timed out, answered ``no leader`` or failed a stream probe is
*demoted* for a back-off period: calls try the healthy endpoints first and the
demoted ones only after them, so one hung or cut-off member costs one
attempt, not one per call (etcd's Go client does the same with its health
balancer). Each demotion in a row (the member failed again when tried after
its back-off) doubles the period, from ``min_backoff`` to ``max_backoff``;
an answer from the member ends the streak. A demoted member
is never excluded: when every endpoint is demoted, they are all still tried,
the one whose back-off ends first before the others.

Pure bookkeeping over an injected clock: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .metrics import NO_METRICS, ClientMetrics

__all__ = ["EndpointHealth"]


@dataclass(slots=True)
class _Demotion:
    until: float
    streak: int
    reason: str


class EndpointHealth:
    """Demotions of endpoints, each for a back-off period on ``clock``.

    ``metrics`` hears of each endpoint going down (a demotion, or a refused
    connection: see :meth:`unreachable`) and of the answer that ends it."""

    def __init__(self, clock: Any, *, min_backoff: float = 1.0,
                 max_backoff: float = 30.0, metrics: ClientMetrics = NO_METRICS) -> None:
        if min_backoff <= 0 or max_backoff < min_backoff:
            raise ValueError("need 0 < min_backoff <= max_backoff")
        self._clock = clock
        self.metrics = metrics
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._demoted: dict[str, _Demotion] = {}
        # Reported unhealthy to metrics until they answer: the demoted ones
        # (always) and those that refused a connection.
        self._down: set[str] = set()
        #: how many demotions happened in all (for metrics and tests)
        self.demotions = 0

    def demote(self, endpoint: str, reason: str) -> float:
        """Demote ``endpoint``; returns until when (the clock's time). The first
        failure after a back-off ran out doubles the next one; failures while one
        runs (calls that were in flight together) leave it as it is."""
        now: float = self._clock.seconds()
        previous = self._demoted.get(endpoint)
        if previous is not None and now < previous.until:
            # Calls that were in flight together fail together: one incident,
            # not a streak (ten timeouts at once would jump to the longest back-off).
            previous.reason = reason
            return previous.until
        streak = 1 if previous is None else previous.streak + 1
        period = min(self.max_backoff, self.min_backoff * 2.0 ** (streak - 1))
        until = now + period
        self._demoted[endpoint] = _Demotion(until, streak, reason)
        self.demotions += 1
        self._went_down(endpoint)
        return until

    def unreachable(self, endpoint: str) -> None:
        """``endpoint`` refused a connection: not demoted (trying it again
        costs nothing, and no call waits on it), but reported unhealthy until
        it answers."""
        self._went_down(endpoint)

    def _went_down(self, endpoint: str) -> None:
        if endpoint not in self._down:
            self._down.add(endpoint)
            self.metrics.endpoint_health(endpoint, False)

    def succeeded(self, endpoint: str) -> None:
        """``endpoint`` answered: it is healthy again, its streak over."""
        if self._down and endpoint in self._down:
            self._down.discard(endpoint)
            self._demoted.pop(endpoint, None)
            self.metrics.endpoint_health(endpoint, True)

    def keep_only(self, endpoints: tuple[str, ...] | list[str]) -> None:
        """Forget the demotions of endpoints no longer in use (the member list changed)."""
        for endpoint in [e for e in self._demoted if e not in endpoints]:
            del self._demoted[endpoint]
        self._down.intersection_update(endpoints)

    def is_down(self, endpoint: str) -> bool:
        """Whether ``endpoint`` failed (demoted, or refused a connection) and has not
        answered since: what ``etcdwamp_etcd_endpoint_healthy`` reports as 0."""
        return endpoint in self._down

    def is_healthy(self, endpoint: str) -> bool:
        """Whether ``endpoint`` is not demoted now."""
        demotion = self._demoted.get(endpoint)
        if demotion is None:
            return True
        now: float = self._clock.seconds()
        return now >= demotion.until

    def reason(self, endpoint: str) -> str | None:
        """Why ``endpoint`` is demoted now (None: it is not)."""
        if self.is_healthy(endpoint):
            return None
        return self._demoted[endpoint].reason

    def demoted(self) -> dict[str, float]:
        """The endpoints demoted now, with the time each back-off ends."""
        now: float = self._clock.seconds()
        return {e: d.until for e, d in self._demoted.items() if d.until > now}

    def order(self, endpoints: tuple[str, ...] | list[str], preferred: int) -> list[int]:
        """Indices of ``endpoints`` in the order to try them: the healthy ones in
        failover order from ``preferred``, then the demoted ones, soonest end of
        back-off first."""
        n = len(endpoints)
        rotation = [(preferred + i) % n for i in range(n)]
        if not self._demoted:
            return rotation
        now: float = self._clock.seconds()
        healthy: list[int] = []
        demoted: list[tuple[float, int, int]] = []
        for position, index in enumerate(rotation):
            demotion = self._demoted.get(endpoints[index])
            if demotion is None or now >= demotion.until:
                healthy.append(index)
            else:
                demoted.append((demotion.until, position, index))
        demoted.sort()
        return healthy + [index for _, _, index in demoted]
