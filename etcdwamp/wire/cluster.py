"""etcd's Cluster service: membership as data (list, add, remove, update, promote)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ProtocolError
from .encoding import get_bool, get_int, int64, require_int
from .requests import Request
from .results import Header, parse_header

__all__ = [
    "Member",
    "MemberAddResult",
    "MemberListResult",
    "member_add_request",
    "member_list_request",
    "member_promote_request",
    "member_remove_request",
    "member_update_request",
    "parse_member_add",
    "parse_member_list",
]

_UINT64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Member:
    """One cluster member. ``name`` and ``client_urls`` are empty until a
    member added with :func:`member_add_request` has started and joined."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def started(self) -> bool:
        """Whether the member has started and joined (an added member has no name until then)."""
        return bool(self.name)


@dataclass(frozen=True, slots=True)
class MemberListResult:
    """The members (list, remove, update, promote all answer with the new list)."""

    header: Header
    members: tuple[Member, ...]

    def client_urls(self) -> tuple[str, ...]:
        """The client URLs of every started member, in member order."""
        return tuple(url for m in self.members for url in m.client_urls)


@dataclass(frozen=True, slots=True)
class MemberAddResult:
    """The member just added (its id and peer URLs) and the resulting member list."""

    header: Header
    member: Member
    members: tuple[Member, ...]

    def initial_cluster(self, name: str) -> str:
        """The ``--initial-cluster`` value the new member starts with (as ``name``),
        with ``--initial-cluster-state existing``; members not yet started are
        left out, as etcdctl does."""
        parts: list[str] = []
        for m in self.members:
            member_name = name if m.id == self.member.id else m.name
            if member_name:
                parts.extend(f"{member_name}={url}" for url in m.peer_urls)
        return ",".join(parts)


def _strings(obj: Mapping[str, Any], name: str) -> tuple[str, ...]:
    raw = obj.get(name)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(u, str) for u in raw):
        raise ProtocolError(f"field {name!r} should be a list of strings, got {raw!r}")
    return tuple(raw)


def parse_member(obj: Any) -> Member:
    """One member of an answer. Raises :class:`ProtocolError` for a malformed one."""
    if not isinstance(obj, Mapping):
        raise ProtocolError(f"a member should be a JSON object, got {obj!r}")
    name = obj.get("name", "")
    if not isinstance(name, str):
        raise ProtocolError(f"member name should be a string, got {name!r}")
    return Member(
        id=get_int(obj, "ID"),
        name=name,
        peer_urls=_strings(obj, "peerURLs"),
        client_urls=_strings(obj, "clientURLs"),
        is_learner=get_bool(obj, "isLearner"),
    )


def _members(obj: Mapping[str, Any]) -> tuple[Member, ...]:
    raw = obj.get("members")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ProtocolError(f"members should be a JSON array, got {raw!r}")
    return tuple(parse_member(m) for m in raw)


def parse_member_list(obj: Mapping[str, Any]) -> MemberListResult:
    """A member list (of MemberList, Remove, Update or Promote). Raises :class:`ProtocolError`
    for a malformed one.
    """
    return MemberListResult(header=parse_header(obj), members=_members(obj))


def parse_member_add(obj: Mapping[str, Any]) -> MemberAddResult:
    """A MemberAddResponse. Raises :class:`ProtocolError` for a malformed one."""
    if not isinstance(obj.get("member"), Mapping):
        raise ProtocolError("member add answered without the new member")
    return MemberAddResult(header=parse_header(obj), member=parse_member(obj["member"]),
                           members=_members(obj))


def member_id(value: object) -> int:
    """A member id: a positive uint64 (etcdctl prints them in hex; pass ``int(s, 16)``)."""
    return require_int(value, "member_id", minimum=1, maximum=_UINT64_MAX)


def peer_urls(urls: Sequence[str] | str) -> list[str]:
    """``urls`` as a list after checking each is ``http(s)://host:port``.

    :raises TypeError: a single str instead of a list, or a non-str URL
    :raises ValueError: a URL without scheme, host or port, or no URL at all
    """
    if isinstance(urls, str):
        raise TypeError("peer_urls must be a list of URLs, not one str")
    out = []
    for url in urls:
        if not isinstance(url, str):
            raise TypeError(f"peer URLs must be str, not {type(url).__name__}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
            raise ValueError(f"a peer URL is scheme://host:port (http or https): {url!r}")
        out.append(url)
    if not out:
        raise ValueError("give at least one peer URL")
    return out


def member_list_request(*, linearizable: bool = False) -> Request[MemberListResult]:
    """A ``/cluster/member/list`` call; ``linearizable=True`` (etcd 3.5+) asks for a
    linearizable answer rather than the answering member's local view.
    """
    body: dict[str, Any] = {}
    if linearizable:
        # etcd 3.5+; 3.4's gateway ignores unknown fields, so the flag is harmless there
        body["linearizable"] = True
    return Request("/cluster/member/list", body, parse_member_list, idempotent=True)


def member_add_request(urls: Sequence[str], *,
                       learner: bool = False) -> Request[MemberAddResult]:
    """A ``/cluster/member/add`` call announcing a member at ``urls`` (peer URLs), as a
    non-voting learner if ``learner``; start the member afterwards with
    :meth:`MemberAddResult.initial_cluster`.

    Not resent on an unknown outcome. Raises ``TypeError``/``ValueError`` for bad URLs.
    """
    if not isinstance(learner, bool):
        raise TypeError(f"learner must be a bool, not {type(learner).__name__}")
    body: dict[str, Any] = {"peerURLs": peer_urls(urls)}
    if learner:
        body["isLearner"] = True
    # Sent twice it would fail ("peerURL exists") or add a second member.
    return Request("/cluster/member/add", body, parse_member_add, idempotent=False)


def member_remove_request(member: int) -> Request[MemberListResult]:
    """A ``/cluster/member/remove`` call removing member ``member`` (its id); not resent on an
    unknown outcome.
    """
    return Request("/cluster/member/remove", {"ID": int64(member_id(member))},
                   parse_member_list, idempotent=False)


def member_update_request(member: int, urls: Sequence[str]) -> Request[MemberListResult]:
    """A ``/cluster/member/update`` call setting the peer URLs of member ``member``."""
    body = {"ID": int64(member_id(member)), "peerURLs": peer_urls(urls)}
    # Not idempotent: a member that hung applies a copy it buffered late, after
    # later updates; resent elsewhere, that copy would restore older peer URLs.
    return Request("/cluster/member/update", body, parse_member_list, idempotent=False)


def member_promote_request(member: int) -> Request[MemberListResult]:
    """A ``/cluster/member/promote`` call making learner ``member`` a voting member; not resent
    on an unknown outcome.
    """
    return Request("/cluster/member/promote", {"ID": int64(member_id(member))},
                   parse_member_list, idempotent=False)


