"""Floor 2: the operator's side of etcd's v3 API, mixed into :class:`~etcdwamp.client.Client`.

Cluster membership, maintenance (alarms, defragmentation, hashes, leadership
transfer, status per member, snapshots), the lease list and the rest of auth
administration. Every method builds a :mod:`etcdwamp.wire` request and sends it
through the client's transport; calls that concern one member (``status``,
``defragment``, ``hash_kv``, ...) take ``endpoint=`` and go to that member only,
without failover, since an answer from another member would be about the wrong one.

What etcd 3.4's JSON gateway does not route, and what this module does instead:

- ``HashKV`` (the gateway maps it onto ``/maintenance/hash``, where ``Hash``
  answers; 3.5.10+ routes ``/maintenance/hashkv``): :meth:`OperationsMixin.hash_kv` raises
  :class:`~etcdwamp.errors.Unimplemented`; :meth:`OperationsMixin.hash` (a hash
  of the member's whole backend) works on every version.
- ``AuthStatus`` (etcd 3.5+): :meth:`OperationsMixin.auth_status` falls back to
  authenticating as a user nobody has and reads the answer ("authentication is
  not enabled" or "authentication failed"); ``auth_revision`` is then 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from . import errors
from ._deferred import deferred
from .transport import Transport
from .wire import (
    Alarm,
    AlarmMember,
    AlarmResult,
    DefragmentResult,
    HashKVResult,
    HashResult,
    KeySet,
    LeaseListResult,
    MemberAddResult,
    MemberListResult,
    MoveLeaderResult,
    Request,
    SnapshotDecoder,
    StatusResult,
    alarm_activate_request,
    alarm_disarm_request,
    alarm_list_request,
    defragment_request,
    hash_kv_request,
    hash_request,
    lease_leases_request,
    member_add_request,
    member_list_request,
    member_promote_request,
    member_remove_request,
    member_update_request,
    move_leader_request,
    status_request,
)
from .wire.auth import (
    AuthStatus,
    RoleInfo,
    UserInfo,
    auth_probe_request,
    auth_status_request,
    parse_auth_probe_error,
    role_delete_request,
    role_get_request,
    role_list_request,
    role_revoke_permission_request,
    user_change_password_request,
    user_delete_request,
    user_get_request,
    user_list_request,
    user_revoke_role_request,
)
from .wire.maintenance import SNAPSHOT_PATH
from .wire.results import Header

__all__ = ["OperationsMixin", "SnapshotInfo"]

T = TypeVar("T")

#: called with (bytes written so far, backend bytes etcd still has to send)
SnapshotProgress = Callable[[int, int], object]

_SHA256_LEN = 32


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A snapshot written by :meth:`OperationsMixin.snapshot`: ``size`` bytes
    (the backend and etcd's trailing SHA-256, as ``etcdctl snapshot save``
    writes it), from ``endpoint``."""

    size: int
    sha256: bytes
    endpoint: str


class OperationsMixin:
    """Cluster, maintenance, lease-list and auth administration calls.

    The host class provides ``transport`` (a :class:`~etcdwamp.transport.Transport`),
    ``endpoints`` and ``call(request)``; :class:`~etcdwamp.client.Client` does.
    """

    if TYPE_CHECKING:
        transport: Transport
        endpoints: tuple[str, ...]

        def call(self, request: Request[T]) -> Deferred[T]: ...

    # -- sending to one member ----------------------------------------------------

    def call_on(self, endpoint: str | None, request: Request[T]) -> Deferred[T]:
        """Send ``request`` to the member at ``endpoint`` only, without failover
        (None: as :meth:`call`); the client's pool, TLS, token and timeout apply."""
        if endpoint is None:
            return self.call(request)
        return self.transport.call(request, endpoint=_endpoint_url(endpoint))

    # -- cluster ------------------------------------------------------------------

    def member_list(self, *, linearizable: bool = False) -> Deferred[MemberListResult]:
        """The members of the cluster (``linearizable``: etcd 3.5+ asks the leader)."""
        return self.call(member_list_request(linearizable=linearizable))

    def member_add(self, peer_urls: Sequence[str], *,
                   learner: bool = False) -> Deferred[MemberAddResult]:
        """Add a member that will listen on ``peer_urls``; start it with
        ``--initial-cluster`` = ``result.initial_cluster(name)`` and
        ``--initial-cluster-state existing``. A ``learner`` does not vote until
        :meth:`member_promote`."""
        return self.call(member_add_request(peer_urls, learner=learner))

    def member_remove(self, member_id: int) -> Deferred[MemberListResult]:
        """Remove a member; its process stops itself once it learns of it."""
        return self.call(member_remove_request(member_id))

    def member_update(self, member_id: int,
                      peer_urls: Sequence[str]) -> Deferred[MemberListResult]:
        """Change the peer URLs a member is reached at.

        Not for learners: etcd 3.4 (and 3.5/3.6 before their 2026 fixes) then drops
        the learner flag from the member list while raft keeps it a learner, and
        it can no longer be promoted. Promote first, or remove and add it again.
        """
        return self.call(member_update_request(member_id, peer_urls))

    def member_promote(self, member_id: int) -> Deferred[MemberListResult]:
        """Make a learner a voting member.

        :raises FailedPrecondition: the learner has not caught up with the leader yet
        """
        return self.call(member_promote_request(member_id))

    @deferred
    async def refresh_endpoints(self) -> tuple[str, ...]:
        """Replace the client's endpoints by the client URLs of the started
        members (learners included), as :meth:`member_list` reports them, and
        return them. The endpoint in use stays first if it is still a member."""
        result = await self.call(member_list_request())
        urls = tuple(dict.fromkeys(u.rstrip("/") for u in result.client_urls()))
        if not urls:
            raise errors.ProtocolError("member list names no client URL")
        self.transport.set_endpoints(urls)
        self.endpoints = self.transport.endpoints
        return urls

    # -- maintenance ----------------------------------------------------------------

    def status(self, *, endpoint: str | None = None) -> Deferred[StatusResult]:
        """The status of one member: ``endpoint``, or the one answering
        (version, db size, leader, revision, raft index, learner or not)."""
        return self.call_on(endpoint, status_request())

    @deferred
    async def statuses(self) -> dict[str, StatusResult | errors.EtcdError]:
        """:meth:`status` of every endpoint; a member that fails has its error instead."""
        out: dict[str, StatusResult | errors.EtcdError] = {}
        for endpoint in self.endpoints:
            try:
                # call_on, not status(): Client's own status() has no endpoint=
                answer: StatusResult = await self.call_on(endpoint, status_request())
                out[endpoint] = answer
            except errors.EtcdError as exc:
                out[endpoint] = exc
        return out

    def alarm_list(self) -> Deferred[AlarmResult]:
        """The alarms raised on any member (NOSPACE, CORRUPT)."""
        return self.call(alarm_list_request())

    @deferred
    async def alarm_activate(self, member_id: int | None = None,
                             alarm: Alarm | str = Alarm.NOSPACE) -> AlarmResult:
        """Raise ``alarm`` (NOSPACE by default) on ``member_id`` (default: the member
        that answers), as python-etcd3's ``create_alarm``: to test how a program
        copes with a full cluster. Returns the alarm raised.

        A NOSPACE alarm refuses every write of every user until
        :meth:`alarm_disarm` (no space needs freeing: none was used up).
        """
        if member_id is None:
            member_id = (await self.call(status_request())).header.member_id
        return await self.call(alarm_activate_request(member_id, alarm))

    @deferred
    async def alarm_disarm(self, member_id: int | None = None,
                           alarm: Alarm | str | None = None) -> AlarmResult:
        """Deactivate ``alarm`` of ``member_id``; without arguments every raised
        alarm (what ``etcdctl alarm disarm`` does). Returns the alarms deactivated.

        A NOSPACE alarm comes back at the next write unless the backend shrank
        below the quota first: compact, then :meth:`defragment` every member.
        """
        if (member_id is None) != (alarm is None):
            raise ValueError("give member_id and alarm, or neither (disarm every alarm)")
        if member_id is not None and alarm is not None:
            return await self.call(alarm_disarm_request(member_id, alarm))
        raised = await self.call(alarm_list_request())
        header = raised.header
        done: list[AlarmMember] = []
        for item in raised.alarms:
            answer = await self.call(alarm_disarm_request(item.member_id, item.alarm))
            header = answer.header
            done.extend(answer.alarms)
        return AlarmResult(header=header, alarms=tuple(done))

    def defragment(self, *, endpoint: str | None = None) -> Deferred[DefragmentResult]:
        """Defragment one member's backend (``endpoint``, or the one answering),
        giving the space of compacted revisions back to the file system. The
        member answers nothing else meanwhile; there is no timeout."""
        return self.call_on(endpoint, defragment_request())

    def hash(self, *, endpoint: str | None = None) -> Deferred[HashResult]:
        """``Maintenance.Hash``: a hash of a member's whole backend."""
        return self.call_on(endpoint, hash_request())

    @deferred
    async def hash_kv(self, *, revision: int = 0, endpoint: str | None = None) -> HashKVResult:
        """``Maintenance.HashKV`` of a member's key space up to ``revision``.

        :raises Unimplemented: the gateway does not route HashKV (etcd 3.4)
        """
        try:
            return await self.call_on(endpoint, hash_kv_request(revision))
        except errors.NotFound as exc:
            if exc.http_status != 404 or "etcdserver" in exc.message:
                raise
            raise errors.Unimplemented(
                "this etcd's JSON gateway does not route HashKV (etcd 3.4 maps it onto "
                "/maintenance/hash, where Hash answers); compare members with hash() at "
                "the same revision, or use etcdctl endpoint hashkv over gRPC",
                code=12, http_status=404) from exc

    @deferred
    async def move_leader(self, member_id: int) -> MoveLeaderResult:
        """Hand the leadership to ``member_id`` (sent to the current leader,
        which must be among the client's endpoints, as with etcdctl)."""
        request = move_leader_request(member_id)
        for endpoint in self.endpoints:
            try:
                st = await self.call_on(endpoint, status_request())
            except errors.TransportError:
                continue
            if st.leader and st.leader == st.header.member_id:
                return await self.call_on(endpoint, request)
        raise errors.Unavailable("no endpoint of this client is the leader",
                                 code=14)

    @deferred
    async def snapshot(self, path_or_file: str | os.PathLike[str] | IO[bytes], *,
                       progress: SnapshotProgress | None = None,
                       endpoint: str | None = None) -> SnapshotInfo:
        """Stream a member's backend into a file, chunk by chunk (memory stays
        bounded whatever the size), as ``etcdctl snapshot save`` does; restore
        it with ``etcdctl snapshot restore`` (3.4) or ``etcdutl snapshot restore``.

        A path is written as ``path.part`` and renamed once etcd's trailing
        SHA-256 matched what arrived; a file object is written as given.
        ``progress(written, remaining)`` is called after each chunk.
        Cancelling stops the stream and removes ``path.part``.

        :raises ProtocolError: the checksum did not match or the stream ended early
        """
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable")
        transport = self.transport
        if endpoint is not None:
            endpoint = _endpoint_url(endpoint)
        target: IO[bytes]
        part: str | None = None
        if isinstance(path_or_file, (str, os.PathLike)):
            final = os.fspath(path_or_file)
            part = final + ".part"
            target = open(part, "wb")  # noqa: SIM115 - closed in finally
        elif hasattr(path_or_file, "write"):
            target = path_or_file
        else:
            raise TypeError(f"snapshot needs a path or a binary file, not "
                            f"{type(path_or_file).__name__}")
        ok = False
        try:
            opened = await transport.open_stream(SNAPSHOT_PATH, b"{}", endpoint=endpoint)
            writer = _SnapshotWriter(target, progress)
            opened.response.deliverBody(writer)
            digest = await writer.done
            ok = True
            return SnapshotInfo(size=writer.written, sha256=digest, endpoint=opened.endpoint)
        finally:
            if part is not None:
                target.close()
                if ok:
                    os.replace(part, final)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(part)

    # -- leases -------------------------------------------------------------------------

    def lease_leases(self) -> Deferred[LeaseListResult]:
        """The ids of every lease the cluster holds."""
        return self.call(lease_leases_request())

    # -- auth administration (the rest of it; enable/add/grant are on Client) ---------

    @deferred
    async def auth_status(self) -> AuthStatus:
        """Whether authentication is enabled (etcd 3.4: see the module notes)."""
        try:
            return await self.call(auth_status_request())
        except errors.NotFound as exc:
            if exc.http_status != 404 or "etcdserver" in exc.message:
                raise
        except errors.Unimplemented:
            pass  # etcd 3.4 over gRPC: no AuthStatus method (its gateway: a 404)
        try:
            await self.call(auth_probe_request())
        except errors.ServerError as exc:
            enabled = parse_auth_probe_error(exc)
            if enabled is None:
                raise
            return AuthStatus(header=Header(0, 0, 0, 0), enabled=enabled, auth_revision=0)
        raise errors.ProtocolError("etcd accepted a login nobody can have")

    def user_get(self, user: str) -> Deferred[UserInfo]:
        """The roles of ``user``. :raises FailedPrecondition: no such user"""
        return self.call(user_get_request(user))

    def user_list(self) -> Deferred[tuple[str, ...]]:
        """The names of every user."""
        return self.call(user_list_request())

    def user_delete(self, user: str) -> Deferred[Header]:
        """Delete ``user``. :raises FailedPrecondition: no such user"""
        return self.call(user_delete_request(user))

    def user_change_password(self, user: str, password: str) -> Deferred[Header]:
        """Set ``user``'s password. :raises FailedPrecondition: no such user"""
        return self.call(user_change_password_request(user, password))

    def user_revoke_role(self, user: str, role: str) -> Deferred[Header]:
        """Take ``role`` from ``user``. :raises FailedPrecondition: no such user, or not its role"""
        return self.call(user_revoke_role_request(user, role))

    def role_get(self, role: str) -> Deferred[RoleInfo]:
        """The permissions of ``role``. :raises FailedPrecondition: no such role"""
        return self.call(role_get_request(role))

    def role_list(self) -> Deferred[tuple[str, ...]]:
        """The names of every role."""
        return self.call(role_list_request())

    def role_delete(self, role: str) -> Deferred[Header]:
        """Delete ``role``; users that had it lose its permissions.

        :raises FailedPrecondition: no such role
        """
        return self.call(role_delete_request(role))

    def role_revoke_permission(self, role: str, keys: bytes | KeySet) -> Deferred[Header]:
        """Take back the permission ``role`` has on exactly ``keys`` (the same
        key or range it was granted on)."""
        return self.call(role_revoke_permission_request(role, keys))


def _endpoint_url(endpoint: object) -> str:
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a URL str, not {type(endpoint).__name__}")
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"endpoint URL must start with http:// or https://: {endpoint!r}")
    return endpoint.rstrip("/")


class _SnapshotWriter(Protocol):
    """Writes each decoded chunk as it arrives, so at most one TCP read and
    one frame are held in memory; checks etcd's trailing SHA-256."""

    def __init__(self, target: IO[bytes], progress: SnapshotProgress | None) -> None:
        self.target = target
        self.progress = progress
        self.decoder = SnapshotDecoder()
        self.hasher = hashlib.sha256()
        # the hash of everything before the latest frame: etcd's last frame is
        # the SHA-256 of all frames before it, and only the end tells which is last
        self.hash_before_last = self.hasher.copy()
        self.last: bytes | None = None
        self.written = 0
        self.failure: BaseException | None = None
        self.done: Deferred[bytes] = Deferred(self._cancel)

    def _cancel(self, _: Deferred[bytes]) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.failure is not None:
            return
        try:
            self._write(self.decoder.feed(data))
        except Exception as exc:  # a bad frame or a full disk ends the stream
            self._fail(exc)

    def _write(self, chunks: Sequence[Any]) -> None:
        for chunk in chunks:
            blob = chunk.blob
            self.hash_before_last = self.hasher.copy()
            self.hasher.update(blob)
            self.last = blob
            self.target.write(blob)
            self.written += len(blob)
            if self.progress is not None:
                self.progress(self.written, chunk.remaining_bytes)

    def _fail(self, exc: BaseException) -> None:
        self.failure = exc
        if self.transport is not None:
            self.transport.stopProducing()
        if not self.done.called:
            self.done.errback(exc)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.done.called:
            return
        if self.failure is None:
            try:
                self._write(self.decoder.close())
            except Exception as exc:
                self._fail(exc)
                return
        if reason is not None and not isinstance(reason.value,
                                                 (ResponseDone, PotentialDataLoss)):
            if isinstance(reason.value, CancelledError):
                self.done.errback(reason)
                return
            self.done.errback(errors.ConnectionLost(
                f"snapshot stream broke after {self.written} bytes: {reason.value}"))
            return
        if self.last is None or len(self.last) != _SHA256_LEN or self.written == _SHA256_LEN:
            self.done.errback(errors.ProtocolError(
                f"snapshot stream ended after {self.written} bytes without its checksum"))
        elif self.last != self.hash_before_last.digest():
            self.done.errback(errors.ProtocolError(
                "snapshot checksum mismatch: the data arrived damaged or incomplete"))
        else:
            self.done.callback(self.last)
