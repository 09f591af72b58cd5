"""``Lease.LeaseLeases``: the call listing every lease, and its answer."""

from __future__ import annotations

from typing import Any

import pytest

from etcdwamp import errors as e
from etcdwamp.wire import Header, LeaseListResult, lease_leases_request
from etcdwamp.wire.leases import parse_lease_leases

HEADER = {"cluster_id": "14841639068965178418", "member_id": "10276657743932975437",
          "revision": "12", "raft_term": "3"}


def test_the_request_is_an_empty_body_to_lease_leases_and_may_be_resent() -> None:
    """A listing changes nothing, so an unknown outcome may be asked again elsewhere."""
    request = lease_leases_request()
    assert (request.path, dict(request.body), request.idempotent) == ("/lease/leases", {}, True)
    assert request.parse is parse_lease_leases


def test_the_answer_lists_the_lease_ids_with_the_header() -> None:
    answer = {"header": HEADER, "leases": [{"ID": "7587862072446226949"}, {"ID": "8"}]}
    assert lease_leases_request().parse(answer) == LeaseListResult(
        header=Header(cluster_id=14841639068965178418, member_id=10276657743932975437,
                      revision=12, raft_term=3),
        ids=(7587862072446226949, 8))


def test_no_leases_is_an_empty_list() -> None:
    """The gateway leaves out an empty repeated field."""
    assert parse_lease_leases({"header": HEADER}).ids == ()


@pytest.mark.parametrize("leases", [["7", "8"], [{"ID": "7"}, 8], {"ID": "7"}, "7"])
def test_leases_that_are_not_a_list_of_objects_are_a_protocol_error(leases: Any) -> None:
    with pytest.raises(e.ProtocolError) as info:
        parse_lease_leases({"header": HEADER, "leases": leases})
    assert str(info.value) == f"leases should be a list of objects, got {leases!r}"


def test_the_protocol_error_quotes_at_most_300_characters() -> None:
    with pytest.raises(e.ProtocolError) as info:
        parse_lease_leases({"header": HEADER, "leases": ["x" * 1000]})
    assert len(str(info.value)) == 300
    assert str(info.value).startswith("leases should be a list of objects, got ['xxx")
