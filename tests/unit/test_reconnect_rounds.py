"""etcdwamp.reconnect: which endpoint a stream tries next and when it pauses (pure)."""

from __future__ import annotations

import pytest

from etcdwamp.reconnect import Reconnects

A, B, C = "a", "b", "c"


def rounds(order: list[str]) -> Reconnects:
    return Reconnects(lambda: list(order), min_backoff=0.5, max_backoff=2.0)


def test_each_endpoint_once_without_a_pause_then_a_doubling_pause() -> None:
    r = rounds([A, B, C])
    tried, pauses = [], []
    for _ in range(12):
        tried.append(r.next_endpoint())
        pauses.append(r.pause())
    assert tried == [A, B, C] * 4
    assert pauses == [0, 0, 0.5, 0, 0, 1.0, 0, 0, 2.0, 0, 0, 2.0]


def test_the_order_is_asked_anew_for_every_attempt() -> None:
    """A member demoted meanwhile (last in the order) is tried after the others."""
    order = [A, B, C]
    r = Reconnects(lambda: list(order), min_backoff=0.5, max_backoff=2.0)
    assert r.next_endpoint() == A
    order[:] = [B, C, A]  # A demoted
    assert r.pause() == 0
    assert r.next_endpoint() == B
    order[:] = [C, A, B]  # B demoted too
    assert r.pause() == 0
    assert r.next_endpoint() == C
    assert r.pause() == 0.5


def test_a_created_stream_starts_a_round_in_which_its_own_endpoint_was_tried() -> None:
    r = rounds([A, B, C])
    assert r.next_endpoint() == A
    assert r.pause() == 0
    assert r.next_endpoint() == B
    assert r.pause() == 0
    assert r.next_endpoint() == C
    assert r.pause() == 0.5
    assert r.next_endpoint() == A
    r.worked()  # A's stream was created, then ended
    assert r.pause() == 0
    assert r.next_endpoint() == B  # not A again first
    assert r.pause() == 0
    assert r.next_endpoint() == C
    assert r.pause() == 0.5  # the backoff started over


def test_one_endpoint_pauses_before_every_retry() -> None:
    r = rounds([A])
    assert r.next_endpoint() == A
    r.worked()
    assert r.pause() == 0.5
    assert r.next_endpoint() == A
    assert r.pause() == 1.0


def test_backoff_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        Reconnects(lambda: [A], min_backoff=0, max_backoff=1)
    with pytest.raises(ValueError):
        Reconnects(lambda: [A], min_backoff=2, max_backoff=1)
