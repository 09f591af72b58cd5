"""What one failed attempt means for a request: try the next endpoint, or answer the caller.

Pure decisions, no I/O, shared by the Twisted transport (:mod:`etcdwamp.transport`) and
the command line's blocking one (:mod:`etcdwamp.blocking`), so that both fail over by
the same rules:

- an idempotent request (a read) may be sent to the next endpoint after any failure
  that does not prove etcd refused it for good; it gets a share of what is left of its
  timeout per endpoint (:func:`attempt_share`);
- a write moves on only when nothing was sent (the connection failed) or etcd
  refused it before proposing it (``no leader``); after that its outcome is the
  caller's to learn (:class:`~etcdwamp.errors.OutcomeUnknown`);
- when every endpoint failed, the answer is the last failure that reached a member,
  or "no endpoint reachable" if none did (:func:`give_up`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import errors
from .wire.errors import error_from_response, is_indefinite

__all__ = ["Refusal", "answer_json", "attempt_share", "give_up", "refusal"]


@dataclass(frozen=True)
class Refusal:
    """A non-200 answer, judged."""

    #: what the caller gets, or what is remembered if the request moves on
    error: errors.EtcdError
    #: the next endpoint may be tried (the request cannot have been applied twice)
    move_on: bool
    #: the member could not serve (``Unavailable``): try it after the others for a while
    unwell: bool
    #: etcd's own message (why the member is unwell, for the log)
    message: str


def refusal(status: int, content: bytes, *, idempotent: bool, endpoint: str) -> Refusal:
    """Judge ``endpoint``'s answer ``status``/``content`` (not 200) to a request."""
    err = error_from_response(status, content)
    if isinstance(err, errors.Unavailable):
        # "no leader" is answered before etcd proposes anything: even a write moves on.
        if idempotent or isinstance(err, errors.NoLeader):
            return Refusal(err, move_on=True, unwell=True, message=err.message)
        return Refusal(_indefinite(err, endpoint), move_on=False, unwell=True,
                       message=err.message)
    if isinstance(err, errors.DeadlineExceeded) and idempotent:
        # a read that ran out of etcd's time: elsewhere
        return Refusal(err, move_on=True, unwell=False, message=err.message)
    if not idempotent and is_indefinite(err):
        return Refusal(_indefinite(err, endpoint), move_on=False, unwell=False,
                       message=err.message)
    return Refusal(err, move_on=False, unwell=False, message=err.message)


def _indefinite(err: errors.ServerError, endpoint: str) -> errors.EtcdError:
    if not is_indefinite(err):
        return err
    indefinite = errors.IndefiniteAnswer(err.message, code=err.code,
                                         http_status=err.http_status, endpoint=endpoint)
    indefinite.__cause__ = err
    return indefinite


def attempt_share(left: float, remaining: int, attempt_timeout: float | None) -> float:
    """Seconds the next attempt of an idempotent request may take, with ``left`` seconds
    until its deadline and ``remaining`` endpoints (this one included) to try: the last
    gets all that is left; the others an equal share, or ``attempt_timeout`` if that is
    less (never more: the endpoints after it would get nothing left to try)."""
    if remaining <= 1:
        return left
    share = left / remaining
    return share if attempt_timeout is None else min(share, attempt_timeout)


def give_up(failures: Sequence[errors.EtcdError]) -> errors.EtcdError:
    """The error of a request after every endpoint failed with ``failures`` (in order)."""
    if all(isinstance(f, errors.ConnectFailed) for f in failures):
        exc = errors.ConnectFailed(
            "no etcd endpoint reachable: " + "; ".join(str(f) for f in failures))
        exc.__cause__ = failures[-1] if failures else None
        return exc
    # Some endpoint took the request without a clean answer: that failure (not a
    # ConnectFailed, which would claim "not sent") is the answer.
    return next(f for f in reversed(failures) if not isinstance(f, errors.ConnectFailed))


def answer_json(endpoint: str, content: bytes) -> dict[str, Any]:
    """The JSON object of a 200 answer.

    :raises ProtocolError: the body is not a JSON object
    """
    try:
        decoded = json.loads(content)
    except ValueError as exc:
        raise errors.ProtocolError(
            f"{endpoint} answered 200 with a body that is not JSON: {content[:200]!r}"
        ) from exc
    if not isinstance(decoded, dict):
        raise errors.ProtocolError(f"{endpoint} answered 200 with {decoded!r}")
    return decoded
