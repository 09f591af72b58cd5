"""The one exception tree of etcdwamp.

Everything the library raises on purpose derives from :class:`EtcdError`.
Bad input is both an :class:`EtcdError` and a built-in ``ValueError`` (via
:class:`InvalidRequest`) so callers may catch either; wrong *types* (``str``
where ``bytes`` is required) raise the plain built-in ``TypeError``, as Python
code is expected to.

A transaction whose compares fail is **not** an exception: it is a normal
:class:`~etcdwamp.wire.TxnResult` with ``succeeded == False``, because the
failure branch is part of what the caller asked etcd to do. Only
``Client.submit``, txaioetcd's name kept for code moving over, raises
:class:`TxnFailed` then, as txaioetcd's ``Failed``.

::

    EtcdError
     +-- InvalidRequest (also ValueError)      bad input, caught before or by etcd
     +-- Busy                                  too many calls wait already: nothing sent
     +-- TransportError                        the request did not get a clean answer
     |    +-- ConnectFailed                    never reached any server: safe to retry
     |    +-- OutcomeUnknown                   may have been applied
     |         +-- RequestTimeout
     |         +-- ConnectionLost
     |         +-- IndefiniteAnswer            etcd answered, but not whether it applied it
     +-- ProtocolError                         the gateway sent something unparseable
     +-- WatchCompacted, WatchCanceled         a watch that cannot go on
     +-- LeaseExpired                          a kept-alive lease was lost
     +-- TxnFailed                             compares did not hold (Client.submit only)
     +-- ServerError                           etcd answered with a gRPC status
          +-- InvalidArgument (also InvalidRequest)
          |    +-- RequestTooLarge, TooManyOps, DuplicateKey, EmptyKey,
          |        AuthenticationFailed
          +-- OutOfRange
          |    +-- RevisionCompacted, FutureRevision
          +-- NotFound
          |    +-- LeaseNotFound
          +-- Unavailable
          |    +-- NoLeader                    the member has no leader: not applied
          +-- PermissionDenied, Unauthenticated, DeadlineExceeded,
              FailedPrecondition, Unimplemented, Internal, ...
          +-- ResourceExhausted
               +-- NoSpace
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationFailed",
    "Busy",
    "ConnectFailed",
    "ConnectionLost",
    "DeadlineExceeded",
    "DuplicateKey",
    "EmptyKey",
    "EtcdError",
    "FailedPrecondition",
    "FutureRevision",
    "IndefiniteAnswer",
    "Internal",
    "InvalidArgument",
    "InvalidRequest",
    "LeaseExpired",
    "LeaseNotFound",
    "NoLeader",
    "NoSpace",
    "NotFound",
    "OutOfRange",
    "OutcomeUnknown",
    "PermissionDenied",
    "ProtocolError",
    "RequestTimeout",
    "RequestTooLarge",
    "ResourceExhausted",
    "RevisionCompacted",
    "ServerError",
    "TooManyOps",
    "TransportError",
    "TxnFailed",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "WatchCanceled",
    "WatchCompacted",
]


class EtcdError(Exception):
    """Base class of every error etcdwamp raises on purpose."""


class InvalidRequest(EtcdError, ValueError):
    """The request is invalid (detected by etcdwamp before sending, or by etcd)."""


class Busy(EtcdError):
    """Too many calls of this client wait for a connection already (``max_queued``):
    nothing was sent, so it is safe to retry later."""

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class TransportError(EtcdError):
    """The HTTP exchange with the gateway failed before a complete answer arrived."""

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class ConnectFailed(TransportError):
    """No connection could be made: the request provably never reached a server.

    Raised only after every configured endpoint was tried.
    """


class OutcomeUnknown(TransportError):
    """The request was sent but no answer arrived: a write may or may not have been applied."""


class RequestTimeout(OutcomeUnknown):
    """No complete answer arrived within the client's ``timeout``."""


class ConnectionLost(OutcomeUnknown):
    """The connection broke after the request was sent."""


class IndefiniteAnswer(OutcomeUnknown):
    """etcd answered a request that is not idempotent with an error that does not
    say whether it was applied: its own request timeout (``request timed out``,
    ``... possibly due to previous leader failure``), ``leader changed``,
    a deadline or a cancellation on its side (gRPC codes 14, 4, 1). The
    proposal may have been committed after the answer was sent: read back, or
    guard a retry with a compare, as for any :class:`OutcomeUnknown`.

    :ivar code: etcd's gRPC status code
    :ivar message: etcd's message
    :ivar http_status: the HTTP status of the gateway's answer
    """

    def __init__(self, message: str, *, code: int, http_status: int | None,
                 endpoint: str | None = None) -> None:
        super().__init__(f"{message} (gRPC code {code}): the request may or may not "
                         "have been applied", endpoint=endpoint)
        self.message = message
        self.code = code
        self.http_status = http_status


class WatchCompacted(EtcdError):
    """A watch cannot resume: the revisions it missed were compacted.

    Re-read the range and watch again from that read's revision + 1
    (``Client.get_and_watch`` does both).
    """

    def __init__(self, compact_revision: int, keyset: object = None) -> None:
        super().__init__(
            f"watch cannot resume: history before revision {compact_revision} is compacted"
        )
        self.compact_revision = compact_revision
        self.keyset = keyset


class LeaseExpired(EtcdError):
    """A lease is gone (expired, or revoked elsewhere): keys attached to it are deleted."""

    def __init__(self, lease_id: int, detail: str = "etcd no longer knows it") -> None:
        super().__init__(f"lease {lease_id} is lost: {detail}")
        self.lease_id = lease_id


class TxnFailed(EtcdError):
    """The compares of a transaction sent with ``Client.submit`` did not hold.

    txaioetcd's ``Failed`` (``etcdwamp.Failed`` is this class). ``Client.txn``
    returns such a result instead of raising.

    :ivar result: the ``TxnResult`` (``succeeded`` is False)
    :ivar header: its header
    :ivar responses: the results of the transaction's ``failure`` ops
    """

    def __init__(self, result: Any) -> None:
        super().__init__(f"transaction compares did not hold at revision "
                         f"{result.header.revision}")
        self.result = result
        self.header = result.header
        self.responses = result.responses


class WatchCanceled(EtcdError):
    """etcd canceled a watch for a reason other than compaction (e.g. permissions)."""


class ProtocolError(EtcdError):
    """The gateway answered with something that is not a valid etcd response."""


class ServerError(EtcdError):
    """etcd answered a request with an error status.

    :ivar code: the gRPC status code (``3`` = INVALID_ARGUMENT, ...)
    :ivar message: etcd's message, e.g. ``"etcdserver: request is too large"``
    :ivar http_status: the HTTP status of the gateway answer, ``None`` when the
        error was detected by etcdwamp before sending
    """

    grpc_code: ClassVar[int] = 2  # UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        details: tuple[Any, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = self.grpc_code if code is None else code
        self.http_status = http_status
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} (gRPC code {self.code})"


class InvalidArgument(ServerError, InvalidRequest):
    """etcd refused the request as malformed (gRPC INVALID_ARGUMENT)."""

    grpc_code = 3


class RequestTooLarge(InvalidArgument):
    """The request exceeds etcd's request size limit (``--max-request-bytes``, 1.5 MiB)."""


class TooManyOps(InvalidArgument):
    """A transaction has more operations than etcd allows (``--max-txn-ops``, 128)."""


class DuplicateKey(InvalidArgument):
    """A transaction writes the same key twice in one branch."""


class EmptyKey(InvalidArgument):
    """A request names the empty key, which etcd does not allow."""


class AuthenticationFailed(InvalidArgument):
    """Wrong user name or password."""


class DeadlineExceeded(ServerError):
    """The request's deadline passed before etcd finished it (gRPC DEADLINE_EXCEEDED)."""

    grpc_code = 4


class NotFound(ServerError):
    """What the request names does not exist, e.g. a lease, user or role (gRPC NOT_FOUND)."""

    grpc_code = 5


class LeaseNotFound(NotFound):
    """The lease named by the request does not exist (expired or revoked)."""


class PermissionDenied(ServerError):
    """The authenticated user lacks the permission, e.g. for a key (gRPC PERMISSION_DENIED)."""

    grpc_code = 7


class ResourceExhausted(ServerError):
    """etcd is out of a resource, e.g. its storage quota (gRPC RESOURCE_EXHAUSTED)."""

    grpc_code = 8


class NoSpace(ResourceExhausted):
    """etcd's backend reached its quota (``--quota-backend-bytes``) and raised
    the NOSPACE alarm: writes fail until space is freed (compact, defragment)
    and the alarm is disarmed (:meth:`~etcdwamp.Client.alarm_disarm`)."""


class FailedPrecondition(ServerError):
    """The request cannot run in the cluster's current state (gRPC FAILED_PRECONDITION)."""

    grpc_code = 9


class OutOfRange(ServerError):
    """A revision outside what the store holds: compacted or in the future (gRPC OUT_OF_RANGE)."""

    grpc_code = 11


class RevisionCompacted(OutOfRange):
    """The requested revision has been compacted away."""


class FutureRevision(OutOfRange):
    """The requested revision is newer than the store's current revision."""


class Unimplemented(ServerError):
    """This etcd does not offer the called service or method (gRPC UNIMPLEMENTED)."""

    grpc_code = 12


class Internal(ServerError):
    """etcd failed internally (gRPC INTERNAL)."""

    grpc_code = 13


class Unavailable(ServerError):
    """The member cannot serve now, e.g. it has no leader or timed out (gRPC UNAVAILABLE)."""

    grpc_code = 14


class NoLeader(Unavailable):
    """The member answering has no leader (``etcdserver: no leader``): it is cut
    off from a majority or an election runs. etcd refused the request before
    proposing it, so it was **not** applied; another member may serve it."""


class Unauthenticated(ServerError):
    """No valid auth token: missing, expired or revoked (gRPC UNAUTHENTICATED)."""

    grpc_code = 16
