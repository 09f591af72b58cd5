"""Floor 1: the etcd JSON gateway as pure data, no I/O.

Build requests (:mod:`.requests`, :mod:`.txn`), parse answers into frozen
dataclasses (:mod:`.results`) and errors into exceptions (:mod:`etcdwamp.wire.errors`).

Names are imported from their module on first use (PEP 562), so that a program that
sends one request (the command line's ``get``) does not pay for the cluster,
maintenance, auth and transaction modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster import (
        Member,
        MemberAddResult,
        MemberListResult,
        member_add_request,
        member_list_request,
        member_promote_request,
        member_remove_request,
        member_update_request,
    )
    from .encoding import b64, require_bytes, require_int, text_or_bytes
    from .errors import error_from_response
    from .keyset import KeySet, as_keyset, prefix_range_end
    from .leases import LeaseListResult, lease_leases_request
    from .maintenance import (
        Alarm,
        AlarmMember,
        AlarmResult,
        DefragmentResult,
        HashKVResult,
        HashResult,
        MoveLeaderResult,
        SnapshotChunk,
        SnapshotDecoder,
        alarm_activate_request,
        alarm_disarm_request,
        alarm_list_request,
        defragment_request,
        hash_kv_request,
        hash_request,
        move_leader_request,
    )
    from .requests import (
        DEFAULT_MAX_REQUEST_BYTES,
        Request,
        SortOrder,
        SortTarget,
        check_size,
        compact_request,
        delete_request,
        lease_grant_request,
        lease_revoke_request,
        lease_ttl_request,
        put_request,
        range_request,
        status_request,
    )
    from .results import (
        CompactResult,
        DeleteResult,
        Header,
        KeyValue,
        LeaseGrantResult,
        LeaseInfo,
        LeaseRevokeResult,
        OpResult,
        PutResult,
        RangeResult,
        StatusResult,
        TxnResult,
    )
    from .txn import (
        DEFAULT_MAX_TXN_OPS,
        Compare,
        CompareResult,
        CompCreated,
        CompLease,
        CompModified,
        CompValue,
        CompVersion,
        OpDel,
        OpGet,
        OpSet,
        Transaction,
        txn_request,
    )

# Each public name -> the submodule that defines it.
_LAZY: dict[str, str] = {
    "Alarm": "maintenance",
    "AlarmMember": "maintenance",
    "AlarmResult": "maintenance",
    "CompCreated": "txn",
    "CompLease": "txn",
    "CompModified": "txn",
    "CompValue": "txn",
    "CompVersion": "txn",
    "CompactResult": "results",
    "Compare": "txn",
    "CompareResult": "txn",
    "DEFAULT_MAX_REQUEST_BYTES": "requests",
    "DEFAULT_MAX_TXN_OPS": "txn",
    "DefragmentResult": "maintenance",
    "DeleteResult": "results",
    "HashKVResult": "maintenance",
    "HashResult": "maintenance",
    "Header": "results",
    "KeySet": "keyset",
    "KeyValue": "results",
    "LeaseGrantResult": "results",
    "LeaseInfo": "results",
    "LeaseListResult": "leases",
    "LeaseRevokeResult": "results",
    "Member": "cluster",
    "MemberAddResult": "cluster",
    "MemberListResult": "cluster",
    "MoveLeaderResult": "maintenance",
    "OpDel": "txn",
    "OpGet": "txn",
    "OpResult": "results",
    "OpSet": "txn",
    "PutResult": "results",
    "RangeResult": "results",
    "Request": "requests",
    "SnapshotChunk": "maintenance",
    "SnapshotDecoder": "maintenance",
    "SortOrder": "requests",
    "SortTarget": "requests",
    "StatusResult": "results",
    "Transaction": "txn",
    "TxnResult": "results",
    "alarm_activate_request": "maintenance",
    "alarm_disarm_request": "maintenance",
    "alarm_list_request": "maintenance",
    "as_keyset": "keyset",
    "b64": "encoding",
    "check_size": "requests",
    "compact_request": "requests",
    "defragment_request": "maintenance",
    "delete_request": "requests",
    "error_from_response": "errors",
    "hash_kv_request": "maintenance",
    "hash_request": "maintenance",
    "lease_grant_request": "requests",
    "lease_leases_request": "leases",
    "lease_revoke_request": "requests",
    "lease_ttl_request": "requests",
    "member_add_request": "cluster",
    "member_list_request": "cluster",
    "member_promote_request": "cluster",
    "member_remove_request": "cluster",
    "member_update_request": "cluster",
    "move_leader_request": "maintenance",
    "prefix_range_end": "keyset",
    "put_request": "requests",
    "range_request": "requests",
    "require_bytes": "encoding",
    "require_int": "encoding",
    "status_request": "requests",
    "text_or_bytes": "encoding",
    "txn_request": "txn",
}

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_TXN_OPS",
    "Alarm",
    "AlarmMember",
    "AlarmResult",
    "CompCreated",
    "CompLease",
    "CompModified",
    "CompValue",
    "CompVersion",
    "CompactResult",
    "Compare",
    "CompareResult",
    "DefragmentResult",
    "DeleteResult",
    "HashKVResult",
    "HashResult",
    "Header",
    "KeySet",
    "KeyValue",
    "LeaseGrantResult",
    "LeaseInfo",
    "LeaseListResult",
    "LeaseRevokeResult",
    "Member",
    "MemberAddResult",
    "MemberListResult",
    "MoveLeaderResult",
    "OpDel",
    "OpGet",
    "OpResult",
    "OpSet",
    "PutResult",
    "RangeResult",
    "Request",
    "SnapshotChunk",
    "SnapshotDecoder",
    "SortOrder",
    "SortTarget",
    "StatusResult",
    "Transaction",
    "TxnResult",
    "alarm_activate_request",
    "alarm_disarm_request",
    "alarm_list_request",
    "as_keyset",
    "b64",
    "check_size",
    "compact_request",
    "defragment_request",
    "delete_request",
    "error_from_response",
    "hash_kv_request",
    "hash_request",
    "lease_grant_request",
    "lease_leases_request",
    "lease_revoke_request",
    "lease_ttl_request",
    "member_add_request",
    "member_list_request",
    "member_promote_request",
    "member_remove_request",
    "member_update_request",
    "move_leader_request",
    "prefix_range_end",
    "put_request",
    "range_request",
    "require_bytes",
    "require_int",
    "status_request",
    "text_or_bytes",
    "txn_request",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its submodule on first use, then keep it here."""
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
