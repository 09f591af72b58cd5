"""Stable error URIs, and the one place library errors become ``ApplicationError``."""

from __future__ import annotations

from autobahn.wamp.exception import ApplicationError
from twisted.logger import Logger
from twisted.python.failure import Failure

from .. import errors
from ..pmap import TransactionConflict, TransactionTooLarge, UniqueViolation

__all__ = ["ErrorUris", "to_application_error"]

log = Logger()


class ErrorUris:
    """``<prefix>.error.*``: what a caller may rely on."""

    def __init__(self, prefix: str) -> None:
        self.not_found = f"{prefix}.error.not_found"
        self.invalid_argument = f"{prefix}.error.invalid_argument"
        self.conflict = f"{prefix}.error.conflict"
        self.too_large = f"{prefix}.error.too_large"
        self.unavailable = f"{prefix}.error.unavailable"
        self.permission_denied = f"{prefix}.error.permission_denied"
        self.internal = f"{prefix}.error.internal"
        self.bad_value = f"{prefix}.error.bad_value"  # a row's marker, never raised


def to_application_error(uris: ErrorUris, exc: BaseException) -> ApplicationError:
    """The ``ApplicationError`` a caller sees for ``exc`` (never a traceback).

    Cancellation is not an error of the procedure: callers of this re-raise
    ``CancelledError`` instead (see the component's ``_guarded``)."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, (TransactionConflict, UniqueViolation)):
        return ApplicationError(uris.conflict, str(exc))
    if isinstance(exc, (errors.RequestTooLarge, errors.TooManyOps, TransactionTooLarge)):
        return ApplicationError(uris.too_large, str(exc))
    if isinstance(exc, (errors.PermissionDenied, errors.Unauthenticated)):
        return ApplicationError(uris.permission_denied, str(exc))
    if isinstance(exc, (errors.TransportError, errors.Unavailable,
                        errors.DeadlineExceeded)):
        return ApplicationError(uris.unavailable, str(exc))
    if isinstance(exc, (TypeError, ValueError, UnicodeError, errors.InvalidRequest)):
        return ApplicationError(uris.invalid_argument, str(exc))
    log.failure("unexpected error in an etcdwamp procedure",
                failure=Failure(exc, type(exc), exc.__traceback__))
    return ApplicationError(uris.internal, f"internal error ({type(exc).__name__})")
