"""Stable error URIs, and the one place library errors become ``ApplicationError``.

Every error has two audiences. The caller gets a stable URI and a message
that says what it did wrong, or that the service cannot serve it now, and
never how the service is built: no etcd endpoint, no internal key bytes, no
raw timings, no library exception text. The log gets the detail (the library
error as it was), once a minute per kind of failure at most
(:class:`~etcdwamp.wamp.quietlog.QuietLog`), without the values involved and
without a traceback for a failure that was expected (etcd away, storage
full, bad input). Only a failure nobody expected (a bug) is logged with its
traceback, and reaches the caller as ``internal``.
"""

from __future__ import annotations

from autobahn.wamp.exception import ApplicationError
from twisted.logger import Logger
from twisted.python.failure import Failure

from .. import errors
from ..pmap import TransactionConflict, TransactionTooLarge, UniqueViolation
from .quietlog import QuietLog

__all__ = ["ErrorUris", "to_application_error"]

log = Logger()

#: longest caller-facing message taken from a validation error (which may quote what
#: the caller sent back to it)
_MAX_MESSAGE = 300


class ErrorUris:
    """``<prefix>.error.*``: what a caller may rely on."""

    def __init__(self, prefix: str) -> None:
        self.not_found = f"{prefix}.error.not_found"
        self.invalid_argument = f"{prefix}.error.invalid_argument"
        self.conflict = f"{prefix}.error.conflict"
        #: a key, value or request beyond a configured or etcd's size limit
        self.too_large = f"{prefix}.error.too_large"
        #: a put would create a key beyond a map's or kv prefix's ``max_keys``
        self.quota_exceeded = f"{prefix}.error.quota_exceeded"
        #: the caller's session or authid went past a rate in ``extra.limits``
        #: (kwarg ``retry_after``: seconds)
        self.rate_limited = f"{prefix}.error.rate_limited"
        #: etcd's storage quota is full (NOSPACE): writes fail until an operator frees space
        self.no_space = f"{prefix}.error.no_space"
        #: too many calls already wait for etcd; nothing was sent
        self.busy = f"{prefix}.error.busy"
        #: a stored value the component cannot decode or carry (per row, in results)
        self.bad_value = f"{prefix}.error.bad_value"
        self.unavailable = f"{prefix}.error.unavailable"
        #: a write was sent but not confirmed (no answer in time, a lost
        #: connection, etcd's own timeout): it may or may not have been applied
        self.outcome_unknown = f"{prefix}.error.outcome_unknown"
        self.permission_denied = f"{prefix}.error.permission_denied"
        self.internal = f"{prefix}.error.internal"


def _public(exc: BaseException) -> str:
    """The caller-facing text of a validation error: its message, bounded."""
    text = str(exc)
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def to_application_error(uris: ErrorUris, exc: BaseException,
                         quiet: QuietLog | None = None, *,
                         write: bool = False) -> ApplicationError:
    """The ``ApplicationError`` a caller sees for ``exc`` (never a traceback, never internals).

    ``quiet`` logs the detail of expected server-side failures (etcd away,
    storage full, the component's own etcd login refused), once a minute per
    kind; without it they are logged every time. Cancellation is not an error
    of the procedure: callers of this re-raise ``CancelledError`` instead (see
    the component's ``_guarded``).

    ``write``: the procedure writes, so an :class:`~etcdwamp.errors.OutcomeUnknown`
    is ``outcome_unknown`` (it may have been applied: a caller that retries
    blindly may apply it twice); for a read it is only ``unavailable``."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, (TransactionConflict, UniqueViolation)):
        return ApplicationError(uris.conflict, "a concurrent write changed what this call "
                                "read; nothing was written")
    if isinstance(exc, errors.TooManyOps):
        return ApplicationError(uris.too_large, "too many operations in one transaction")
    if isinstance(exc, (errors.RequestTooLarge, TransactionTooLarge)):
        return ApplicationError(uris.too_large, "the request is larger than etcd accepts")
    if isinstance(exc, errors.DuplicateKey):
        return ApplicationError(uris.invalid_argument,
                                "a transaction names the same key twice")
    if isinstance(exc, errors.NoSpace):
        _detail(quiet, "no_space", exc, "etcd raised NOSPACE: writes fail until an operator "
                "compacts, defragments and disarms the alarm")
        return ApplicationError(uris.no_space, "the store is full: writes are refused until "
                                "an operator frees space")
    if isinstance(exc, (errors.AuthenticationFailed, errors.Unauthenticated)):
        # The component's own etcd credentials, not the caller's doing.
        _detail(quiet, "etcd_login", exc, "etcd refused the component's credentials")
        return ApplicationError(uris.unavailable, "the store is unavailable; try again later")
    if isinstance(exc, errors.PermissionDenied):
        # etcd's own permissions deny the component (its etcd role lacks a grant).
        _detail(quiet, "etcd_permission", exc, "etcd denied the component access")
        return ApplicationError(uris.permission_denied,
                                "the service may not access this data")
    if isinstance(exc, errors.Busy):
        _detail(quiet, "busy", exc, "calls refused: too many already wait for etcd")
        return ApplicationError(uris.busy, "too many calls are waiting for the store; "
                                "try again later")
    if write and isinstance(exc, errors.OutcomeUnknown):
        _detail(quiet, "outcome_unknown", exc, "a write was not confirmed")
        return ApplicationError(uris.outcome_unknown, "the store did not confirm the write: "
                                "it may or may not have been applied; read it back before "
                                "trying again")
    if isinstance(exc, (errors.TransportError, errors.Unavailable,
                        errors.DeadlineExceeded)):
        _detail(quiet, "unavailable", exc, "etcd did not answer")
        return ApplicationError(uris.unavailable, "the store is unavailable; try again later")
    if isinstance(exc, errors.ServerError) and isinstance(exc, errors.InvalidRequest):
        # etcd's own wording may name keys as the component stores them.
        return ApplicationError(uris.invalid_argument, "the store refused the request "
                                f"as invalid ({type(exc).__name__})")
    if isinstance(exc, (TypeError, ValueError, UnicodeError, errors.InvalidRequest)):
        return ApplicationError(uris.invalid_argument, _public(exc))
    if isinstance(exc, errors.EtcdError):
        # etcd answered in a way the call cannot go on from (history compacted under
        # a paged read, a lease gone, a protocol hiccup): expected of a store, not a
        # bug of ours, and nothing the caller can fix but by trying again.
        _detail(quiet, f"etcd:{type(exc).__name__}", exc, "etcd failed a call")
        return ApplicationError(uris.unavailable, "the store could not complete the call; "
                                "try again")
    failure = Failure(exc, type(exc), exc.__traceback__)
    if quiet is None:
        log.failure("etcdwamp: unexpected error in a procedure", failure=failure)
    else:
        quiet.failure(f"internal:{type(exc).__name__}",
                      "etcdwamp: unexpected error in a procedure", failure)
    return ApplicationError(uris.internal, f"internal error ({type(exc).__name__})")


def _detail(quiet: QuietLog | None, key: str, exc: BaseException, what: str) -> None:
    fmt = "etcdwamp: {what}: {kind}: {detail}"
    if quiet is None:
        log.warn(fmt, what=what, kind=type(exc).__name__, detail=str(exc))
    else:
        quiet.warn(key, fmt, what=what, kind=type(exc).__name__, detail=str(exc))

