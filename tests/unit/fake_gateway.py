"""An in-memory etcd gateway whose time is a ``task.Clock``, for unit tests.

:class:`FakeEtcd` keeps keys, revisions, leases (that expire as the clock
advances), auth tokens (with a TTL on the same clock) and watch streams (a
never-ending HTTP body, as the real gateway sends, that the test can cut).
It answers in the gateway's JSON shapes (int64 as strings, bytes as base64),
so the client under test runs its real parsing. :class:`Rig` wires a client
to it through treq's StubTreq and moves time and bytes forward together.

It is a model of the parts of etcd these tests need, not a second etcd:
behaviour against the real server is the integration tests' job.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from etcdwamp.client import Client

__all__ = ["Call", "FakeEtcd", "Rig", "WatchStream"]

API = "/v3"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"error": message, "code": code, "message": message}


#: gRPC code → HTTP status, as grpc-gateway maps them
_HTTP = {3: 400, 4: 504, 5: 404, 14: 503, 16: 401}


@dataclass(frozen=True)
class Call:
    """One request as the gateway saw it."""

    path: str  # without the API prefix, e.g. "/kv/put"
    body: Any  # the decoded JSON (for /watch: the list of requests in the body)
    token: str | None
    at: float  # the clock's time when it arrived
    host: str = ""  # the endpoint's host name it was sent to
    leader_required: bool = False  # sent with Grpc-Metadata-hasleader: true


@dataclass
class _Lease:
    ttl: int
    expires: float


@dataclass
class _Held:
    request: Request
    path: str
    body: Any
    token: str | None
    gone: bool = False


@dataclass
class _Target:
    watch_id: int
    key: bytes
    range_end: bytes | None

    def matches(self, key: bytes) -> bool:
        if self.range_end is None:
            return key == self.key
        if self.range_end == b"\x00":
            return key >= self.key
        return self.key <= key < self.range_end


@dataclass
class WatchStream:
    """One open ``/watch`` body; ``close()`` cuts the connection under it."""

    request: Request
    targets: list[_Target]
    open: bool = True
    host: str = ""  # the endpoint's host name it was opened on
    election: bytes | None = None  # an /election/observe stream: of this election

    def send(self, result: dict[str, Any]) -> None:
        self.request.write(json.dumps({"result": result}).encode() + b"\n")

    def close(self) -> None:
        if self.open:
            self.open = False
            self.request.channel.transport.loseConnection()  # type: ignore[union-attr]


class FakeEtcd(Resource):
    """The gateway of a single etcd member, on ``clock``.

    :param users: ``{name: password}``; when given, auth is on and every
        request but ``/auth/authenticate`` needs a live token
    :param token_ttl: seconds a token lives (it is not extended by use)
    """

    isLeaf = True

    def __init__(self, clock: Clock, *, users: dict[str, str] | None = None,
                 token_ttl: float = 300.0) -> None:
        super().__init__()
        self.clock = clock
        self.users = users
        self.token_ttl = token_ttl
        self.revision = 1
        self.kvs: dict[bytes, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []  # one event per revision
        self.compacted: list[int] = []  # the revision of each compaction carried out
        self.leases: dict[int, _Lease] = {}
        self.tokens: dict[str, float] = {}  # token → expiry time
        self.calls: list[Call] = []
        self.streams: list[WatchStream] = []
        #: the current leader key-value of each election (see lead())
        self.leaders: dict[bytes, dict[str, Any]] = {}
        #: paths (e.g. "/lease/keepalive") answered 503 Unavailable, as by a member
        #: without leader
        self.unavailable: set[str] = set()
        #: what those answers say
        self.unavailable_message = "etcdserver: no leader"
        #: and their gRPC code (4: a deadline exceeded on etcd's side)
        self.unavailable_code = 14
        #: host names whose every request is answered so (one member without leader)
        self.unavailable_hosts: set[str] = set()
        #: host names that carry out every request, then answer it so anyway (a
        #: proposal etcd committed after its own request timeout had answered)
        self.applied_unavailable_hosts: set[str] = set()
        #: paths whose requests are never answered (a hung member)
        self.hang: set[str] = set()
        #: host names whose every request is never answered (one hung member)
        self.hung_hosts: set[str] = set()
        #: paths whose requests wait for release() (to have several in flight at once;
        #: StubTreq otherwise answers each request as soon as it is made)
        self.hold: set[str] = set()
        self.held: list[_Held] = []
        self._ids = itertools.count(7001)
        self._token_ids = itertools.count(1)

    # -- what tests look at ----------------------------------------------------

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def value(self, key: bytes) -> bytes | None:
        self._expire_leases()
        kv = self.kvs.get(key)
        return None if kv is None else unb64(kv["value"])

    def lease_alive(self, lease_id: int) -> bool:
        self._expire_leases()
        return lease_id in self.leases

    def break_streams(self) -> None:
        """Cut every open watch stream (as a member restart would)."""
        for stream in list(self.streams):
            stream.close()

    def streams_on(self, host: str) -> list[WatchStream]:
        """The open watch streams to ``host``."""
        return [s for s in self.streams if s.host == host]

    def end_streams(self, host: str, code: int = 14,
                    message: str = "etcdserver: no leader") -> None:
        """End every stream on ``host`` with an error frame, as etcd ends a
        require-leader stream once its member lost its leader."""
        for stream in self.streams_on(host):
            stream.request.write(json.dumps({"error": {
                "grpc_code": code, "http_code": _HTTP[code], "message": message,
                "http_status": "Service Unavailable"}}).encode() + b"\n")
            stream.close()

    # -- state changes, also callable by tests ---------------------------------

    def header(self) -> dict[str, str]:
        return {"cluster_id": "1", "member_id": "2", "revision": str(self.revision),
                "raft_term": "3"}

    def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        self.revision += 1
        self._store(key, value, lease)
        return self.revision

    def _store(self, key: bytes, value: bytes, lease: int) -> None:
        """Write ``key`` at the current revision (several keys of one txn share it)."""
        old = self.kvs.get(key)
        kv = {"key": b64(key), "value": b64(value), "mod_revision": str(self.revision),
              "create_revision": old["create_revision"] if old else str(self.revision),
              "version": str(int(old["version"]) + 1 if old else 1)}
        if lease:
            kv["lease"] = str(lease)
        self.kvs[key] = kv
        self._event({"kv": kv}, key)

    def delete(self, key: bytes) -> int:
        if key not in self.kvs:
            return 0
        self.revision += 1
        self._remove(key)
        return 1

    def _remove(self, key: bytes) -> None:
        """Delete ``key`` (present) at the current revision."""
        del self.kvs[key]
        self._event({"type": "DELETE", "kv": {"key": b64(key),
                                                "mod_revision": str(self.revision)}}, key)

    def revoke(self, lease_id: int) -> bool:
        """Drop a lease and its keys (revoked elsewhere, or expired)."""
        if self.leases.pop(lease_id, None) is None:
            return False
        for key, kv in list(self.kvs.items()):
            if kv.get("lease") == str(lease_id):
                self.delete(key)
        return True

    def _live_streams(self) -> list[WatchStream]:
        """The streams whose member sends (a hung member sends nothing)."""
        return [s for s in self.streams if s.host not in self.hung_hosts]

    def lead(self, election: bytes, value: bytes) -> int:
        """Make ``value`` the leader value of ``election`` (a new leader key the
        first time, then a proclamation) and tell its observers; returns the
        key's mod revision. The fake keeps no candidates: this stands for a
        campaign or proclaim by some client."""
        key = election + b"/leader"
        revision = self.put(key, value)
        self.leaders[election] = self.kvs[key]
        for stream in self._live_streams():
            if stream.election == election:
                stream.send({"header": self.header(), "kv": self.kvs[key]})
        return revision

    def progress(self) -> None:
        """Send a progress notification on every stream: "current up to now"."""
        for stream in self._live_streams():
            for target in stream.targets:
                stream.send({"header": self.header(), "watch_id": str(target.watch_id)})

    def _event(self, event: dict[str, Any], key: bytes) -> None:
        self.history.append({**event, "_key": key, "_rev": self.revision})
        for stream in self._live_streams():
            for target in stream.targets:
                if target.matches(key):
                    stream.send({"header": self.header(), "watch_id": str(target.watch_id),
                                 "events": [event]})

    def _expire_leases(self) -> None:
        now = self.clock.seconds()
        for lease_id, lease in list(self.leases.items()):
            if lease.expires <= now:
                self.revoke(lease_id)

    # -- HTTP ------------------------------------------------------------------

    def render_POST(self, request: Request) -> bytes | int:
        full = request.path.decode()
        assert full.startswith(API + "/"), f"unexpected path {full}"
        path = full[len(API):]
        raw = request.content.read() or b"{}"
        body = _split_json(raw) if path == "/watch" else json.loads(raw)
        raw_auth = request.getHeader(b"authorization")
        auth = None if raw_auth is None else raw_auth.decode()
        host = _host(request)
        required = request.getHeader(b"grpc-metadata-hasleader") == b"true"
        self.calls.append(Call(path, body, auth, self.clock.seconds(), host, required))
        if host in self.unavailable_hosts:
            return self._answer(request, self.unavailable_code, self.unavailable_message)
        if host in self.applied_unavailable_hosts:
            self._respond(request, path, body, auth)
            return self._answer(request, 14, self.unavailable_message)
        if path in self.hang or host in self.hung_hosts:
            return NOT_DONE_YET
        if path in self.hold:
            held = _Held(request, path, body, auth)
            self.held.append(held)
            request.notifyFinish().addErrback(lambda _: setattr(held, "gone", True))
            return NOT_DONE_YET
        return self._respond(request, path, body, auth)

    def release(self) -> None:
        """Answer every held request, as etcd would answer it now."""
        held, self.held = self.held, []
        for h in held:
            if h.gone:  # the client gave up on it
                continue
            answer = self._respond(h.request, h.path, h.body, h.token)
            if answer is not NOT_DONE_YET:
                assert isinstance(answer, bytes)
                h.request.write(answer)
                h.request.finish()

    def _respond(self, request: Request, path: str, body: Any,
                 auth: str | None) -> bytes | int:
        self._expire_leases()
        if path in self.unavailable:
            return self._answer(request, 14, self.unavailable_message)
        if self.users is not None and path != "/auth/authenticate":
            if auth is None:
                return self._answer(request, 3, "etcdserver: user name is empty")
            expiry = self.tokens.get(auth)
            if expiry is None or expiry <= self.clock.seconds():
                if path == "/watch":
                    return self._refuse_watch(request)
                return self._answer(request, 16, "etcdserver: invalid auth token")
        handler: Callable[[Request, Any], Any] | None = getattr(
            self, "_do_" + path.strip("/").replace("/", "_"), None)
        assert handler is not None, f"the fake does not serve {path}"
        answer = handler(request, body)
        if answer is NOT_DONE_YET:
            return NOT_DONE_YET
        if isinstance(answer, tuple):
            return self._answer(request, *answer)
        request.setResponseCode(200)
        return json.dumps(answer).encode()

    def _answer(self, request: Request, code: int, message: str) -> bytes:
        request.setResponseCode(_HTTP[code])
        return json.dumps(error_body(code, message)).encode()

    def _do_auth_authenticate(self, request: Request, body: dict[str, Any]) -> Any:
        if self.users is None or self.users.get(body["name"]) != body["password"]:
            return 3, "etcdserver: authentication failed, invalid user ID or password"
        token = f"token{next(self._token_ids)}"
        self.tokens[token] = self.clock.seconds() + self.token_ttl
        return {"header": self.header(), "token": token}

    def _do_kv_put(self, request: Request, body: dict[str, Any]) -> Any:
        lease = int(body.get("lease", "0"))
        if lease and lease not in self.leases:
            return 5, "etcdserver: requested lease not found"
        self.put(unb64(body["key"]), unb64(body.get("value", "")), lease)
        return {"header": self.header()}

    def _do_kv_range(self, request: Request, body: dict[str, Any]) -> Any:
        kvs = self._in_range(body)
        answer: dict[str, Any] = {"header": self.header(), "count": str(len(kvs))}
        if kvs and not body.get("count_only"):
            answer["kvs"] = kvs
        return answer

    def _in_range(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The current key/values of a request's ``key``/``range_end`` (the
        revision asked for is not modelled: the fake keeps no old versions)."""
        target = _Target(0, unb64(body["key"]),
                         unb64(body["range_end"]) if "range_end" in body else None)
        return [kv for key, kv in sorted(self.kvs.items()) if target.matches(key)]

    def _holds(self, compare: dict[str, Any]) -> bool:
        """One compare, as etcd evaluates it: every key present in its range
        must satisfy it; an empty range compares as a key with all fields 0."""
        field = {"MOD": "mod_revision", "VERSION": "version", "CREATE": "create_revision",
                 "VALUE": "value"}[compare.get("target", "VERSION")]
        kvs = self._in_range(compare)
        if not kvs:
            if field == "value":
                return False
            kvs = [{}]
        for kv in kvs:
            if field == "value":
                have: Any = unb64(kv.get("value", ""))
                want: Any = unb64(compare.get("value", ""))
            else:
                have, want = int(kv.get(field, "0")), int(compare.get(field, "0"))
            result = compare.get("result", "EQUAL")
            if not {"EQUAL": have == want, "NOT_EQUAL": have != want,
                    "GREATER": have > want, "LESS": have < want}[result]:
                return False
        return True

    def _do_kv_txn(self, request: Request, body: dict[str, Any]) -> Any:
        """A flat transaction (compares; put, range and delete_range ops), all
        its writes at one revision."""
        succeeded = all(self._holds(c) for c in body.get("compare", []))
        ops = body.get("success" if succeeded else "failure", [])
        for op in ops:
            lease = int(op.get("request_put", {}).get("lease", "0"))
            if lease and lease not in self.leases:
                return 5, "etcdserver: requested lease not found"
        changed = False
        responses: list[dict[str, Any]] = []
        for op in ops:
            (kind, inner), = op.items()
            if kind == "request_range":
                responses.append({"response_range": self._do_kv_range(request, inner)})
                continue
            if kind == "request_put":
                if not changed:
                    self.revision, changed = self.revision + 1, True
                self._store(unb64(inner["key"]), unb64(inner.get("value", "")),
                            int(inner.get("lease", "0")))
                responses.append({"response_put": {"header": self.header()}})
                continue
            assert kind == "request_delete_range", f"the fake does not run {kind} in a txn"
            gone = self._in_range(inner)
            if gone and not changed:
                self.revision, changed = self.revision + 1, True
            for kv in gone:
                self._remove(unb64(kv["key"]))
            responses.append({"response_delete_range": {"header": self.header(),
                                                        "deleted": str(len(gone))}})
        return {"header": self.header(), "succeeded": succeeded, "responses": responses}

    def _do_lock_lock(self, request: Request, body: dict[str, Any]) -> Any:
        """The lock is granted at once (the fake has no contention): its key is
        the name and the lease's hex id, attached to the lease."""
        lease = int(body["lease"])
        if lease not in self.leases:
            return 5, "etcdserver: requested lease not found"
        key = unb64(body["name"]) + b"/" + format(lease, "x").encode()
        self.put(key, b"", lease)
        return {"header": self.header(), "key": b64(key)}

    def _do_lock_unlock(self, request: Request, body: dict[str, Any]) -> Any:
        self.delete(unb64(body["key"]))
        return {"header": self.header()}

    def _do_election_observe(self, request: Request, body: dict[str, Any]) -> Any:
        """As etcd: the current leader first, if any; until then not even the
        answer's headers (the gateway sends them with the first frame)."""
        election = unb64(body["name"])
        stream = WatchStream(request, [], host=_host(request), election=election)
        leader = self.leaders.get(election)
        if leader is not None:
            stream.send({"header": self.header(), "kv": leader})
        self._keep(stream)
        return NOT_DONE_YET

    def _do_kv_compaction(self, request: Request, body: dict[str, Any]) -> Any:
        self.compacted.append(int(body["revision"]))
        return {"header": self.header()}

    def _do_maintenance_status(self, request: Request, body: dict[str, Any]) -> Any:
        return {"header": self.header(), "version": "3.4.23", "dbSize": "20480",
                "leader": "2", "raftIndex": str(self.revision), "raftTerm": "3"}

    def _do_lease_grant(self, request: Request, body: dict[str, Any]) -> Any:
        lease_id, ttl = next(self._ids), int(body["TTL"])
        self.leases[lease_id] = _Lease(ttl, self.clock.seconds() + ttl)
        return {"header": self.header(), "ID": str(lease_id), "TTL": str(ttl)}

    def _do_lease_keepalive(self, request: Request, body: dict[str, Any]) -> Any:
        lease_id = int(body["ID"])
        result: dict[str, Any] = {"header": self.header(), "ID": str(lease_id)}
        lease = self.leases.get(lease_id)
        if lease is not None:  # etcd leaves TTL out (0) for a lease it does not know
            lease.expires = self.clock.seconds() + lease.ttl
            result["TTL"] = str(lease.ttl)
        return {"result": result}

    def _do_lease_revoke(self, request: Request, body: dict[str, Any]) -> Any:
        if not self.revoke(int(body["ID"])):
            return 5, "etcdserver: requested lease not found"
        return {"header": self.header()}

    def _do_lease_timetolive(self, request: Request, body: dict[str, Any]) -> Any:
        lease = self.leases.get(int(body["ID"]))
        ttl = -1 if lease is None else max(0, round(lease.expires - self.clock.seconds()))
        return {"header": self.header(), "ID": body["ID"], "TTL": str(ttl),
                "grantedTTL": str(0 if lease is None else lease.ttl)}

    def _refuse_watch(self, request: Request) -> int:
        """etcd 3.4's answer to a watch with a token it does not accept: the
        stream opens (200) and says "created and canceled" for watch id -1."""
        stream = WatchStream(request, [])
        stream.send({"header": self.header(), "watch_id": "-1", "created": True,
                     "canceled": True, "cancel_reason": "rpc error: code = Unauthenticated"
                     " desc = etcdserver: invalid auth token"})
        self._keep(stream)
        return NOT_DONE_YET

    def _keep(self, stream: WatchStream) -> None:
        self.streams.append(stream)

        def gone(_: object) -> None:
            stream.open = False
            self.streams.remove(stream)

        stream.request.notifyFinish().addBoth(gone)

    def _do_watch(self, request: Request, body: list[dict[str, Any]]) -> Any:
        stream = WatchStream(request, [], host=_host(request))
        replay: list[tuple[_Target, int]] = []
        for message in body:
            create = message["create_request"]
            target = _Target(int(create.get("watch_id", "0")), unb64(create["key"]),
                             unb64(create["range_end"]) if "range_end" in create else None)
            stream.targets.append(target)
            stream.send({"header": self.header(), "watch_id": str(target.watch_id),
                         "created": True})
            start = int(create.get("start_revision", "0"))
            if start:
                replay.append((target, start))
        for target, start in replay:
            for event in self.history:
                if event["_rev"] >= start and target.matches(event["_key"]):
                    clean = {k: v for k, v in event.items() if not k.startswith("_")}
                    stream.send({"header": self.header(), "watch_id": str(target.watch_id),
                                 "events": [clean]})
        self._keep(stream)
        return NOT_DONE_YET


def _host(request: Request) -> str:
    """The host name a request was sent to."""
    return (request.getHeader(b"host") or b"").decode().split(":")[0]


def _split_json(raw: bytes) -> list[Any]:
    """The watch body: JSON objects back to back, as the client sends them."""
    decoder = json.JSONDecoder()
    text, at, out = raw.decode(), 0, []
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        out.append(value)
    return out


@dataclass
class Rig:
    """A client wired to a :class:`FakeEtcd`; time and bytes move only when told."""

    clock: Clock
    etcd: FakeEtcd
    stub: StubTreq
    client: Client

    @classmethod
    def make(cls, *, users: dict[str, str] | None = None, token_ttl: float = 300.0,
             endpoints: list[str] | None = None, **client_args: Any) -> Rig:
        """A client of one member (``http://etcd.test:2379``), or of ``endpoints``:
        several host names of one fake cluster sharing one store."""
        clock = Clock()
        etcd = FakeEtcd(clock, users=users, token_ttl=token_ttl)
        stub = StubTreq(etcd)
        if endpoints is None:
            client_args["url"] = "http://etcd.test:2379"
        client = Client(clock, endpoints=endpoints, http_client=stub, api_prefix=API,
                        **client_args)
        return cls(clock, etcd, stub, client)

    def flush(self) -> None:
        """Move every byte both ways until nothing is left to move (an answer
        may cause the next request, e.g. re-authenticate then retry)."""
        for _ in range(50):
            before = len(self.etcd.calls)
            self.stub.flush()
            self.stub.flush()
            if len(self.etcd.calls) == before:
                return
        raise AssertionError("requests kept coming: a loop in the client?")

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.flush()

    def advance_to(self, when: float, step: float = 0.25) -> None:
        """Advance in small steps (each followed by the I/O it causes) until ``when``."""
        while self.clock.seconds() + step <= when:
            self.advance(step)
        if self.clock.seconds() < when:
            self.advance(when - self.clock.seconds())

    def run(self, work: Deferred[Any] | Coroutine[Any, Any, Any]) -> Any:
        """Let ``work`` complete over the in-memory connection; its result, or raise."""
        d = ensureDeferred(work)
        self.flush()
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "the operation did not complete"
        if isinstance(results[0], Failure):
            results[0].raiseException()
        return results[0]
