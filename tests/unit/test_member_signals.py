"""``EtcdMember.kill`` waits for the process to exit, so it refuses the signals that do
not end it: SIGSTOP would block the caller (a test's reactor) for 20 s and then SIGKILL
the member, which is a crash, not the hung member the caller meant."""

from __future__ import annotations

import signal

import pytest

from etcdwamp.testing.servers import EtcdMember


@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGCONT])
def test_kill_refuses_signals_that_do_not_end_the_process(sig: signal.Signals) -> None:
    member = EtcdMember.__new__(EtcdMember)  # no process needed: refused before any
    with pytest.raises(ValueError, match=r"process\.pid"):
        member.kill(sig)
