"""Endpoint demotion (etcdwamp.health) on a task.Clock: back-off, order, recovery."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from etcdwamp.health import EndpointHealth

A, B, C = "http://a:2379", "http://b:2379", "http://c:2379"
ALL = (A, B, C)


def test_a_demoted_endpoint_is_tried_after_the_healthy_ones_until_its_backoff_ends() -> None:
    clock = Clock()
    health = EndpointHealth(clock, min_backoff=1.0)
    assert health.order(ALL, 0) == [0, 1, 2]
    health.demote(A, "no answer in time")
    assert not health.is_healthy(A)
    assert health.reason(A) == "no answer in time"
    assert health.order(ALL, 0) == [1, 2, 0]
    clock.advance(0.99)
    assert health.order(ALL, 0) == [1, 2, 0]
    clock.advance(0.01)
    assert health.is_healthy(A) and health.reason(A) is None
    assert health.order(ALL, 0) == [0, 1, 2]


def test_the_failover_rotation_starts_at_the_preferred_endpoint() -> None:
    health = EndpointHealth(Clock())
    assert health.order(ALL, 1) == [1, 2, 0]
    health.demote(C, "no leader")
    assert health.order(ALL, 1) == [1, 0, 2]


def test_each_demotion_in_a_row_doubles_the_backoff_up_to_the_cap() -> None:
    clock = Clock()
    health = EndpointHealth(clock, min_backoff=1.0, max_backoff=4.0)
    periods = []
    for _ in range(5):
        until = health.demote(A, "hung")
        periods.append(until - clock.seconds())
        clock.advance(until - clock.seconds())  # the back-off ran out, A failed again
    assert periods == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert health.demotions == 5


def test_an_answer_ends_the_streak() -> None:
    clock = Clock()
    health = EndpointHealth(clock, min_backoff=1.0)
    health.demote(A, "hung")
    clock.advance(1.0)
    health.demote(A, "hung")  # second in a row: 2 s
    health.succeeded(A)
    assert health.is_healthy(A)
    assert health.demote(A, "hung") == clock.seconds() + 1.0


def test_a_demotion_never_shortens_a_running_one() -> None:
    clock = Clock()
    health = EndpointHealth(clock, min_backoff=1.0, max_backoff=30.0)
    for _ in range(4):
        health.demote(A, "hung")  # 1, 2, 4, 8 s: ends at 8
    assert health.demoted() == {A: 8.0}


def test_with_every_endpoint_demoted_all_are_still_tried_soonest_recovery_first() -> None:
    clock = Clock()
    health = EndpointHealth(clock, min_backoff=1.0)
    health.demote(B, "hung")
    health.demote(B, "hung")  # until 2
    clock.advance(0.5)
    health.demote(C, "hung")  # until 1.5
    health.demote(A, "hung")  # until 1.5 too: a tie keeps the rotation order
    assert health.order(ALL, 0) == [0, 2, 1]
    assert set(health.demoted()) == {A, B, C}


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (2.0, 1.0), (-1.0, 5.0)])
def test_backoff_bounds_are_checked(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="min_backoff"):
        EndpointHealth(Clock(), min_backoff=low, max_backoff=high)
