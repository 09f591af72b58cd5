"""What callers and the log see when a procedure fails: stable URIs, messages without
internals, argument errors naming the public signature, and rate-limited log lines."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp.wamp.errors import ErrorUris, to_application_error
from etcdwamp.wamp.quietlog import QuietLog
from etcdwamp.wamp.session import EtcdWampSession

ensure = pytest_twisted.ensureDeferred
URIS = ErrorUris("etcd")
URL = "http://127.0.0.1:42115"


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warn(self, fmt: str, **kwargs: Any) -> None:
        self.lines.append(("warn", fmt, kwargs))

    def failure(self, fmt: str, **kwargs: Any) -> None:
        self.lines.append(("failure", fmt, kwargs))


@pytest.mark.parametrize(("exc", "suffix"), [
    (e.RequestTimeout(f"no answer from {URL} within 9.99975848197937s", endpoint=URL),
     "unavailable"),
    (e.ConnectFailed(f"cannot connect to {URL}", endpoint=URL), "unavailable"),
    (e.NoSpace("etcdserver: mvcc: database space exceeded", code=8), "no_space"),
    (e.AuthenticationFailed("etcdserver: authentication failed, invalid user ID or password"),
     "unavailable"),
    (e.Unauthenticated("etcdserver: invalid auth token"), "unavailable"),
    (e.DuplicateKey("duplicate key given in txn request: b'demo/maps/\\x00\\x04k'"),
     "invalid_argument"),
    (e.InvalidArgument("etcdserver: key is not provided demo/maps/"), "invalid_argument"),
    (e.RevisionCompacted("etcdserver: mvcc: required revision has been compacted"),
     "unavailable"),
    (e.LeaseNotFound("etcdserver: requested lease not found"), "unavailable"),
    (e.ProtocolError("gateway sent garbage from http://127.0.0.1:42115"), "unavailable"),
])
def test_server_side_errors_reveal_no_internals(exc: BaseException, suffix: str) -> None:
    """Endpoints, key layout, raw timings and etcd's wording stay in the log; the caller
    gets the stable URI and a fixed message."""
    log = RecordingLog()
    err = to_application_error(URIS, exc, QuietLog(Clock().seconds, log=log))
    assert err.error == f"etcd.error.{suffix}"
    text = " ".join(str(a) for a in err.args)
    for leak in ("127.0.0.1", "http", "demo/maps", "9.99", "etcdserver", "\\x00"):
        assert leak not in text, (leak, text)


@pytest.mark.parametrize("exc", [
    e.RequestTimeout(f"no answer from {URL} within 9.99975848197937s", endpoint=URL),
    e.ConnectionLost(f"connection to {URL} lost before a complete answer", endpoint=URL),
    e.IndefiniteAnswer("etcdserver: request timed out", code=14, http_status=503,
                       endpoint=URL),
])
def test_an_unconfirmed_write_is_outcome_unknown_and_a_read_is_unavailable(
        exc: BaseException) -> None:
    """A caller told "unavailable" after a write that etcd applied would retry it:
    a write's open outcome has its own URI; a read's is just a failed read."""
    log = RecordingLog()
    quiet = QuietLog(Clock().seconds, log=log)
    err = to_application_error(URIS, exc, quiet, write=True)
    assert err.error == "etcd.error.outcome_unknown"
    text = " ".join(str(a) for a in err.args)
    assert "may or may not" in text
    for leak in ("127.0.0.1", "http", "9.99", "etcdserver", "code 14"):
        assert leak not in text, (leak, text)
    assert to_application_error(URIS, exc, quiet).error == "etcd.error.unavailable"


def test_a_write_refused_for_want_of_a_leader_is_unavailable_not_unknown() -> None:
    """NoLeader and ConnectFailed say "not applied": retrying is safe."""
    for exc in (e.NoLeader("etcdserver: no leader", code=14, http_status=503),
                e.ConnectFailed(f"cannot connect to {URL}", endpoint=URL)):
        err = to_application_error(URIS, exc, write=True)
        assert err.error == "etcd.error.unavailable", exc


def test_expected_failures_log_their_detail_once_a_minute() -> None:
    """The log gets the detail (endpoint included) without a traceback, once per kind per
    interval; the next line says how many were suppressed."""
    clock = Clock()
    log = RecordingLog()
    quiet = QuietLog(clock.seconds, log=log)
    for _ in range(1000):
        to_application_error(URIS, e.RequestTimeout(f"no answer from {URL}"), quiet)
    assert len(log.lines) == 1
    kind, _, kwargs = log.lines[0]
    assert kind == "warn" and URL in kwargs["detail"]
    clock.advance(59)
    to_application_error(URIS, e.RequestTimeout("again"), quiet)
    assert len(log.lines) == 1
    clock.advance(1)
    to_application_error(URIS, e.RequestTimeout("again"), quiet)
    assert len(log.lines) == 2
    assert log.lines[1][2]["suppressed"] == 1000
    to_application_error(URIS, e.NoSpace("full", code=8), quiet)  # another kind: logged
    assert len(log.lines) == 3


def test_unexpected_errors_are_internal_with_a_rate_limited_traceback() -> None:
    log = RecordingLog()
    quiet = QuietLog(Clock().seconds, log=log)
    for _ in range(50):
        err = to_application_error(URIS, RuntimeError("secret detail"), quiet)
        assert err.error == "etcd.error.internal"
        assert "secret detail" not in str(err.args)
    assert [kind for kind, _, _ in log.lines] == ["failure"]
    assert isinstance(log.lines[0][2]["failure"], Failure)


def test_long_validation_messages_are_bounded() -> None:
    err = to_application_error(URIS, ValueError("x" * 10_000))
    assert err.error == "etcd.error.invalid_argument"
    assert len(err.args[0]) < 400


class Session(EtcdWampSession):
    """The session mixin alone: enough to run ``_guarded`` and ``onUserError``."""

    def __init__(self) -> None:
        self._init_state()
        self.fallback: list[Any] = []

    async def get(self, name: Any, key: Any, details: Any = None) -> str:
        return f"{name}/{key}"


class Base:
    def onUserError(self, fail: Any, msg: str) -> None:
        self.fallback.append(fail)  # type: ignore[attr-defined]


class LoggingSession(Session, Base):
    pass


@ensure
async def test_wrong_arguments_name_the_public_signature() -> None:
    """A missing, extra or unknown argument is invalid_argument with the procedure's URI and
    its public parameters, never a TypeError about our methods."""
    s = Session()
    call = s._guarded(s.get, "etcd.map.get")
    assert await call("notes", "k", details=None) == "notes/k"
    for args, kwargs in [(("notes",), {}), (("a", "b", "c"), {}), (("a", "b"), {"bogus": 1})]:
        with pytest.raises(ApplicationError) as raised:
            await call(*args, details=None, **kwargs)
        assert raised.value.error == "etcd.error.invalid_argument"
        message = raised.value.args[0]
        assert message.startswith("etcd.map.get(name, key): ")
        assert "details" not in message and "Session" not in message


def test_cancelled_calls_are_counted_not_logged() -> None:
    """A call cancelled because its caller left is a count; application errors produce no
    line either; anything else still reaches Autobahn's logging."""
    s = LoggingSession()
    for _ in range(3000):
        s.onUserError(Failure(CancelledError()), "x")
    s.onUserError(Failure(ApplicationError("etcd.error.rate_limited")), "x")
    assert s.cancelled_calls == 3000
    assert s.fallback == []
    s.onUserError(Failure(RuntimeError("boom")), "x")
    assert len(s.fallback) == 1


def test_refusals_are_logged_once_a_minute_per_procedure_and_role() -> None:
    """A caller probing the rules in a loop gets every refusal, the log one line a minute."""
    from etcdwamp.wamp.access import Access, Caller

    clock = Clock()
    log = RecordingLog()
    access = Access(URIS, QuietLog(clock.seconds, log=log))
    guest = Caller(session=1, authid="a", authrole="guest")
    for _ in range(1000):
        with pytest.raises(ApplicationError) as raised:
            access.require_role(guest, frozenset({"writer"}), procedure="etcd.kv.get",
                                target="raw key b'x'", action="read")
        assert raised.value.error == "etcd.error.permission_denied"
    access.require_role(guest, None, procedure="etcd.kv.get", target="x", action="read")
    assert len(log.lines) == 1
    assert log.lines[0][2]["authrole"] == "guest"
    clock.advance(60)
    with pytest.raises(ApplicationError):
        access.require_role(guest, frozenset(), procedure="etcd.kv.get", target="x",
                            action="read")
    assert len(log.lines) == 2 and log.lines[1][2]["suppressed"] == 999
