"""Rates per session and per authid on a ``task.Clock``: refusals at once with
``retry_after``, refills over time, in-flight counts, per-role settings."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet.task import Clock

from etcdwamp.wamp.errors import ErrorUris
from etcdwamp.wamp.limits import Limiter, LimitSettings, Rates, RoleLimits, payload_bytes
from etcdwamp.wamp.settings import Settings, SettingsError

GOOD = {"etcd": {"endpoints": ["http://127.0.0.1:2379"]}}
RATE_LIMITED = "etcd.error.rate_limited"


def caller(session: int, authid: str = "anon", role: str = "guest") -> Any:
    return SimpleNamespace(caller=session, caller_authid=authid, caller_authrole=role)


UNLIMITED = Rates(None, None, None, None)


def limiter(session: Rates, authid: Rates | None = None,
            roles: dict[str, RoleLimits | None] | None = None,
            role: Rates | None = None) -> tuple[Clock, Limiter]:
    clock = Clock()
    settings = LimitSettings(default=RoleLimits(session=session, authid=authid or UNLIMITED,
                                                role=role or UNLIMITED), roles=roles or {})
    return clock, Limiter(settings, ErrorUris("etcd"), clock.seconds)


def refused(lim: Limiter, who: Any, *, write: bool = False, payload: Any = ()) -> float:
    with pytest.raises(ApplicationError) as raised:
        lim.admit(who, write=write, payload=payload)
    assert raised.value.error == RATE_LIMITED
    retry = raised.value.kwargs["retry_after"]
    assert isinstance(retry, float) and retry > 0
    return float(retry)


def test_writes_per_second_refuse_at_once_and_refill() -> None:
    clock, lim = limiter(Rates(calls_per_second=None, writes_per_second=5,
                               write_bytes_per_second=None, in_flight=None))
    who = caller(1)
    for _ in range(5):
        ticket = lim.admit(who, write=True, payload=("k", "v"))
        assert ticket is not None
        ticket.done(False)
    retry = refused(lim, who, write=True)
    assert 0.15 <= retry <= 0.25  # one token at 5/s
    lim.admit(who, write=False, payload=())  # reads do not spend write tokens
    clock.advance(retry)
    lim.admit(who, write=True, payload=())
    refused(lim, who, write=True)
    assert lim.refused == 2


def test_written_bytes_per_second() -> None:
    clock, lim = limiter(Rates(calls_per_second=None, writes_per_second=None,
                               write_bytes_per_second=1000, in_flight=None))
    who = caller(1)
    lim.admit(who, write=True, payload=("k", "x" * 599))  # 600 bytes
    retry = refused(lim, who, write=True, payload=("k", "x" * 599))
    assert retry == pytest.approx(0.2, abs=0.02)
    # A single write above the byte rate passes once the bucket is full, never sooner.
    clock.advance(1)
    lim.admit(who, write=True, payload=("x" * 5000,))
    refused(lim, who, write=True, payload=("k",))


def test_in_flight_counts_until_done() -> None:
    _, lim = limiter(Rates(calls_per_second=None, writes_per_second=None,
                           write_bytes_per_second=None, in_flight=3))
    who = caller(1)
    pending = [lim.admit(who, write=False, payload=()) for _ in range(3)]
    refused(lim, who)
    lim.admit(caller(2), write=False, payload=())  # another session has its own budget
    ticket = pending.pop()
    assert ticket is not None
    ticket.done(False)
    lim.admit(who, write=False, payload=())


def test_authid_budget_is_shared_by_its_sessions() -> None:
    _, lim = limiter(Rates(calls_per_second=10, writes_per_second=None,
                           write_bytes_per_second=None, in_flight=None),
                     authid=Rates(calls_per_second=15, writes_per_second=None,
                                  write_bytes_per_second=None, in_flight=None))
    admitted = 0
    for session in range(1, 4):  # three sessions of one user, 10 calls each
        for _ in range(10):
            try:
                lim.admit(caller(session, authid="alice"), write=False, payload=())
                admitted += 1
            except ApplicationError:
                pass
    assert admitted == 15
    lim.admit(caller(9, authid="bob"), write=False, payload=())  # bob is not alice


def test_roles_unlimited_or_their_own_rates() -> None:
    tight = Rates(calls_per_second=1, writes_per_second=None, write_bytes_per_second=None,
                  in_flight=None)
    _, lim = limiter(tight, roles={"backend": None, "writer": RoleLimits(
        session=Rates(calls_per_second=100, writes_per_second=None,
                      write_bytes_per_second=None, in_flight=None),
        authid=Rates(None, None, None, None))})
    assert lim.admit(caller(1, role="backend"), write=True, payload=()) is None
    for _ in range(50):
        lim.admit(caller(2, role="writer"), write=False, payload=())
    lim.admit(caller(3), write=False, payload=())
    refused(lim, caller(3))
    lim.admit(caller(4, role=None), write=False, payload=())  # undisclosed role: default
    refused(lim, caller(4, role=None))


def test_idle_callers_are_forgotten() -> None:
    clock, lim = limiter(Rates(calls_per_second=10, writes_per_second=None,
                               write_bytes_per_second=None, in_flight=None))
    for session in range(5000):
        ticket = lim.admit(caller(session, authid=f"a{session}"), write=False, payload=())
        assert ticket is not None
        ticket.done(False)
        clock.advance(0.2)  # each one's bucket is full again long before the sweep
    assert len(lim._sessions) < 2048


def test_payload_bytes_counts_strings_and_scalars() -> None:
    assert payload_bytes(("notes", "k", {"text": "hello", "n": 1})) == 5 + 1 + 4 + 5 + 1 + 8
    nested: Any = []
    for _ in range(1000):
        nested = [nested]
    assert payload_bytes(nested) == 0  # bounded depth, no recursion error


def test_limits_settings_merge_and_validate() -> None:
    s = Settings.from_extra({**GOOD, "limits": {
        "default": {"session": {"writes_per_second": 10}},
        "roles": {"writer": {"authid": {"in_flight": None}}, "backend": None}}})
    assert s.limits.default.session.writes_per_second == 10.0
    assert s.limits.default.session.in_flight == 16  # the field not named keeps its default
    writer = s.limits.of("writer")
    assert writer is not None and writer.session.writes_per_second == 10.0
    assert writer.authid.in_flight is None
    assert s.limits.of("backend") is None
    assert s.limits.default.role.write_bytes_per_second == 512 * 1024
    assert Settings.from_extra({**GOOD, "limits": {"default": {"role": {
        "write_bytes_per_second": None}}}}).limits.default.role.write_bytes_per_second is None
    assert Settings.from_extra(GOOD).limits.of("guest") == RoleLimits()
    for bad, match in [({"defualt": {}}, "did you mean 'default'"),
                       ({"default": {"session": {"in_flight": 1.5}}}, "positive int"),
                       ({"default": {"session": {"calls_per_second": 0}}}, "positive number"),
                       ({"default": {"session": {"calls_per_second": True}}}, "positive"),
                       ({"roles": {"w": {"sesion": {}}}}, "did you mean 'session'"),
                       ({"roles": []}, "must be an object")]:
        with pytest.raises(SettingsError, match=match):
            Settings.from_extra({**GOOD, "limits": bad})


def test_an_authid_with_sessions_of_two_roles_cannot_reset_its_account() -> None:
    """Alternating roles of one authid must not swap (and so refill) one account."""
    tight = Rates(calls_per_second=None, writes_per_second=None, write_bytes_per_second=None,
                  in_flight=2)
    _, lim = limiter(Rates(None, None, None, None), authid=tight, roles={
        "other": RoleLimits(session=Rates(None, None, None, None), authid=tight)})
    lim.admit(caller(1, authid="mallory", role="guest"), write=False, payload=())
    lim.admit(caller(2, authid="mallory", role="other"), write=False, payload=())
    lim.admit(caller(1, authid="mallory", role="guest"), write=False, payload=())
    refused(lim, caller(1, authid="mallory", role="guest"))
    lim.admit(caller(2, authid="mallory", role="other"), write=False, payload=())
    refused(lim, caller(2, authid="mallory", role="other"))


def test_calls_without_a_disclosed_session_are_counted_and_share_an_account() -> None:
    _, lim = limiter(Rates(calls_per_second=None, writes_per_second=None,
                           write_bytes_per_second=None, in_flight=2))
    anonymous = SimpleNamespace(caller=None, caller_authid=None, caller_authrole="guest")
    lim.admit(anonymous, write=False, payload=())
    lim.admit(anonymous, write=False, payload=())
    refused(lim, anonymous)
    assert lim.undisclosed == 3


def test_the_role_bound_adds_up_sessions_with_authids_of_their_own() -> None:
    """Anonymous guests get a new authid per session: only the role's rate adds them up."""
    clock, lim = limiter(Rates(calls_per_second=None, writes_per_second=None,
                               write_bytes_per_second=1000, in_flight=None),
                         role=Rates(calls_per_second=None, writes_per_second=None,
                                    write_bytes_per_second=3000, in_flight=None))
    stored = 0
    for session in range(20):
        try:
            lim.admit(caller(session, authid=f"anon-{session}"), write=True,
                      payload=("k", "x" * 899))
            stored += 900
        except ApplicationError as exc:
            assert exc.error == RATE_LIMITED
    assert stored == 2700  # three sessions' worth, not twenty
    lim.admit(caller(99, role="writer"), write=True, payload=("x" * 900,))  # another role
    clock.advance(1)
    lim.admit(caller(50, authid="anon-50"), write=True, payload=("x" * 900,))


def test_a_cancelled_call_costs_more_than_a_finished_one() -> None:
    _, lim = limiter(Rates(calls_per_second=100, writes_per_second=None,
                           write_bytes_per_second=None, in_flight=None))
    who = caller(1)
    finished = 0
    for _ in range(100):
        ticket = lim.admit(who, write=False, payload=())
        assert ticket is not None
        ticket.done(True)  # cancelled: 1 + CANCEL_COST
        finished += 1
        try:
            lim.admit(who, write=False, payload=()).done(False)  # type: ignore[union-attr]
        except ApplicationError:
            break
    assert finished <= 10


def test_one_callers_cancels_do_not_lock_out_its_role() -> None:
    _, lim = limiter(UNLIMITED, role=Rates(calls_per_second=100, writes_per_second=None,
                                           write_bytes_per_second=None, in_flight=None))
    for _ in range(50):
        ticket = lim.admit(caller(1), write=False, payload=())
        assert ticket is not None
        ticket.done(True)
    lim.admit(caller(2), write=False, payload=())  # 50 of the role's 100 are left


def test_results_are_paid_for_after_the_fact() -> None:
    """A big result passes; then its caller waits until its read rate has paid for it (a
    caller reading slowly cannot have results piled up for it faster than that)."""
    clock, lim = limiter(Rates(calls_per_second=None, writes_per_second=None,
                               write_bytes_per_second=None, in_flight=None,
                               read_bytes_per_second=1000))
    who = caller(1)
    ticket = lim.admit(who, write=False, payload=())
    assert ticket is not None
    ticket.sent(4000)  # e.g. 4 kB of progressive pages and result
    ticket.done(False)
    retry = refused(lim, who)
    assert retry == pytest.approx(3.0, abs=0.05)  # a full bucket of 1000 paid the rest
    lim.admit(caller(2), write=False, payload=())  # another session pays its own
    clock.advance(retry)
    lim.admit(who, write=False, payload=())
