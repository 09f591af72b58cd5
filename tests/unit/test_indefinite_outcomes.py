"""An answer that leaves a write's outcome open stays open on every floor above
the transport: coalesced calls, pmap commits and ``Database.run``, namespaces,
the CLI's message. Fake gateway at three host names (one shared store) on a
task.Clock; a member answering ``request timed out`` may have applied the
write first, as etcd does when a proposal commits after its own timeout."""

from __future__ import annotations

from typing import Any

import pytest
from fake_gateway import API, FakeEtcd, unb64
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp import errors as e
from etcdwamp import pmap
from etcdwamp.cli import _message, _writes, build_parser
from etcdwamp.client import Client
from etcdwamp.pmap import Database, MapTransaction, TransactionConflict
from etcdwamp.wire import OpSet, Transaction

ENDPOINTS = ["http://one.test:2379", "http://two.test:2379", "http://three.test:2379"]
TIMED_OUT = "etcdserver: request timed out"
LEADER_CHANGED = "etcdserver: leader changed"
ACCOUNTS = pmap.MapStringString(1)


class Cluster:
    """A client of three fake members (one store) and the means to settle its calls."""

    def __init__(self, **client_args: Any) -> None:
        self.clock = Clock()
        self.etcd = FakeEtcd(self.clock)
        self.stub = StubTreq(self.etcd)
        self.client = Client(self.clock, endpoints=ENDPOINTS, http_client=self.stub,
                             timeout=2.0, api_prefix=API, **client_args)
        self.db = Database(self.client, prefix=b"bank/")

    def settle(self, work: Deferred[Any] | Any) -> Any:
        """Move bytes (and the coalescer's end of turn) until ``work`` is done; its
        result or Failure."""
        d = work if isinstance(work, Deferred) else ensureDeferred(work)
        for _ in range(100):
            if d.called:
                break
            self.clock.advance(0)
            self.stub.flush()
        got: list[Any] = []
        d.addBoth(got.append)
        assert got, "still pending"
        return got[0]

    def hosts(self, path: str) -> list[str]:
        return [c.host for c in self.etcd.calls_to(path)]

    def stored(self, key: str) -> bytes | None:
        return self.etcd.value(b"bank/\x00\x01" + key.encode())


def failure_of(result: Any, kind: type[BaseException]) -> Any:
    """The exception of ``result``, a Failure of ``kind``."""
    assert isinstance(result, Failure) and result.check(kind), result  # type: ignore[no-untyped-call]
    return result.value


def transfer(cluster: Cluster, attempts: list[int], *, then: Any = None) -> Any:
    """A transfer of 10 from a to b; ``then(cluster)`` runs after the reads,
    before the commit is sent (the fault strikes then)."""
    async def fn(txn: MapTransaction) -> str:
        attempts.append(txn.attempt)
        a = int(await ACCOUNTS[txn, "a"] or "100")
        b = int(await ACCOUNTS[txn, "b"] or "100")
        ACCOUNTS[txn, "a"] = str(a - 10)
        ACCOUNTS[txn, "b"] = str(b + 10)
        if then is not None:
            then(cluster)
        return "done"
    return fn


# -- Database.run and commits --------------------------------------------------------


@pytest.mark.parametrize("applied", [True, False])
@pytest.mark.parametrize("message", [TIMED_OUT, LEADER_CHANGED])
def test_run_raises_an_indefinite_commit_and_never_runs_fn_again(applied: bool,
                                                                 message: str) -> None:
    """Whether or not the member applied the commit before answering, run()
    raises IndefiniteAnswer after one attempt and one txn: a second run of the
    transfer would move the money twice when the first was applied."""
    cluster = Cluster()
    cluster.etcd.unavailable_message = message
    hosts = cluster.etcd.applied_unavailable_hosts if applied else cluster.etcd.unavailable_hosts
    attempts: list[int] = []
    result = cluster.settle(cluster.db.run(
        transfer(cluster, attempts, then=lambda c: hosts.add("one.test")), backoff=None))
    exc = failure_of(result, e.IndefiniteAnswer)
    assert isinstance(exc, e.OutcomeUnknown) and not isinstance(exc, TransactionConflict)
    assert (exc.code, exc.message) == (14, message)
    assert attempts == [1]
    assert cluster.hosts("/kv/txn") == ["one.test"]
    assert (cluster.db.commits, cluster.db.conflicts) == (0, 0)
    expected = (b"90", b"110") if applied else (None, None)
    assert (cluster.stored("a"), cluster.stored("b")) == expected


def test_run_still_retries_a_definite_conflict() -> None:
    """A commit whose compares failed applied nothing: run() runs fn again."""
    cluster = Cluster()
    attempts: list[int] = []

    def concurrent_write(c: Cluster) -> None:
        if len(attempts) == 1:
            c.etcd.put(b"bank/\x00\x01a", b"50")  # another client, after our read

    result = cluster.settle(cluster.db.run(transfer(cluster, attempts, then=concurrent_write),
                                           backoff=None))
    assert result == "done"
    assert attempts == [1, 2]
    assert len(cluster.etcd.calls_to("/kv/txn")) == 2
    assert (cluster.stored("a"), cluster.stored("b")) == (b"40", b"110")
    assert (cluster.db.commits, cluster.db.conflicts) == (1, 1)


def test_a_commit_answered_no_leader_moves_on_and_is_applied_once() -> None:
    """"no leader" is a definite refusal: the commit goes to the next member."""
    cluster = Cluster()
    attempts: list[int] = []
    result = cluster.settle(cluster.db.run(
        transfer(cluster, attempts, then=lambda c: c.etcd.unavailable_hosts.add("one.test")),
        backoff=None))
    assert result == "done"
    assert attempts == [1]
    assert cluster.hosts("/kv/txn") == ["one.test", "two.test"]
    assert (cluster.stored("a"), cluster.stored("b")) == (b"90", b"110")


def test_a_transaction_of_unknown_outcome_cannot_be_committed_again() -> None:
    cluster = Cluster()
    txn = cluster.settle(cluster.db.begin(write=True).start())
    ACCOUNTS[txn, "a"] = "1"
    cluster.etcd.unavailable_message = TIMED_OUT
    cluster.etcd.unavailable_hosts.add("one.test")
    failure_of(cluster.settle(txn.commit()), e.IndefiniteAnswer)
    again = failure_of(cluster.settle(txn.commit()), e.InvalidRequest)
    assert "unknown outcome" in str(again)
    assert len(cluster.etcd.calls_to("/kv/txn")) == 1


# -- the snapshot revision -------------------------------------------------------------


def test_a_read_only_snapshot_comes_from_one_linearizable_read() -> None:
    """One count-only range of the database's prefix, not serializable (so the
    member answers after catching up with its leader); its header revision is
    the snapshot."""
    cluster = Cluster()
    cluster.etcd.put(b"bank/\x00\x01a", b"100")
    txn = cluster.settle(cluster.db.begin().start())
    assert cluster.etcd.paths() == ["/kv/range"]
    probe = cluster.etcd.calls[0].body
    assert unb64(probe["key"]) == b"bank/" and probe.get("count_only") is True
    assert not probe.get("serializable")
    assert txn.revision == cluster.etcd.revision


def test_a_serializable_snapshot_asks_the_member_for_its_revision() -> None:
    cluster = Cluster()
    cluster.etcd.put(b"k", b"v")
    txn = cluster.settle(cluster.db.begin(serializable=True).start())
    assert cluster.etcd.paths() == ["/maintenance/status"]
    assert txn.revision == cluster.etcd.revision
    seen: list[str] = []

    async def fn(txn: MapTransaction) -> None:
        seen.append("serializable" if txn.serializable else "linearizable")

    cluster.settle(cluster.db.run(fn, serializable=True))
    assert seen == ["serializable"]


def test_a_snapshot_read_without_leader_moves_on() -> None:
    cluster = Cluster()
    cluster.etcd.unavailable_hosts.add("one.test")
    txn = cluster.settle(cluster.db.begin().start())
    assert isinstance(txn, MapTransaction)
    assert cluster.hosts("/kv/range") == ["one.test", "two.test"]


# -- coalesced calls -------------------------------------------------------------------


@pytest.mark.parametrize("applied", [True, False])
def test_every_caller_of_a_coalesced_txn_answered_indefinitely_gets_indefinite_answer(
        applied: bool) -> None:
    """The writes that travelled together all get IndefiniteAnswer (never a plain
    Unavailable), and their transaction is not sent again; the get of the same
    turn travelled apart and moved on to another member."""
    cluster = Cluster(coalesce=True)
    cluster.etcd.unavailable_message = TIMED_OUT
    (cluster.etcd.applied_unavailable_hosts if applied
     else cluster.etcd.unavailable_hosts).add("one.test")
    calls = [cluster.client.put(b"k%d" % i, b"v") for i in range(3)] + [cluster.client.get(b"x")]
    results = [cluster.settle(d) for d in calls]
    for result in results[:3]:
        exc = failure_of(result, e.IndefiniteAnswer)
        assert exc.message == TIMED_OUT
    assert results[3].count == 0, results[3]
    assert cluster.etcd.paths().count("/kv/txn") == 1
    # answered by another member (one.test, demoted by the writes' answer, comes last)
    assert cluster.etcd.calls_to("/kv/range")[-1].host == "two.test"
    assert [cluster.etcd.value(b"k%d" % i) for i in range(3)] == [b"v" if applied else None] * 3


def test_a_get_of_a_key_written_in_the_same_turn_stays_behind_the_write() -> None:
    """Read-your-write order within a turn: the get travels after the put (so it
    shares a hung member's fate rather than overtaking the write)."""
    cluster = Cluster(coalesce=True)
    calls = [cluster.client.put(b"k", b"v"), cluster.client.get(b"k"),
             cluster.client.put(b"j", b"w")]
    results = [cluster.settle(d) for d in calls]
    assert results[1].kvs[0].value == b"v"
    assert "/kv/range" not in cluster.etcd.paths()  # it went in a transaction, after the put


def test_a_coalesced_write_alone_in_its_turn_gets_indefinite_answer() -> None:
    cluster = Cluster(coalesce=True)
    cluster.etcd.unavailable_message = LEADER_CHANGED
    cluster.etcd.unavailable_hosts.add("one.test")
    failure_of(cluster.settle(cluster.client.put(b"k", b"v")), e.IndefiniteAnswer)
    assert cluster.etcd.paths() == ["/kv/put"]


def test_coalesced_reads_answered_request_timed_out_move_on() -> None:
    """A batch of reads is idempotent: it moves on, and nobody sees an error."""
    cluster = Cluster(coalesce=True)
    cluster.etcd.put(b"a", b"1")
    cluster.etcd.unavailable_message = TIMED_OUT
    cluster.etcd.unavailable_hosts.add("one.test")
    calls = [cluster.client.get(b"a"), cluster.client.get(b"b")]
    results = [cluster.settle(d) for d in calls]
    assert [r.count for r in results] == [1, 0]
    assert cluster.hosts("/kv/txn") == ["one.test", "two.test"]


# -- namespaces --------------------------------------------------------------------------


def test_a_namespace_passes_indefinite_answers_on() -> None:
    cluster = Cluster()
    ns = cluster.client.namespace(b"app/")
    cluster.etcd.unavailable_message = TIMED_OUT
    cluster.etcd.applied_unavailable_hosts.update({"one.test", "two.test", "three.test"})
    failure_of(cluster.settle(ns.put(b"k", b"v")), e.IndefiniteAnswer)
    failure_of(cluster.settle(ns.txn(Transaction(success=[OpSet(b"j", b"v")]))),
               e.IndefiniteAnswer)
    # Each sent once (the first member, demoted after its answer, then the next).
    assert cluster.hosts("/kv/put") == ["one.test"]
    assert cluster.hosts("/kv/txn") == ["two.test"]
    assert (cluster.etcd.value(b"app/k"), cluster.etcd.value(b"app/j")) == (b"v", b"v")


# -- the CLI's message --------------------------------------------------------------------


def test_the_cli_says_an_indefinite_answer_may_have_been_applied() -> None:
    exc = e.IndefiniteAnswer(TIMED_OUT, code=14, http_status=503, endpoint=ENDPOINTS[0])
    line = _message(exc, write=True)
    assert line.startswith("outcome unknown: ")
    assert TIMED_OUT in line and "may or may not have been applied" in line
    assert "read it back" in line


@pytest.mark.parametrize("argv,writes", [
    (["put", "k", "v"], True), (["del", "k"], True), (["lease", "grant", "5"], True),
    (["lease", "revoke", "1f"], True), (["compact", "7"], True),
    (["get", "k"], False), (["lease", "ttl", "1f"], False), (["status"], False),
])
def test_the_cli_says_a_timed_out_write_may_have_been_applied(argv: list[str],
                                                               writes: bool) -> None:
    args = build_parser().parse_args(argv)
    assert _writes(args) is writes
    for exc in (e.RequestTimeout("no answer within 1s"), e.ConnectionLost("reset")):
        line = _message(exc, write=_writes(args))
        assert ("may or may not have been applied" in line) is writes, line
