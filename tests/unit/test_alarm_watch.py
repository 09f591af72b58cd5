"""The component's alarm watch on a ``task.Clock``: a warning a minute while etcd has an
alarm raised (NOSPACE stops every write), none when there is none, stopped on leave."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from etcdwamp import errors
from etcdwamp.wamp.alarms import AlarmWatch
from etcdwamp.wire.maintenance import Alarm, AlarmMember


class FakeEtcd:
    def __init__(self) -> None:
        self.raised: list[AlarmMember] = []
        self.asked = 0
        self.hang: Deferred[Any] | None = None
        self.away = False

    def alarm_list(self) -> Deferred[Any]:
        self.asked += 1
        if self.hang is not None:
            return self.hang
        if self.away:
            d: Deferred[Any] = Deferred()
            d.errback(errors.ConnectFailed("no etcd"))
            return d
        return Deferred.fromCoroutine(self._answer())

    async def _answer(self) -> Any:
        return SimpleNamespace(alarms=list(self.raised))


class Log:
    def __init__(self) -> None:
        self.warnings: list[dict[str, Any]] = []

    def warn(self, fmt: str, **kwargs: Any) -> None:
        self.warnings.append(kwargs)


def test_a_warning_a_minute_while_nospace_lasts() -> None:
    clock, etcd, log = Clock(), FakeEtcd(), Log()
    watch = AlarmWatch(etcd, clock, log)  # type: ignore[arg-type]
    watch.start()
    clock.advance(60)
    assert etcd.asked == 1 and log.warnings == []
    etcd.raised = [AlarmMember(1, Alarm.NOSPACE), AlarmMember(2, Alarm.NOSPACE)]
    for _ in range(3):
        clock.advance(60)
    assert [w["alarms"] for w in log.warnings] == [["NOSPACE"]] * 3
    etcd.away = True  # etcd unreachable: no warning about alarms, and checks go on
    clock.advance(60)
    etcd.away, etcd.raised = False, []
    clock.advance(60)
    assert etcd.asked == 6 and len(log.warnings) == 3
    watch.stop()
    clock.advance(600)
    assert etcd.asked == 6


def test_stop_cancels_a_check_under_way() -> None:
    clock, etcd, log = Clock(), FakeEtcd(), Log()
    cancelled: list[bool] = []
    etcd.hang = Deferred(lambda _: cancelled.append(True))
    watch = AlarmWatch(etcd, clock, log)  # type: ignore[arg-type]
    watch.start()
    clock.advance(60)
    watch.stop()
    assert cancelled == [True]
    clock.advance(600)
    assert etcd.asked == 1 and not clock.getDelayedCalls()
