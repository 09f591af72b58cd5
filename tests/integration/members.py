"""Picking a member of a real test cluster to hang, and clients around it, for the
tests that stop one member (``stall.stalled``) and watch what the others do."""

from __future__ import annotations

from typing import Any

from loops import make_client

from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster, EtcdMember

__all__ = ["a_follower", "others_only", "victim_first"]


async def a_follower(cluster: EtcdCluster, loop: str) -> EtcdMember:
    """A member that is not the raft leader now (asked of each member itself,
    with a client of ``loop``): hanging it costs no election."""
    for member in cluster.members:
        one = make_client(loop, url=member.url)
        try:
            status = await one.status()
        finally:
            await one.close()
        if status.leader != status.header.member_id:
            return member
    raise AssertionError("every member says it leads")


def victim_first(cluster: EtcdCluster, victim: EtcdMember, loop: str,
                 **options: Any) -> Client:
    """A client of ``loop`` that lists ``victim`` first, then the other members, so
    its calls and streams start on it; ``options``: ``Client``'s."""
    others = [m.url for m in cluster.members if m is not victim]
    return make_client(loop, endpoints=[victim.url, *others], **options)


def others_only(cluster: EtcdCluster, victim: EtcdMember, loop: str,
                **options: Any) -> Client:
    """A client of ``loop`` of every member but ``victim``; ``options``: ``Client``'s."""
    return make_client(loop, endpoints=[m.url for m in cluster.members if m is not victim],
                       **options)
