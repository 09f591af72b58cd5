"""The alarms etcd has raised, as ``<prefix>.status`` reports them."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred

from .. import errors
from ..client import Client

__all__ = ["ALARM_CHECK_INTERVAL", "AlarmWatch", "active_alarms"]


async def active_alarms(client: Client) -> list[str] | None:
    """The kinds of alarm raised on any member of ``client``'s cluster, each once and
    sorted (``["NOSPACE"]`` while the backend is over its quota: every write fails), or
    None when the client's etcd user may not list them.

    Other etcd errors propagate, as those of the status call beside it do.
    """
    try:
        raised = await client.alarm_list()
    except errors.PermissionDenied:
        return None
    return sorted({item.alarm.value for item in raised.alarms})


#: seconds between two alarm checks: a warning a minute while an alarm lasts
ALARM_CHECK_INTERVAL = 60.0


class AlarmWatch:
    """Asks etcd for raised alarms every ``interval`` seconds and logs a warning for each
    check that finds one (NOSPACE: every write of every caller fails until an operator
    compacts, defragments and disarms), so the log says so while it lasts, whether or
    not calls are failing. One request a minute per component instance.

    :param clock: ``callLater`` (the reactor; a ``task.Clock`` in tests)
    """

    def __init__(self, client: Client, clock: Any, log: Any,
                 interval: float = ALARM_CHECK_INTERVAL) -> None:
        self.client = client
        self.clock = clock
        self.log = log
        self.interval = interval
        self._timer: Any = None
        self._check: Deferred[None] | None = None
        self._stopped = False

    def start(self) -> None:
        """Check every ``interval`` seconds from now on, until :meth:`stop`."""
        self._timer = self.clock.callLater(self.interval, self._tick)

    def stop(self) -> None:
        """Stop checking; a check under way is cancelled."""
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self._check is not None:
            self._check.cancel()

    def _tick(self) -> None:
        self._timer = None
        self._check = Deferred.fromCoroutine(self._once())
        self._check.addErrback(lambda f: f.trap(CancelledError))
        self._check.addBoth(self._again)

    def _again(self, _: object) -> None:
        self._check = None
        if not self._stopped:
            self._timer = self.clock.callLater(self.interval, self._tick)

    async def _once(self) -> None:
        try:
            raised = await active_alarms(self.client)
        except errors.EtcdError:
            return  # etcd away: calls say so, and the next check looks again
        if raised:
            self.log.warn("etcdwamp: etcd has raised {alarms}: writes fail for every caller "
                          "until an operator compacts, defragments and disarms "
                          "(docs/operations.rst)", alarms=raised)
