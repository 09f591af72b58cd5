"""Turn a gateway error answer (HTTP status + body) into a typed exception.

Two body shapes exist:

- etcd 3.4 (grpc-gateway v1): ``{"error": "...", "code": 3, "message": "..."}``
- etcd 3.5+ (grpc-gateway v2, ``google.rpc.Status``):
  ``{"code": 3, "message": "...", "details": []}``

Anything else (an HTML 404, an empty body from a proxy) still becomes a
:class:`~etcdwamp.errors.ServerError` with a code derived from the HTTP status.
"""

from __future__ import annotations

import json
from typing import Any

from .. import errors as e

__all__ = ["error_from_response", "error_from_status", "is_indefinite", "stream_error"]

_BY_CODE: dict[int, type[e.ServerError]] = {
    cls.grpc_code: cls
    for cls in (
        e.InvalidArgument, e.DeadlineExceeded, e.NotFound, e.PermissionDenied,
        e.ResourceExhausted, e.FailedPrecondition, e.OutOfRange, e.Unimplemented,
        e.Internal, e.Unavailable, e.Unauthenticated,
    )
}

# etcd's error messages are its stable API (rpctypes); match them without the
# "etcdserver: " / "mvcc: " prefix so either spelling works.
_BY_MESSAGE: tuple[tuple[str, type[e.ServerError]], ...] = (
    ("required revision has been compacted", e.RevisionCompacted),
    ("required revision is a future revision", e.FutureRevision),
    ("too many operations in txn request", e.TooManyOps),
    ("duplicate key given in txn request", e.DuplicateKey),
    ("request is too large", e.RequestTooLarge),
    ("received message larger than max", e.RequestTooLarge),
    ("key is not provided", e.EmptyKey),
    ("requested lease not found", e.LeaseNotFound),
    ("authentication failed", e.AuthenticationFailed),
    ("database space exceeded", e.NoSpace),
)

# gRPC status names (google.rpc.Code), for messages that have no text of etcd's.
_GRPC_NAMES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}

# What a gRPC code becomes when the gateway only gave us an HTTP status.
_CODE_BY_HTTP = {
    400: 3, 401: 16, 403: 7, 404: 5, 408: 4, 409: 10, 412: 9, 429: 8,
    500: 13, 501: 12, 503: 14, 504: 4,
}


def error_from_response(http_status: int, body: bytes) -> e.ServerError:
    """The exception for a non-200 gateway answer (returned, not raised)."""
    code: int | None = None
    message = ""
    details: tuple[Any, ...] = ()
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        raw_code = parsed.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        for name in ("message", "error"):
            value = parsed.get(name)
            if isinstance(value, str) and value:
                message = value
                break
        raw_details = parsed.get("details")
        if isinstance(raw_details, list):
            details = tuple(raw_details)
    if not message:
        text = body[:200].decode("utf-8", "replace").strip()
        message = f"HTTP {http_status}" + (f": {text}" if text else "")
    if code is None:
        code = _CODE_BY_HTTP.get(http_status, 2)
    return error_from_status(code, message, http_status=http_status, details=details)


def error_from_status(code: int, message: str, *, http_status: int | None,
                      details: tuple[Any, ...] = ()) -> e.ServerError:
    """The exception for etcd's gRPC status ``code`` and ``message`` (returned, not
    raised): the same on the gateway and on gRPC, where the status comes in trailers."""
    cls = _BY_CODE.get(code, e.ServerError)
    for needle, specific in _BY_MESSAGE:
        if needle in message:
            cls = specific
            break
    # Only as UNAVAILABLE: "election: no leader" (nobody campaigns) is another error.
    if cls is e.Unavailable and "no leader" in message:
        cls = e.NoLeader
    return cls(message, code=code, http_status=http_status, details=details)


def stream_error(err: Any) -> e.ServerError:
    """The ``{"error": ...}`` frame of a streaming call, in the v1 shape
    (``grpc_code``/``http_code``) or the v2 shape (``code``). A frame without a
    text gets a message naming only its gRPC status and HTTP status."""
    if not isinstance(err, dict):
        err = {"message": str(err)}
    code = err.get("grpc_code", err.get("code"))
    http = err.get("http_code")
    status = http if isinstance(http, int) and not isinstance(http, bool) else 500
    message = err.get("message") or err.get("error") or ""
    if not isinstance(message, str) or not message.strip():
        # Otherwise error_from_response would quote the body we are about to make up.
        known = isinstance(code, int) and not isinstance(code, bool)
        grpc = code if known else _CODE_BY_HTTP.get(status, 2)
        name = _GRPC_NAMES.get(grpc, "an unknown gRPC status")
        message = f"stream error frame without a message: {name}, HTTP {status}"
    body = json.dumps({"code": code, "message": message}).encode()
    return error_from_response(status, body)


# Answers that prove the request was refused before etcd proposed it.
_DEFINITE_MESSAGES = ("not capable", "unhealthy cluster", "not leader", "too many requests",
                      "authentication failed", "permission denied", "invalid auth token")

# gRPC codes after which a proposal may still be committed: UNAVAILABLE
# (etcd's own request timeout, "leader changed", "server stopped", the
# gateway's lost connection to its member), DEADLINE_EXCEEDED, CANCELLED,
# and UNKNOWN/INTERNAL as a proxy reports a dropped upstream (502/504).
_INDEFINITE_CODES = frozenset((1, 4, 14))


def is_indefinite(err: e.ServerError) -> bool:
    """Whether ``err``, answered to a write, leaves open whether it was applied."""
    if isinstance(err, e.NoLeader) or any(needle in err.message for needle in _DEFINITE_MESSAGES):
        return False
    if err.code in _INDEFINITE_CODES:
        return True
    return err.code in (2, 13) and err.http_status in (502, 504)
