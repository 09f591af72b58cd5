"""Gateway error answers and stream error frames become the exception a caller
can catch by kind; every shape etcd or a proxy in front of it sends is covered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from etcdwamp import errors as e
from etcdwamp.wire import error_from_response
from etcdwamp.wire.errors import is_indefinite, stream_error


def answer(status: int, **body: Any) -> e.ServerError:
    return error_from_response(status, json.dumps(body).encode())


@pytest.mark.parametrize(("code", "cls"), [
    (3, e.InvalidArgument), (4, e.DeadlineExceeded), (5, e.NotFound),
    (7, e.PermissionDenied), (8, e.ResourceExhausted), (9, e.FailedPrecondition),
    (11, e.OutOfRange), (12, e.Unimplemented), (13, e.Internal), (14, e.Unavailable),
    (16, e.Unauthenticated), (2, e.ServerError), (10, e.ServerError), (99, e.ServerError),
])
def test_the_grpc_code_picks_the_exception(code: int, cls: type[e.ServerError]) -> None:
    err = answer(400, code=code, message="something")
    assert type(err) is cls
    assert (err.code, err.message, err.http_status) == (code, "something", 400)
    assert str(err) == f"something (gRPC code {code})"


@pytest.mark.parametrize(("message", "cls"), [
    ("etcdserver: mvcc: required revision has been compacted", e.RevisionCompacted),
    ("etcdserver: mvcc: required revision is a future revision", e.FutureRevision),
    ("etcdserver: too many operations in txn request", e.TooManyOps),
    ("etcdserver: duplicate key given in txn request", e.DuplicateKey),
    ("etcdserver: request is too large", e.RequestTooLarge),
    ("grpc: received message larger than max (2000000 vs. 1572864)", e.RequestTooLarge),
    ("etcdserver: key is not provided", e.EmptyKey),
    ("etcdserver: requested lease not found", e.LeaseNotFound),
    ("etcdserver: authentication failed, invalid user ID or password", e.AuthenticationFailed),
    ("etcdserver: mvcc: database space exceeded", e.NoSpace),
])
def test_etcd_s_stable_messages_pick_the_specific_exception(message: str,
                                                            cls: type[e.ServerError]) -> None:
    # The code is deliberately a generic one: the message alone decides.
    assert type(answer(400, code=2, message=message)) is cls


def test_no_leader_is_only_an_unavailable_member() -> None:
    assert type(answer(503, code=14, message="etcdserver: no leader")) is e.NoLeader
    assert type(answer(404, code=2, message="election: no leader")) is e.ServerError


@pytest.mark.parametrize(("status", "code"), [
    (400, 3), (401, 16), (403, 7), (404, 5), (408, 4), (409, 10), (412, 9), (429, 8),
    (500, 13), (501, 12), (503, 14), (504, 4), (418, 2), (502, 2),
])
def test_without_a_grpc_code_the_http_status_gives_it(status: int, code: int) -> None:
    err = error_from_response(status, b"")
    assert (err.code, err.http_status, err.message) == (code, status, f"HTTP {status}")
    assert err.details == ()


def test_a_proxy_s_text_keeps_the_code_of_its_http_status() -> None:
    """A plain-text answer naming an etcd error gets the specific class, but
    the code stays what the HTTP status says (UNKNOWN for one without a code)."""
    err = error_from_response(418, b"etcdserver: request is too large")
    assert type(err) is e.RequestTooLarge
    assert (err.code, err.message) == (2, "HTTP 418: etcdserver: request is too large")


def test_a_body_that_is_not_etcd_s_is_quoted_in_the_message_cut_at_200_bytes() -> None:
    page = b"  <html>" + b"x" * 300 + b"</html>"
    err = error_from_response(404, page)
    assert type(err) is e.NotFound
    assert err.message == "HTTP 404: " + ("<html>" + "x" * 300)[:198]
    assert error_from_response(502, b"[1, 2]").message == "HTTP 502: [1, 2]"
    assert error_from_response(502, b"\xff\xfe").message == "HTTP 502: \ufffd\ufffd"


def test_the_v1_body_message_field_wins_and_error_stands_in_for_it() -> None:
    both = answer(400, code=3, error="the error field", message="the message field")
    assert both.message == "the message field"
    only_error = answer(400, code=3, error="etcdserver: key is not provided")
    assert type(only_error) is e.EmptyKey
    assert only_error.message == "etcdserver: key is not provided"
    empty_message = answer(400, code=3, message="", error="the error field")
    assert empty_message.message == "the error field"


def test_malformed_codes_and_details_are_ignored() -> None:
    err = answer(503, code=True, message="m", details="nope")
    assert (err.code, err.details) == (14, ())  # a bool is no code: from the HTTP status
    err = answer(503, code="14", message="m", details=[{"@type": "x"}])
    assert (err.code, err.details) == (14, ({"@type": "x"},))
    assert answer(400, code=3, message=7).message == 'HTTP 400: {"code": 3, "message": 7}'


def test_a_v1_stream_error_frame_keeps_its_http_status() -> None:
    """grpc-gateway v1 ends a stream with ``{"error": {"grpc_code", "http_code", ...}}``."""
    err = stream_error({"grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader",
                        "http_status": "Service Unavailable"})
    assert type(err) is e.NoLeader
    assert (err.code, err.http_status, err.message) == (14, 503, "etcdserver: no leader")
    # grpc_code is the one that counts when both names are there.
    assert stream_error({"grpc_code": 4, "code": 14, "message": "m"}).code == 4


def test_a_v2_stream_error_frame() -> None:
    err = stream_error({"code": 11, "message": "etcdserver: mvcc: required revision has been "
                        "compacted", "details": []})
    assert type(err) is e.RevisionCompacted
    assert (err.code, err.http_status) == (11, 500)  # no HTTP status in the frame


def test_a_stream_error_frame_with_only_an_error_text() -> None:
    err = stream_error({"error": "etcdserver: request timed out", "code": 14})
    assert type(err) is e.Unavailable
    assert err.message == "etcdserver: request timed out"
    assert stream_error({"message": "", "error": "the error", "code": 14}).message == "the error"


def test_stream_error_frames_of_unknown_shape() -> None:
    text = stream_error("stream broke")
    assert type(text) is e.Internal
    assert (text.code, text.http_status, text.message) == (13, 500, "stream broke")
    empty = stream_error({})
    assert (empty.code, empty.http_status) == (13, 500)
    # No text of its own: the status speaks, no made-up body is quoted.
    assert str(empty) == "stream error frame without a message: INTERNAL, HTTP 500 (gRPC code 13)"
    odd_status = stream_error({"code": 14, "http_code": "503", "message": "m"})
    assert odd_status.http_status == 500


@pytest.mark.parametrize("frame", [
    {"grpc_code": 14, "http_code": 503},
    {"grpc_code": 14, "http_code": 503, "message": "", "http_status": "Service Unavailable"},
    {"code": 14, "http_code": 503, "message": "  ", "error": ""},
    {"grpc_code": 14, "http_code": 503, "message": 7},
])
def test_a_stream_error_frame_without_text_names_only_its_status(frame: dict[str, Any]) -> None:
    """etcd's gateway may end a stream with a bare status: the message names the gRPC
    status and HTTP status, and quotes no body (there was none)."""
    err = stream_error(frame)
    assert type(err) is e.Unavailable
    assert (err.code, err.http_status) == (14, 503)
    assert err.message == "stream error frame without a message: UNAVAILABLE, HTTP 503"
    assert "{" not in str(err)


def test_a_textless_stream_error_frame_of_an_unknown_code_says_so() -> None:
    err = stream_error({"grpc_code": 99, "http_code": 502})
    assert (type(err), err.code, err.http_status) == (e.ServerError, 99, 502)
    assert str(err) == ("stream error frame without a message: an unknown gRPC status, "
                        "HTTP 502 (gRPC code 99)")
    # No code at all: the one the HTTP status stands for.
    assert stream_error({"http_code": 504}).message.endswith(": DEADLINE_EXCEEDED, HTTP 504")
    # ... and UNKNOWN for an HTTP status that stands for none.
    teapot = stream_error({"http_code": 418})
    assert (teapot.code, teapot.message) == (
        2, "stream error frame without a message: UNKNOWN, HTTP 418")


@pytest.mark.parametrize(("status", "code", "message", "indefinite"), [
    (503, 14, "etcdserver: request timed out", True),
    (504, 4, "context deadline exceeded", True),
    (499, 1, "context canceled", True),
    (502, 2, "HTTP 502", True),
    (504, 2, "HTTP 504", True),
    (502, 13, "upstream connect error", True),
    (504, 13, "upstream request timeout", True),
    (500, 13, "etcdserver: corrupt cluster", False),
    (503, 2, "HTTP 503", False),
    (502, 3, "bad request via proxy", False),
    (503, 14, "etcdserver: no leader", False),
    (503, 14, "etcdserver: not capable", False),
    (503, 14, "etcdserver: unhealthy cluster", False),
    (503, 14, "etcdserver: not leader", False),
    (503, 14, "etcdserver: too many requests", False),
    (503, 14, "etcdserver: authentication failed, invalid user ID or password", False),
    (503, 14, "etcdserver: permission denied", False),
    (503, 14, "etcdserver: invalid auth token", False),
])
def test_which_answers_leave_a_write_s_outcome_open(status: int, code: int, message: str,
                                                    indefinite: bool) -> None:
    """Messages that prove a refusal before the proposal win over the code."""
    err = answer(status, code=code, message=message)
    assert is_indefinite(err) is indefinite


def test_exceptions_say_what_happened() -> None:
    assert e.ServerError("m").code == 2 and e.Unavailable("m").code == 14
    assert e.ServerError("m", code=0).code == 0
    indefinite = e.IndefiniteAnswer("etcdserver: leader changed", code=14, http_status=503,
                                    endpoint="http://a:1")
    assert str(indefinite) == ("etcdserver: leader changed (gRPC code 14): the request may or "
                               "may not have been applied")
    assert (indefinite.message, indefinite.code, indefinite.http_status,
            indefinite.endpoint) == ("etcdserver: leader changed", 14, 503, "http://a:1")
    compacted = e.WatchCompacted(40, b"k")
    assert (compacted.compact_revision, compacted.keyset) == (40, b"k")
    assert str(compacted) == "watch cannot resume: history before revision 40 is compacted"
    lost = e.LeaseExpired(7)
    assert (lost.lease_id, str(lost)) == (7, "lease 7 is lost: etcd no longer knows it")
    assert str(e.LeaseExpired(7, "revoked")) == "lease 7 is lost: revoked"
    assert e.Busy("full", endpoint="http://a:1").endpoint == "http://a:1"
    assert e.ConnectFailed("down", endpoint="http://a:1").endpoint == "http://a:1"
