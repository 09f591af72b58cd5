"""The response header the wire tests answer with, as etcd sends it and as parsed."""

from __future__ import annotations

from etcdwamp.wire.results import Header

#: etcd's JSON header (int64s as strings)
HEADER = {"cluster_id": "11", "member_id": "12", "revision": "13", "raft_term": "14"}
#: what parse_header makes of :data:`HEADER`
PARSED_HEADER = Header(cluster_id=11, member_id=12, revision=13, raft_term=14)
