"""The router id from a WELCOME, and the publisher's keys per router (pure code)."""

from __future__ import annotations

from typing import Any

import pytest

from etcdwamp.wamp.routers import PublisherKeys, router_from_welcome, router_id
from etcdwamp.wamp.settings import Settings, SettingsError


def test_the_welcome_of_crossbar_names_node_and_router_worker() -> None:
    authextra = {"x_cb_node": "host-17", "x_cb_worker": "worker001",
                 "x_cb_peer": "tcp4:127.0.0.1:5000", "x_cb_pid": 42}
    assert router_from_welcome(authextra) == router_id("host-17", 42) == "host-17/42"


@pytest.mark.parametrize("authextra", [
    None, {}, {"x_cb_node": "host-17"}, {"x_cb_pid": 42}, {"x_cb_node": "", "x_cb_pid": 42},
    {"x_cb_node": "host-17", "x_cb_pid": "42"}, {"x_cb_node": "host-17", "x_cb_pid": True},
    {"x_cb_node": None, "x_cb_pid": None}, "host-17/42",
])
def test_a_welcome_without_both_facts_names_no_router(authextra: Any) -> None:
    assert router_from_welcome(authextra) is None


def test_without_a_router_the_keys_are_the_shared_ones() -> None:
    keys = PublisherKeys(b"app/publisher", None)
    assert keys.election == b"app/publisher"
    assert keys.checkpoint == b"app/publisher.checkpoint"


def test_each_router_has_its_own_election_and_checkpoint_beside_the_election() -> None:
    keys = PublisherKeys(b"app/publisher", "host-17/42")
    assert keys.election == b"app/publisher/host-17%2F42"
    assert keys.checkpoint == b"app/publisher.checkpoint/host-17%2F42"
    # The checkpoint never lies under the election prefix (it would be a candidate).
    assert not keys.checkpoint.startswith(keys.base + b"/")


def test_a_slash_in_a_node_id_cannot_put_a_router_inside_another() -> None:
    short, long = PublisherKeys(b"e", "a/1"), PublisherKeys(b"e", "a/1/2")
    assert not long.election.startswith(short.election + b"/")
    assert not long.checkpoint.startswith(short.checkpoint + b"/")


def test_other_routers_are_read_from_checkpoint_keys_only() -> None:
    mine = PublisherKeys(b"e", "host-1/10")
    found = [
        mine.checkpoint, mine.checkpoint + b"/6161",
        mine.of("host-2/20").checkpoint, mine.of("host-2/20").checkpoint + b"/6161",
        mine.of("a/b/3").checkpoint,
        b"e.checkpoint/6161",       # a position of the shared layout: no router
        b"e.checkpoint/%zz",        # not percent-encoding
        b"e.checkpoint/\xff%2F1",   # not ASCII
        b"elsewhere/host-3%2F30",   # not under the checkpoints
    ]
    assert mine.other_routers(found) == ["a/b/3", "host-2/20"]


def test_the_overlap_checks_cover_every_routers_keys() -> None:
    base = {"etcd": {"endpoints": ["http://127.0.0.1:2379"]}, "election": "app/publisher",
            "db_prefix": "maps/"}
    with pytest.raises(SettingsError, match="the publisher checkpoint"):
        Settings.from_extra({**base, "kv_prefixes": ["app/publisher.checkpoint/host"]})
    with pytest.raises(SettingsError, match="the election"):
        Settings.from_extra({**base, "kv_prefixes": ["app/publisher/host-1%2F1/"]})
