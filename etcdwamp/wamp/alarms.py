"""The alarms etcd has raised, as ``<prefix>.status`` reports them."""

from __future__ import annotations

from .. import errors
from ..client import Client

__all__ = ["active_alarms"]


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
