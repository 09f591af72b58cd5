"""The component's session logic, written once for both of Autobahn's frameworks.

:class:`EtcdWampSession` is a mixin for an Autobahn ``ApplicationSession``:
:class:`etcdwamp.wamp.EtcdWampComponent` combines it with Twisted's (hosted
by Crossbar), :class:`etcdwamp.asyncio.component.EtcdWampComponent` with
asyncio's (connecting to Crossbar from outside). The services below it
(maps, kv, presence, publisher) use Deferreds as plain futures, whatever loop
runs; only what crosses to Autobahn must suit the session's framework, and a
subclass says how in four hooks:

- :meth:`~EtcdWampSession._etcd_client`: the etcd client of its loop;
- :meth:`~EtcdWampSession._clock`: ``callLater``/``seconds`` for the publisher's retries;
- :meth:`~EtcdWampSession._embedded_router`: the router id of a component
  embedded in the router worker, whose join tells none (see :mod:`.routers`);
- :meth:`~EtcdWampSession._expose`: a Deferred-returning procedure or handler as
  a callable Autobahn accepts (Twisted takes the Deferred; asyncio wants a
  coroutine or an asyncio future, so the asyncio side awaits it as a
  :class:`~etcdwamp._deferred.Dual`, which also carries a caller's cancel
  (INTERRUPT) back to the Deferred).

This module imports neither ``autobahn.twisted`` nor ``autobahn.asyncio``:
importing either picks txaio's framework for the whole process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from .. import errors
from .._deferred import Dual, dual
from .._signal import Signal
from ..client import Client
from ..metrics import NO_METRICS, ClientMetrics
from ..namespace import Namespace
from ..pmap import Database
from ..wire import KeySet
from .access import Access
from .alarms import AlarmWatch, active_alarms
from .errors import ErrorUris, to_application_error
from .kv import KvService
from .limits import Limiter, Ticket, payload_bytes
from .maps import MapService
from .metrics import ComponentMetrics, call_outcome, procedure_label, running
from .presence import PresenceService
from .publisher import Publisher
from .quietlog import QuietLog
from .reads import InflightBudget, ReadBounds
from .routers import PublisherKeys, router_from_welcome
from .settings import Settings, SettingsError

__all__ = ["EtcdWampSession"]

T = TypeVar("T")


class _LeftWhileStarting(Exception):
    """The session began to leave while its start-up was under way."""


#: procedures (the last part of their URI) that write: they count against the write rates
_WRITES = frozenset({"put", "delete", "txn"})


#: outcomes that are a configured or a resource limit refusing the call, by limit name
_LIMITS = {"quota_exceeded": "max_keys", "busy": "busy", "too_large": "size"}


def _finally(result: T, ticket: Ticket) -> T:
    if isinstance(result, Failure):
        ticket.done(result.check(CancelledError) is not None)
    else:
        ticket.sent(payload_bytes(result))
        ticket.done(False)
    return result


def _observed(result: T, metrics: ComponentMetrics, procedure: str, start: float) -> T:
    """Report a call's outcome and duration; ``result`` passes through unchanged."""
    if isinstance(result, Failure):
        value = result.value
        if isinstance(value, ApplicationError):
            outcome = call_outcome(value.error)
        elif isinstance(value, (CancelledError, asyncio.CancelledError)):
            outcome = "cancelled"
        else:
            outcome = "internal"
    else:
        outcome = "ok"
    metrics.call_done(procedure, outcome, time.perf_counter() - start)
    limit = _LIMITS.get(outcome)
    if limit is not None:  # rate limits report themselves (the limiter knows which)
        metrics.limit_refused(limit)
    return result


def _counting(progress: Callable[..., Any], ticket: Ticket) -> Callable[..., Any]:
    """``progress`` (a call's progressive-result channel) charging what it sends."""
    def send(*args: Any, **kwargs: Any) -> Any:
        ticket.sent(payload_bytes((args, kwargs)))
        return progress(*args, **kwargs)
    return send


class EtcdWampSession:
    """What the component does in its session, on either framework (see the module docstring).

    Mixed in before an Autobahn ``ApplicationSession``, whose ``config``, ``register``,
    ``subscribe``, ``publish``, ``leave`` and ``disconnect`` it uses.
    """

    log: Any = Logger()
    #: the loop the session runs on, as the clients say it ("twisted" or "asyncio")
    framework = "twisted"

    # Provided by Autobahn's ApplicationSession, which subclasses mix this into.
    config: Any
    _session_id: Any
    register: Callable[..., Any]
    subscribe: Callable[..., Any]
    publish: Callable[..., Any]
    call: Callable[..., Any]
    leave: Callable[..., Any]
    disconnect: Callable[..., Any]

    def _init_state(self) -> None:
        self.settings: Settings | None = None
        #: the etcd client as the services see it: a namespace of
        #: :attr:`root_client` when ``extra.etcd.namespace`` is set
        self.client: Client | Namespace[Client] | None = None
        #: the etcd client itself (closed on leave)
        self.root_client: Client | None = None
        self.uris = ErrorUris("etcd")
        #: calls whose caller cancelled them or left: counted, never logged one by one
        self.cancelled_calls = 0
        self.quiet: QuietLog | None = None
        self.limiter: Limiter | None = None
        self.alarm_watch: AlarmWatch | None = None
        self.maps: MapService | None = None
        self.kv: KvService | None = None
        self.presence: PresenceService | None = None
        self.publisher: Publisher | None = None
        #: the router this instance serves (see :mod:`.routers`); None if it told none
        self.router: str | None = None
        self._serving = Signal()
        self._closed = Signal()
        self._closed.fire(None)  # nothing to clean up until it joined
        #: onLeave began: a start-up still under way stops at its next step
        self._leaving = False
        #: the start-up's etcd step under way (onLeave cancels it), and whether onJoin ran
        self._step: Deferred[Any] | None = None
        self._joining = False
        #: where calls, events, refusals and the publisher's state are reported
        #: (``extra.metrics``: to prometheus_client, else nowhere)
        self.metrics = ComponentMetrics()
        #: the last health check (``extra.metrics``) reached etcd
        self.etcd_reachable = False
        #: the publisher lag the last health check found (revisions)
        self.publisher_lag = 0
        self._registered = False
        self._health_checks: Deferred[None] | None = None
        #: the router refused ``wamp.session.count`` (said once in the log)
        self._count_refused = False

    def serving(self) -> Dual[None]:
        """Fires once every procedure is registered and the publisher started; fails with
        what stopped that (:class:`SettingsError` for an invalid ``extra``).

        Autobahn on asyncio fires its ``ready`` event before ``onJoin`` is done (on
        Twisted, after): a ``ready`` listener that needs the procedures awaits this.
        """
        return self._serving.wait()

    def closed(self) -> Dual[None]:
        """Fires once the clean-up after leaving (publisher stopped and resigned, presence
        leases revoked, etcd client closed) is done; at once when none is under way."""
        return self._closed.wait()

    # -- framework hooks ------------------------------------------------------------

    def _etcd_client(self, settings: Settings) -> Client:
        """The etcd client of this session's loop, as ``settings.etcd`` describes it."""
        raise NotImplementedError

    def _clock(self) -> Any:
        """The clock (``callLater``, ``seconds``) of this session's loop."""
        raise NotImplementedError

    def _expose(self, fn: Callable[..., Deferred[Any]]) -> Callable[..., Any]:
        """``fn`` as a callable whose result Autobahn accepts on this framework."""
        raise NotImplementedError

    def _embedded_router(self) -> str | None:
        """The id of the router this session is embedded in (None: not embedded)."""
        return None

    # -- state -------------------------------------------------------------------

    @property
    def is_publisher(self) -> bool:
        """Whether this instance publishes the change topics now (it leads the election)."""
        return self.publisher is not None and self.publisher.is_publisher

    # -- lifecycle ---------------------------------------------------------------

    async def onJoin(self, details: Any) -> None:
        """Read the settings from ``extra``, connect to etcd, register every procedure and start
        the publisher.

        Invalid settings are logged and the session leaves with
        ``wamp.close.configuration_error``; nothing is registered then.
        ``<prefix>.status`` is registered last: once a caller reaches it, every
        other procedure of the instance is registered too.
        """
        self._joining = True
        try:
            await self._join(details)
        except BaseException as exc:
            self._serving.fire(exc)
            if self._leaving:
                # Stopped while starting (SIGTERM, the router going): the leave
                # cancelled the start-up, so its failure is no news.
                self.log.info("etcdwamp: stopped while starting")
                return
            raise
        self._serving.fire(None)

    async def _etcd_step(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one etcd step of the start-up, cancellable by onLeave."""
        if self._leaving:
            work.close()  # never started: no "coroutine was never awaited"
            raise _LeftWhileStarting()
        step = self._step = dual(Deferred.fromCoroutine(work))
        try:
            await step
        finally:
            self._step = None
        self._stop_if_leaving()

    def _stop_if_leaving(self) -> None:
        """Between the steps of the start-up: end it if the session is leaving meanwhile
        (the leave closes the etcd client once the start-up ended; nothing may use it)."""
        if self._leaving:
            raise _LeftWhileStarting()

    def _router_of(self, details: Any) -> str | None:
        """The router this session joined, from its WELCOME or, embedded, from its process."""
        router = router_from_welcome(getattr(details, "authextra", None))
        if router is None:
            router = self._embedded_router()
        if router is None:
            self.log.warn("etcdwamp: the router told no node id (not Crossbar?): every "
                          "instance campaigns in one publisher election, so subscribers "
                          "of only one router get events")
        return router

    async def _join(self, details: Any) -> None:
        try:
            settings = Settings.from_extra(self.config.extra or {})
        except SettingsError as exc:
            self.log.error("etcdwamp: invalid configuration in extra: {exc}", exc=exc)
            self._serving.fire(exc)
            self.leave("wamp.close.configuration_error", str(exc))
            return
        if settings.metrics:
            try:
                from .prometheus import PrometheusComponentMetrics
            except ImportError as exc:
                self.log.error("etcdwamp: extra.metrics needs prometheus_client (install "
                               "etcdwamp[metrics]): {exc}", exc=exc)
                self._serving.fire(exc)
                self.leave("wamp.close.configuration_error",
                           "extra.metrics needs prometheus_client")
                return
            self.metrics = PrometheusComponentMetrics()
        self._closed = Signal()
        self.settings = settings
        self.router = router = self._router_of(details)
        self.uris = uris = ErrorUris(settings.prefix)
        self.quiet = QuietLog(self._clock().seconds, log=self.log)
        self.limiter = Limiter(settings.limits, uris, self._clock().seconds,
                               refused=self.metrics.limit_refused)
        self.root_client = root = self._etcd_client(settings)
        namespace = settings.etcd.namespace
        self.client = client = root.namespace(namespace) if namespace else root
        try:
            await self._etcd_step(self._check_etcd(client, settings, router))
        except errors.EtcdError as exc:
            self._stop_if_leaving()
            # Wrong CA, password or grants, or no etcd at all: say so now, in the log
            # where the operator looks, instead of looking ready and failing every call.
            self.log.error("etcdwamp: cannot start: etcd at {endpoints} failed the start-up "
                           "check: {kind}: {exc}", endpoints=list(settings.endpoints),
                           kind=type(exc).__name__, exc=exc)
            self._serving.fire(exc)
            self.leave("wamp.close.configuration_error",
                       f"etcd failed the start-up check: {type(exc).__name__}")
            return
        self._stop_if_leaving()
        access = Access(uris, self.quiet)
        db = Database(client, prefix=settings.db_prefix)
        reads = ReadBounds(InflightBudget(settings.max_inflight_bytes), settings.range_page,
                           settings.max_range_rows, settings.max_snapshot_rows)
        self.maps = MapService(client, db, settings.maps, access, uris, reads)
        procedures: dict[str, Callable[..., Any]] = dict(self.maps.procedures())
        self.publisher = Publisher(client, settings, self.maps.maps, self.publish,
                                   lambda: self._session_id, self._clock(), router=router,
                                   metrics=self.metrics)
        # Before this instance serves any write: the first publisher resumes before it.
        await self._etcd_step(self.publisher.prepare())
        if settings.kv_prefixes:
            self.kv = KvService(client, settings.kv_prefixes, access, uris, reads)
            procedures.update(self.kv.procedures())
        if settings.presence is not None:
            self.presence = PresenceService(client, settings.presence, access, uris, reads)
            procedures.update(self.presence.procedures())
            leave = self._background(self.presence.on_session_leave)
            await self.subscribe(self._expose(leave), "wamp.session.on_leave")
        procedures["status"] = self.status
        shared = RegisterOptions(invoke="roundrobin", details_arg="details")
        p = settings.prefix
        observed = self.metrics if settings.metrics else None
        for name, fn in procedures.items():
            label = procedure_label(name, self.maps.maps)
            await self.register(self._expose(self._guarded(fn, f"{p}.{name}", label, observed)),
                                f"{p}.{name}", options=shared)
        self.log.info("etcdwamp: {n} procedures under {p}, maps {maps} ({framework}, "
                      "router {router}, session {session})", n=len(procedures), p=p,
                      maps=sorted(self.maps.maps), framework=self.framework,
                      session=self._session_id, router=router)
        self._stop_if_leaving()
        self.publisher.start()
        self.alarm_watch = AlarmWatch(root, self._clock(), self.log)
        self.alarm_watch.start()
        # The checks run without metrics too: /health and etcd.status's lag need them.
        self._registered = True
        running.append(self)
        self._health_checks = Deferred.fromCoroutine(
            self._check_health(settings.health_interval))
        self._health_checks.addErrback(self._health_checks_ended)

    @staticmethod
    async def _check_etcd(client: Client | Namespace[Client], settings: Settings,
                          router: str | None) -> None:
        """Reach etcd once as the component will: TLS and login (the first request logs
        in), and a read under every prefix it serves (etcd's grants)."""
        await client.status()
        keysets = [KeySet(settings.db_prefix + spec.slot.to_bytes(2, "big"), prefix=True)
                   for spec in settings.maps]
        keysets += [KeySet(p.prefix, prefix=True) for p in settings.kv_prefixes]
        if settings.presence is not None:
            keysets.append(KeySet(settings.presence.prefix, prefix=True))
        keysets.append(KeySet(PublisherKeys(settings.election, router).checkpoint))
        for keyset in keysets:
            await client.get(keyset, count_only=True)

    async def onLeave(self, details: Any) -> None:
        """Stop the publisher, revoke the presence leases, close the etcd client and disconnect."""
        self._leaving = True
        self._stop_health_checks()
        if self._joining:
            # Let the start-up end first (cancelled at its etcd step, else it stops
            # at the next one): nothing may use the client once it is closed.
            if self._step is not None:
                self._step.cancel()
            with contextlib.suppress(BaseException):
                await self._serving.wait()
        await dual(Deferred.fromCoroutine(self._shut_down()))
        self.disconnect()

    # -- health ------------------------------------------------------------------

    def _client_metrics(self, settings: Settings) -> ClientMetrics:
        """Where the component's etcd client reports (``extra.metrics``: to prometheus_client,
        beside the component's own metrics on ``/metrics``; else nowhere)."""
        if not settings.metrics:
            return NO_METRICS
        from ..prometheus import PrometheusClientMetrics
        return PrometheusClientMetrics()

    def health(self) -> dict[str, Any]:
        """``{healthy, registered, etcd_reachable, publisher, publisher_lag}``: healthy while
        the procedures are registered and the last check (every ``extra.health_interval``
        seconds) reached etcd; what ``/health`` answers (see :mod:`.metrics_web`)."""
        return {"healthy": self._registered and self.etcd_reachable,
                "registered": self._registered, "etcd_reachable": self.etcd_reachable,
                "publisher": self.is_publisher, "publisher_lag": self.publisher_lag}

    async def _check_health(self, interval: float) -> None:
        """Every ``interval`` seconds: reach etcd, and report the lag and the sessions."""
        clock = self._clock()
        failed = False
        while True:
            try:
                await self._check_health_once(clock, interval)
                failed = False
            except CancelledError:
                raise
            except Exception:
                # A bug here must not end the checks with /health left green: say not
                # reachable, log it once per run of failures, and try again.
                self.etcd_reachable = False
                if not failed:
                    self.log.failure("etcdwamp: a health check failed")
                failed = True
            await deferLater(clock, interval)

    async def _check_health_once(self, clock: Any, interval: float) -> None:
        assert self.client is not None and self.publisher is not None
        # Bounded: a member that hangs must turn /health red within about one
        # interval, not after the client's whole timeout.
        bound = max(interval, 2.0)
        try:
            status = await self.client.status().addTimeout(bound, clock)
        except (errors.EtcdError, defer.TimeoutError):
            self.etcd_reachable = False
        else:
            self.etcd_reachable = True
            self.publisher_lag = self.publisher.lag(status.revision)
        self.metrics.publisher_lag(self.publisher_lag)
        if self.settings is None or not self.settings.metrics:
            return  # the rest is for the metrics alone
        count = await self._count_sessions()
        if count is not None:
            self.metrics.sessions(count, str(getattr(self.config, "realm", "") or ""))

    def _meta_call(self, procedure: str) -> Deferred[Any]:
        """Call the router's meta API ``procedure`` (as a Deferred on either loop)."""
        raise NotImplementedError

    async def _count_sessions(self) -> int | None:
        """The WAMP sessions in this component's realm on its router (None when the
        router refuses to say: the component's role may not call ``wamp.session.count``)."""
        try:
            count = await self._meta_call("wamp.session.count")
        except ApplicationError as exc:
            if not self._count_refused:
                self._count_refused = True
                self.log.warn("etcdwamp: etcdwamp_sessions stays unset: the router refused "
                              "wamp.session.count ({error}); allow the component's role to "
                              "call it", error=exc.error)
            return None
        return int(count)

    def _health_checks_ended(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            self.log.failure("etcdwamp: health checks failed", failure)

    def _stop_health_checks(self) -> None:
        """Leaving: not healthy any more, out of /health, out of the gauges."""
        self._registered = False
        if self in running:
            running.remove(self)
        if self._health_checks is not None:
            self._health_checks.cancel()
            self._health_checks = None
        self.metrics.close()

    async def _shut_down(self) -> None:
        if self.alarm_watch is not None:
            self.alarm_watch.stop()
        try:
            try:
                if self.publisher is not None:
                    await self.publisher.stop()
                if self.presence is not None:
                    await self.presence.close()
            finally:
                # Whatever failed above: an unclosed client keeps its
                # connections, and on asyncio aiohttp reports its session at exit.
                if self.root_client is not None:
                    await self.root_client.close()
        except BaseException as exc:
            self._closed.fire(exc)
            raise
        self._closed.fire(None)

    # -- plumbing --------------------------------------------------------------

    def _guarded(self, fn: Callable[..., Coroutine[Any, Any, T]], uri: str,
                 label: str = "", metrics: ComponentMetrics | None = None
                 ) -> Callable[..., Deferred[T]]:
        """Run a procedure; every failure reaches the caller as a stable URI.

        Arguments are bound to ``fn``'s signature first, so a missing, extra or
        unknown one is ``invalid_argument`` naming the public signature (never
        a Python TypeError about our own methods). A cancelled call (the
        caller cancelled or left; autobahn cancels our Deferred) stays a
        ``CancelledError``: the work stops, nothing is retried. (An errback
        rather than a wrapping coroutine: one layer less per call.) With
        ``metrics``, every call's outcome and duration is reported there as
        procedure ``label``, refused ones included."""
        full = inspect.signature(fn)
        signature = full.replace(parameters=[
            p.replace(annotation=inspect.Parameter.empty)
            for p in full.parameters.values() if p.name != "details"],
            return_annotation=inspect.Signature.empty)
        public = str(signature)

        def stable(failure: Failure) -> Failure:
            if failure.check(CancelledError, ApplicationError):
                return failure
            assert isinstance(failure.value, BaseException)
            raise to_application_error(self.uris, failure.value, self.quiet, write=write)

        write = uri.rsplit(".", 1)[-1] in _WRITES

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Deferred[T]:
            if metrics is None:
                return guarded(*args, **kwargs)
            start = time.perf_counter()
            return guarded(*args, **kwargs).addBoth(_observed, metrics, label, start)

        def guarded(*args: Any, **kwargs: Any) -> Deferred[T]:
            arguments = {k: v for k, v in kwargs.items() if k != "details"}
            try:
                signature.bind(*args, **arguments)
            except TypeError as exc:
                return defer.fail(ApplicationError(self.uris.invalid_argument,
                                                   f"{uri}{public}: {exc}"))
            details: Any = kwargs.get("details")
            try:
                ticket = None if self.limiter is None else self.limiter.admit(
                    details, write=write, payload=(args, arguments))
            except ApplicationError as exc:
                if self.quiet is not None and self.limiter is not None:
                    self.quiet.warn("rate_limited", "etcdwamp: calls refused by extra.limits "
                                    "({refused} so far)", refused=self.limiter.refused)
                return defer.fail(exc)
            if (self.limiter is not None and self.limiter.undisclosed
                    and self.quiet is not None):
                self.quiet.warn("undisclosed", "etcdwamp: the router discloses no caller "
                                "session ({n} calls): they share one rate account and "
                                "rules needing a role refuse them; set \"disclose\": "
                                "{{\"caller\": true}} in the role's permissions",
                                n=self.limiter.undisclosed)
            progress = getattr(details, "progress", None)
            if ticket is not None and progress is not None:
                details.progress = _counting(progress, ticket)
            d = Deferred.fromCoroutine(fn(*args, **kwargs)).addErrback(stable)
            if ticket is not None:
                d.addBoth(_finally, ticket)
            return d
        return call

    def onUserError(self, fail: Any, msg: str) -> None:
        """Autobahn's report of a procedure that failed: a call cancelled because its caller
        cancelled or left is counted (:attr:`cancelled_calls`), an ``ApplicationError`` was
        already logged where it arose (or needs no line: the caller's mistake); anything
        else is Autobahn's to log."""
        value = getattr(fail, "value", None)
        if isinstance(value, (CancelledError, asyncio.CancelledError)):
            self.cancelled_calls += 1
            return
        if isinstance(value, ApplicationError):
            return
        super().onUserError(fail, msg)  # type: ignore[misc]

    @staticmethod
    def _background(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Deferred[T]]:
        """An event handler of the shared code, run on Twisted's coroutine driver."""
        @functools.wraps(fn)
        def handle(*args: Any, **kwargs: Any) -> Deferred[T]:
            return Deferred.fromCoroutine(fn(*args, **kwargs))
        return handle

    # -- procedures --------------------------------------------------------------

    async def status(self, details: Any = None) -> dict[str, Any]:
        """``status()``: ``{alarms, version, revision, db_size, leader, member, publisher,
        publisher_lag, endpoints, router, framework, cancelled_calls, rate_limited_calls}``:
        the alarms etcd has raised (e.g. ``["NOSPACE"]``; None if the component may not
        list them), the etcd member that answered (ids as strings), whether this instance
        publishes (to the subscribers of its router) and its lag as of the last health
        check (see :meth:`~etcdwamp.wamp.publisher.Publisher.lag`; 0 when it does not
        publish, or with ``extra.metrics`` off),
        whether each configured etcd endpoint is healthy to the client (booleans in the
        configured order: no addresses), the router it serves (``"<node id>/<worker
        pid>"``, None when the router told none: see :mod:`etcdwamp.wamp.routers`), the
        framework it runs on (``"twisted"`` or ``"asyncio"``), and how many calls this
        instance saw cancelled (their caller cancelled or left) and refused by
        ``extra.limits``.
        """
        assert self.client is not None and self.root_client is not None
        # Cluster-wide, so asked of the client outside any namespace. While one is
        # raised (NOSPACE: the backend is over its quota), every write fails.
        alarms = await active_alarms(self.root_client)
        st = await self.client.status()
        # The lag of the last health check, not a fresh one: measuring it ranges over
        # the published prefixes, which any caller allowed etcd.status must not drive.
        lag = self.publisher_lag
        health = self.root_client.transport.health
        return {"alarms": alarms,
                "version": st.version, "revision": st.revision, "db_size": st.db_size,
                "leader": str(st.leader), "member": str(st.header.member_id),
                "publisher": self.is_publisher, "publisher_lag": lag,
                "endpoints": [not health.is_down(e) for e in self.root_client.transport.endpoints],
                "router": self.router,
                "framework": self.framework,
                "cancelled_calls": self.cancelled_calls,
                "rate_limited_calls": 0 if self.limiter is None else self.limiter.refused}
