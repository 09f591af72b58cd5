"""Closing a transport lets background clean-ups (a cancelled candidacy's lease
revoke) finish first, so they are not cut off, nor reopen the connections after."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp.transport import Transport, TwistedHTTP


class ClosingHTTP(TwistedHTTP):
    """Records when it is closed; sends nothing."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> Deferred[None]:
        self.closed += 1
        return succeed(None)


def transport(http: ClosingHTTP) -> Transport:
    return Transport(http, Clock(), ["http://127.0.0.1:1"],
                     timeout=5.0, max_request_bytes=1 << 20)


def test_close_waits_for_every_clean_up_under_way_and_leaves_their_outcome() -> None:
    http = ClosingHTTP()
    t = transport(http)
    ok: Deferred[None] = Deferred()
    bad: Deferred[None] = Deferred()
    t.clean_up(ok)
    t.clean_up(bad)
    closing = t.close()
    assert not closing.called and http.closed == 0
    ok.callback(None)
    assert not closing.called and http.closed == 0
    bad.errback(ValueError("revoke failed"))
    assert closing.called and http.closed == 1
    seen: list[Failure] = []
    bad.addErrback(seen.append)  # the failure is still its owner's to handle
    assert seen and seen[0].check(ValueError)


def test_close_without_clean_ups_closes_at_once() -> None:
    http = ClosingHTTP()
    t = transport(http)
    t.clean_up(succeed(None))  # already over: nothing to wait for
    assert t.close().called and http.closed == 1
