"""Who is calling, and whether the configured rules let them.

The router authenticates callers and discloses ``caller``, ``caller_authid``
and ``caller_authrole`` in each call's details (the node config must set
``"disclose": {"caller": true}``). The component then applies the rules of
``extra`` itself, on every procedure that reaches data, because a URI
permission in Crossbar cannot see which map, key or transaction op a call
touches. A rule the component cannot check (the router disclosed no role) is
a refusal, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.logger import Logger

from .errors import ErrorUris
from .quietlog import QuietLog

__all__ = ["Access", "Caller"]


@dataclass(frozen=True)
class Caller:
    """The authenticated identity behind one call."""

    session: int | None
    authid: str | None
    authrole: str | None

    @classmethod
    def of(cls, details: Any) -> Caller:
        """Who made the call, from its ``details`` (None for what the router did not disclose)."""
        return cls(session=getattr(details, "caller", None),
                   authid=getattr(details, "caller_authid", None),
                   authrole=getattr(details, "caller_authrole", None))


class Access:
    """Checks rules and turns a refusal into ``<prefix>.error.permission_denied``.

    Refusals are logged with who, what and where, never with the values
    involved (they may be secrets or personal data); with ``quiet``, at most
    one line a minute per procedure and role (a caller probing the rules in a
    loop must not fill the log), else each at info level."""

    log = Logger()

    def __init__(self, uris: ErrorUris, quiet: QuietLog | None = None) -> None:
        self.uris = uris
        self.quiet = quiet

    def deny(self, caller: Caller, procedure: str, target: str, why: str) -> ApplicationError:
        """Log a refusal and return (not raise) the ``permission_denied`` error for it."""
        fmt = ("etcdwamp: denied {procedure} on {target} to authid={authid} "
               "authrole={authrole}: {why}")
        fields = {"procedure": procedure, "target": target, "authid": caller.authid,
                  "authrole": caller.authrole, "why": why}
        if self.quiet is None:
            self.log.info(fmt, **fields)
        else:
            self.quiet.warn(f"denied:{procedure}:{caller.authrole}", fmt, **fields)
        return ApplicationError(self.uris.permission_denied,
                                f"{procedure}: not allowed on {target} ({why})")

    def require_role(self, caller: Caller, roles: frozenset[str] | None, *,
                     procedure: str, target: str, action: str) -> None:
        """Pass if ``roles`` is None (no rule) or holds the caller's authrole."""
        if roles is None:
            return
        if caller.authrole is None:
            raise self.deny(caller, procedure, target,
                            f"{action} is limited to some roles and the router disclosed "
                            "no caller role")
        if caller.authrole not in roles:
            raise self.deny(caller, procedure, target,
                            f"role {caller.authrole!r} may not {action}")

    def require_owner(self, caller: Caller, key: str, *, procedure: str,
                      target: str) -> None:
        """Pass if ``key`` is the caller's own authid (Firebase's ``$uid`` rule)."""
        if caller.authid is None:
            raise self.deny(caller, procedure, target,
                            "owner-only map and the router disclosed no caller authid")
        if key != caller.authid:
            raise self.deny(caller, procedure, target,
                            "owner-only map: callers write only the key equal to their authid")
