"""An endpoint's demotion is logged once per incident, not once per call that failed
in it: calls in flight together (a process renewing a thousand leases on a member that
hung) fail together, and the log must stay bounded (etcdwamp.transport.Transport.demote)."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from etcdwamp.transport import Transport, TwistedHTTP
from etcdwamp.wire import DEFAULT_MAX_REQUEST_BYTES

A, B = "http://a:2379", "http://b:2379"


class NoHTTP(TwistedHTTP):
    """Nothing is sent in these tests: demotions are reported by hand."""

    def close(self) -> Any:
        raise AssertionError("not used")


def demotion_lines(events: list[LogEvent]) -> list[str]:
    return [formatEvent(e) for e in events if "demoted" in (formatEvent(e) or "")]


def test_calls_failing_together_log_one_demotion_and_a_later_incident_another() -> None:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        clock = Clock()
        transport = Transport(NoHTTP(), clock, (A, B), timeout=10.0,
                              max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, api_prefix="/v3")
        for _ in range(1000):
            transport.demote(A, "no answer in time")
        assert demotion_lines(events) == [
            f"etcd endpoint {A} demoted for 1.0s: no answer in time"]
        assert transport.health.order(list(transport.endpoints), 0) == [1, 0]
        transport.demote(B, "etcdserver: no leader")
        assert len(demotion_lines(events)) == 2, "another endpoint: another incident"
        clock.advance(1.0)  # A's back-off ran out: its next failure is a new incident
        transport.demote(A, "no answer in time")
        assert demotion_lines(events)[-1] == (
            f"etcd endpoint {A} demoted for 2.0s: no answer in time")
        assert len(demotion_lines(events)) == 3
    finally:
        globalLogPublisher.removeObserver(events.append)

