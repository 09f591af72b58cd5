"""Rates per session, per authid and per role: what callers may make the component spend.

``extra.limits`` (every key optional; numbers > 0, ``null`` for "no limit")::

    {"default": {"session": {"calls_per_second": 200, "writes_per_second": 50,
                             "write_bytes_per_second": 262144, "in_flight": 16,
                             "read_bytes_per_second": 1048576},
                 "authid": {"calls_per_second": 400, "writes_per_second": 100,
                            "write_bytes_per_second": 524288, "in_flight": 32,
                            "read_bytes_per_second": 2097152},
                 "role": {"calls_per_second": 2000, "writes_per_second": 200,
                          "write_bytes_per_second": 524288, "in_flight": 512,
                          "read_bytes_per_second": 8388608}},
     "roles": {"writer": {"session": {"writes_per_second": 1000}},
               "backend": null}}

``default`` applies to every role not named in ``roles`` (anonymous guests
among them); a role's entry changes only the fields it names; a role mapped to
``null`` is not limited at all. The ``session`` rates apply to each WAMP
session, the ``authid`` rates to all sessions of one authid together (an
authenticated user cannot multiply its budget by opening sessions), and the
``role`` rates to all sessions of the role together: anonymous guests get a
new authid per session, so only this bound adds them up, and it is what keeps
many browsers from filling etcd's quota between two compactions (size the
quota to at least the roles' written bytes/s times twice the compaction
retention, see docs/operations.rst).

Results are paid for after the fact: a call's result and progressive pages
count against ``read_bytes_per_second``, a big result passes, and its caller
then waits (``rate_limited``) until the rate has paid for it. Crossbar queues
results for a caller that reads its socket slowly without telling the
component, so this is what bounds how fast such a queue can grow.

A cancelled call (its caller cancelled it or left) costs ``CANCEL_COST``
calls more to its session and authid (not to its role, so one caller's
cancels never lock out the others): cancelling tears down its connection to
etcd, and a caller that cancels in a loop would otherwise keep the component
busy opening new ones.

Rates are token buckets holding one second's worth (a caller may burst to its
rate at once, then keeps to it). Writes are the ``put``, ``delete`` and ``txn``
procedures; their bytes are the sizes of the keys and values they carry. A
call past a limit fails at once with ``<prefix>.error.rate_limited`` and the
kwarg ``retry_after`` (seconds), and nothing is sent to etcd.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autobahn.wamp.exception import ApplicationError

from .errors import ErrorUris

__all__ = ["CANCEL_COST", "LimitSettings", "Limiter", "Rates", "RoleLimits", "Ticket",
           "payload_bytes"]

#: state of this many idle callers at most is kept between sweeps
_SWEEP_EVERY = 1024
#: the payload is measured this deep at most (deeper values are refused elsewhere)
_MAX_DEPTH = 64
#: what a cancelled call costs on top of itself, in calls (see the module docstring)
CANCEL_COST = 10.0
#: how far a caller's result bytes may run ahead of its read rate, in seconds of it: all
#: its calls in flight may end at once, and each of their results is paid for in full
READ_DEBT_SECONDS = 60.0


@dataclass(frozen=True)
class Rates:
    """What one session (or all sessions of one authid) may spend; None: no limit."""

    calls_per_second: float | None = 200.0
    writes_per_second: float | None = 50.0
    write_bytes_per_second: float | None = 256 * 1024
    #: a browser page needs a few calls at once; each may bring back a result of up to
    #: 4 MiB before its bytes are paid for, so this also bounds that first burst
    in_flight: int | None = 16
    #: bytes of results (plain and progressive) per second: charged after the fact, so
    #: a big result passes and its caller then waits until the rate has paid for it
    read_bytes_per_second: float | None = 1024 * 1024


@dataclass(frozen=True)
class RoleLimits:
    """The rates of one role: per session, per authid and for the whole role."""

    session: Rates = field(default_factory=Rates)
    authid: Rates = field(default_factory=lambda: Rates(
        calls_per_second=400.0, writes_per_second=100.0, write_bytes_per_second=512 * 1024,
        in_flight=32, read_bytes_per_second=2 * 1024 * 1024))
    role: Rates = field(default_factory=lambda: Rates(
        calls_per_second=2000.0, writes_per_second=200.0, write_bytes_per_second=512 * 1024,
        in_flight=512, read_bytes_per_second=8 * 1024 * 1024))


@dataclass(frozen=True)
class LimitSettings:
    """``extra.limits``: the rates of each role (see the module docstring)."""

    default: RoleLimits = field(default_factory=RoleLimits)
    roles: Mapping[str, RoleLimits | None] = field(default_factory=dict)

    def of(self, role: str | None) -> RoleLimits | None:
        """The limits of ``role`` (None: unlimited)."""
        if role is not None and role in self.roles:
            return self.roles[role]
        return self.default


def payload_bytes(value: Any, depth: int = 0) -> int:
    """About how many bytes ``value`` (a call's arguments) would store: the lengths of its
    strings and byte strings, 8 per other scalar."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if depth >= _MAX_DEPTH:
        return 0
    if isinstance(value, Mapping):
        return sum(payload_bytes(k, depth + 1) + payload_bytes(v, depth + 1)
                   for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(payload_bytes(v, depth + 1) for v in value)
    return 8


class _Bucket:
    """A token bucket holding one second's worth of ``rate``."""

    __slots__ = ("at", "rate", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = now

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` tokens are there (0: now). A cost beyond one second's
        worth needs a full bucket, not more: a single write larger than the byte rate is
        allowed once the bucket is full."""
        self._refill(now)
        cost = min(cost, self.rate)
        return 0.0 if self.tokens >= cost else (cost - self.tokens) / self.rate

    def take(self, cost: float) -> None:
        self.tokens -= min(cost, self.rate)

    def charge(self, cost: float, *, most: float | None = None) -> None:
        """Spend ``cost`` after the fact: the bucket may go into debt, of at most ``most``
        (default: a second's worth)."""
        self.tokens = max(self.tokens - cost, -(self.rate if most is None else most))

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.rate


class _Account:
    """What one session or one authid spends now."""

    __slots__ = ("bytes", "calls", "in_flight", "rates", "read", "writes")

    def __init__(self, rates: Rates, now: float) -> None:
        self.rates = rates
        self.calls = _bucket(rates.calls_per_second, now)
        self.writes = _bucket(rates.writes_per_second, now)
        self.bytes = _bucket(rates.write_bytes_per_second, now)
        self.read = _bucket(rates.read_bytes_per_second, now)
        self.in_flight = 0

    def idle(self, now: float) -> bool:
        return self.in_flight == 0 and all(
            b is None or b.full(now) for b in (self.calls, self.writes, self.bytes, self.read))


class Ticket:
    """One admitted call: report what it sent (:meth:`sent`) and when it ended (:meth:`done`)."""

    __slots__ = ("_accounts", "_role")

    def __init__(self, accounts: list[_Account], role: _Account | None) -> None:
        self._accounts = accounts
        self._role = role

    def sent(self, size: int) -> None:
        """Charge ``size`` bytes of results (a page or the whole result) to the caller.

        A debt of the whole size: the caller then waits until its rate has paid
        for it. Crossbar queues results for a caller that reads its socket slowly,
        without backpressure; this bounds how fast that queue can grow."""
        for account in self._accounts:
            if account.read is None:
                continue
            if account is self._role:
                # The role's account shares the bound among callers, never the blame:
                # one slow reader must not lock out the rest of its role for long.
                account.read.charge(size)
            else:
                account.read.charge(size, most=READ_DEBT_SECONDS * account.read.rate)

    def done(self, cancelled: bool) -> None:
        """The call ended (``cancelled``: its caller cancelled it or left)."""
        for account in self._accounts:
            account.in_flight -= 1
            # The caller's own accounts pay for its cancels, never the role's: one
            # caller cancelling in a loop must not lock out the rest of its role.
            if cancelled and account is not self._role and account.calls is not None:
                account.calls.charge(CANCEL_COST)


def _bucket(rate: float | None, now: float) -> _Bucket | None:
    return None if rate is None else _Bucket(rate, now)


class Limiter:
    """Admits or refuses calls by the rates of :class:`LimitSettings`.

    :param seconds: the clock (``reactor.seconds``; a ``task.Clock``'s in tests)
    :param refused: told the limit of every refusal: ``"in_flight"`` or ``"rate"``
        (calls, writes or bytes per second)
    """

    def __init__(self, settings: LimitSettings, uris: ErrorUris,
                 seconds: Callable[[], float],
                 refused: Callable[[str], None] | None = None) -> None:
        self._report = refused
        self.settings = settings
        self.uris = uris
        self._seconds = seconds
        self._sessions: dict[Any, _Account] = {}
        self._authids: dict[tuple[str, str | None], _Account] = {}
        self._roles: dict[str, _Account] = {}
        self._opened = 0
        #: calls refused so far (the log gets a line a minute, see QuietLog)
        self.refused = 0
        #: calls whose session the router did not disclose (they share one account)
        self.undisclosed = 0

    def admit(self, details: Any, *, write: bool, payload: Any) -> Ticket | None:
        """Count a call of ``details``' caller; returns its :class:`Ticket` (None when its
        role is unlimited).

        :raises ApplicationError: ``rate_limited`` with ``retry_after`` (seconds), before
            anything was counted
        """
        role = getattr(details, "caller_authrole", None)
        limits = self.settings.of(role)
        if limits is None:
            return None
        if getattr(details, "caller", None) is None:
            # The router disclosed no session: all such callers share one account
            # (bounded, if unfair); the node config should disclose the caller.
            self.undisclosed += 1
        now = self._seconds()
        accounts = [self._account(self._sessions, getattr(details, "caller", None),
                                  limits.session, now)]
        role_account = None
        if role is not None:
            role_account = self._account(self._roles, role, limits.role, now)
            accounts.append(role_account)
        authid = getattr(details, "caller_authid", None)
        if authid is not None:
            # Per role too: an authid whose sessions have roles of different rates
            # keeps one account per role instead of swapping (and so resetting) one.
            accounts.append(self._account(self._authids, (authid, role), limits.authid, now))
        size = payload_bytes(payload) if write else 0
        retry = 0.0
        for account in accounts:
            if account.rates.in_flight is not None and \
                    account.in_flight >= account.rates.in_flight:
                self._refuse("in_flight", "too many calls in flight", 0.05)
            for bucket, cost in ((account.calls, 1.0), (account.writes, 1.0 if write else 0),
                                 (account.bytes, size)):
                if bucket is not None and cost:
                    retry = max(retry, bucket.wait(cost, now))
            if account.read is not None:  # results sent before are paid for first
                retry = max(retry, account.read.wait(0.0, now))
        if retry > 0:
            self._refuse("rate", "too many calls or bytes per second", retry)
        for account in accounts:
            for bucket, cost in ((account.calls, 1.0), (account.writes, 1.0 if write else 0),
                                 (account.bytes, size)):
                if bucket is not None and cost:
                    bucket.take(cost)
            account.in_flight += 1
        return Ticket(accounts, role_account)

    def _account(self, table: dict[Any, _Account], who: Any, rates: Rates,
                 now: float) -> _Account:
        account = table.get(who)
        if account is None or account.rates is not rates:
            self._opened += 1
            if self._opened % _SWEEP_EVERY == 0:
                self._sweep(now)
            account = table[who] = _Account(rates, now)
        return account

    def _sweep(self, now: float) -> None:
        """Forget callers with nothing in flight and full buckets: a fresh account is the
        same, so memory follows the callers active now, not every caller ever seen."""
        tables: tuple[dict[Any, _Account], ...] = (self._sessions, self._authids, self._roles)
        for table in tables:
            for who in [w for w, a in table.items() if a.idle(now)]:
                del table[who]

    def _refuse(self, limit: str, why: str, retry_after: float) -> None:
        self.refused += 1
        if self._report is not None:
            self._report(limit)
        seconds = round(max(retry_after, 0.01) + 0.005, 2)
        raise ApplicationError(self.uris.rate_limited,
                               f"rate limit reached ({why}); retry after {seconds} s",
                               retry_after=seconds)
