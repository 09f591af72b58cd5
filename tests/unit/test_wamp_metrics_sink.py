"""The component's metrics without a node: labels, the prometheus sink on its own
registry (shared by two instances), the limiter's refusal reports, /health's answer,
and the Grafana dashboard against the metric list."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from etcdwamp import errors
from etcdwamp.wamp.errors import ErrorUris
from etcdwamp.wamp.limits import Limiter, LimitSettings, Rates, RoleLimits
from etcdwamp.wamp.metrics import ComponentMetrics, call_outcome, procedure_label, running
from etcdwamp.wamp.metrics_web import HealthResource, MetricsResource, OperatorResource
from etcdwamp.wamp.prometheus import METRIC_NAMES, PrometheusComponentMetrics
from etcdwamp.wamp.publisher import Publisher
from etcdwamp.wamp.session import EtcdWampSession, _observed
from etcdwamp.wamp.settings import Settings
from etcdwamp.wire import KeySet

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def test_procedure_labels_leave_out_map_names_and_keep_everything_else() -> None:
    maps = ["notes", "counters"]
    assert procedure_label("map.notes.put", maps) == "map.put"
    assert procedure_label("map.counters.get_and_watch", maps) == "map.get_and_watch"
    assert procedure_label("map.put", maps) == "map.put"
    assert procedure_label("kv.range", maps) == "kv.range"
    assert procedure_label("presence.list", maps) == "presence.list"
    assert procedure_label("status", maps) == "status"
    # not a configured map: left as registered (never a caller's value: URIs are ours)
    assert procedure_label("map.other.put", maps) == "map.other.put"


def test_outcomes_are_ok_or_the_error_uris_last_part() -> None:
    assert call_outcome(None) == "ok"
    assert call_outcome("etcd.error.permission_denied") == "permission_denied"
    assert call_outcome("app.x.error.rate_limited") == "rate_limited"


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_the_prometheus_sink_counts_calls_events_and_refusals() -> None:
    registry = CollectorRegistry()
    m = PrometheusComponentMetrics(registry)
    m.call_done("map.put", "ok", 0.002)
    m.call_done("map.put", "ok", 0.004)
    m.call_done("map.put", "permission_denied", 0.001)
    m.event_published("map", 3)
    m.event_published("resync")
    m.limit_refused("rate")
    assert value(registry, "etcdwamp_calls_total", procedure="map.put", outcome="ok") == 2
    assert value(registry, "etcdwamp_calls_total", procedure="map.put",
                 outcome="permission_denied") == 1
    assert value(registry, "etcdwamp_call_duration_seconds_count", procedure="map.put") == 3
    total = value(registry, "etcdwamp_call_duration_seconds_sum", procedure="map.put")
    assert total == pytest.approx(0.007)
    assert value(registry, "etcdwamp_call_duration_seconds_bucket", procedure="map.put",
                 le="0.0025") == 2
    assert value(registry, "etcdwamp_events_published_total", kind="map") == 3
    assert value(registry, "etcdwamp_events_published_total", kind="resync") == 1
    assert value(registry, "etcdwamp_limit_refusals_total", limit="rate") == 1


def test_two_instances_share_a_registry_and_their_gauges_add_up() -> None:
    """Two components in one worker: no duplicate registration; leaders and sessions
    sum, the lag is the largest, sessions count once per realm; a closed instance no
    longer counts."""
    registry = CollectorRegistry()
    a, b = PrometheusComponentMetrics(registry), PrometheusComponentMetrics(registry)
    for m in (a, b):
        m.call_done("status", "ok", 0.001)
    assert value(registry, "etcdwamp_calls_total", procedure="status", outcome="ok") == 2
    assert value(registry, "etcdwamp_publisher_is_leader") == 0
    a.publisher_leader(True)
    b.publisher_leader(False)
    a.publisher_lag(0)
    b.publisher_lag(7)
    a.sessions(2, "realm1")
    b.sessions(3, "realm2")
    assert value(registry, "etcdwamp_publisher_is_leader") == 1
    assert value(registry, "etcdwamp_publisher_lag_revisions") == 7
    assert value(registry, "etcdwamp_sessions") == 5  # two realms: both count
    b.sessions(3, "realm1")  # one realm counted by both: its sessions count once
    assert value(registry, "etcdwamp_sessions") == 3
    b.close()
    b.sessions(9, "realm2")  # a report after close (a late callback) is dropped
    assert value(registry, "etcdwamp_publisher_lag_revisions") == 0
    assert value(registry, "etcdwamp_sessions") == 2
    a.close()
    assert value(registry, "etcdwamp_publisher_is_leader") == 0
    assert value(registry, "etcdwamp_calls_total", procedure="status", outcome="ok") == 2


def test_the_limiter_reports_which_limit_refused() -> None:
    clock = Clock()
    rates = Rates(calls_per_second=1, writes_per_second=None, write_bytes_per_second=None,
                  in_flight=1)
    unlimited = Rates(None, None, None, None)
    settings = LimitSettings(default=RoleLimits(session=rates, authid=unlimited,
                                                role=unlimited), roles={})
    seen: list[str] = []
    lim = Limiter(settings, ErrorUris("etcd"), clock.seconds, refused=seen.append)
    who = type("Details", (), {"caller": 1, "caller_authid": "a", "caller_authrole": "g"})()
    ticket = lim.admit(who, write=False, payload=())
    assert ticket is not None
    with pytest.raises(ApplicationError):
        lim.admit(who, write=False, payload=())  # the first is still in flight
    ticket.done(False)
    with pytest.raises(ApplicationError):
        lim.admit(who, write=False, payload=())  # 1 call per second, spent
    assert seen == ["in_flight", "rate"]


class Source:
    def __init__(self, healthy: bool) -> None:
        self.healthy = healthy

    def health(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "registered": True, "etcd_reachable": self.healthy}


def get(resource: Any) -> tuple[int, dict[str, Any]]:
    request = DummyRequest([b""])
    body = resource.render_GET(request)
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"application/json"]
    return request.responseCode or 200, json.loads(body)


def test_health_is_200_only_while_every_component_here_is_healthy() -> None:
    health = HealthResource()
    assert running == []
    assert get(health) == (503, {"healthy": False, "components": []})
    up, down = Source(True), Source(False)
    running.append(up)
    try:
        code, body = get(health)
        assert code == 200 and body["healthy"] and body["components"][0]["registered"]
        running.append(down)
        code, body = get(health)
        assert code == 503 and not body["healthy"] and len(body["components"]) == 2
        down.healthy = True
        assert get(health)[0] == 200
    finally:
        running.clear()


def test_the_operator_resource_serves_metrics_and_health_only() -> None:
    root = OperatorResource({})
    assert isinstance(root.getStaticEntity(b"health"), HealthResource)
    assert root.getStaticEntity(b"metrics") is not None
    assert set(root.listStaticNames()) == {b"metrics", b"health"}


def test_metrics_are_prometheus_text_of_the_default_registry() -> None:
    import prometheus_client
    resource = MetricsResource()
    request = DummyRequest([b""])
    sink = PrometheusComponentMetrics()  # the default registry, as the component's
    try:
        sink.call_done("map.get", "ok", 0.002)
        body = resource.render_GET(request).decode()
    finally:
        sink.close()
    [kind] = request.responseHeaders.getRawHeaders(b"content-type")
    assert kind.startswith(b"text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert "etcdwamp_calls" in families and "process_cpu_seconds" in families
    assert prometheus_client.REGISTRY.get_sample_value(
        "etcdwamp_calls_total", {"procedure": "map.get", "outcome": "ok"}) is not None


def test_metrics_without_prometheus_client_say_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    request = DummyRequest([b""])
    body = MetricsResource().render_GET(request)
    assert request.responseCode == 503 and b"etcdwamp[metrics]" in body


def test_the_operator_module_installs_no_reactor() -> None:
    """Importing it (Crossbar does, by class name) must leave the reactor choice alone."""
    import subprocess
    import sys
    code = ("import sys, etcdwamp.wamp.metrics_web; "
            "sys.exit('twisted.internet.reactor' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_metrics_are_explicit_and_the_health_interval_bounded() -> None:
    etcd = {"endpoints": ["http://127.0.0.1:2379"]}
    plain = Settings.from_extra({"etcd": etcd})
    assert plain.metrics is False and plain.health_interval == 5.0
    on = Settings.from_extra({"etcd": etcd, "metrics": True, "health_interval": 0.5})
    assert on.metrics is True and on.health_interval == 0.5


def test_the_committed_config_serves_metrics_on_loopback_beside_the_public_port() -> None:
    config = json.loads((DASHBOARD.parents[1] / "crossbar" / ".crossbar" /
                         "config.json").read_text())
    router = config["workers"][0]
    operator = [t for t in router["transports"]
                if t["paths"]["/"].get("classname") ==
                "etcdwamp.wamp.metrics_web.OperatorResource"]
    assert len(operator) == 1
    endpoint = operator[0]["endpoint"]
    assert endpoint["interface"] == "127.0.0.1"
    public = [t["endpoint"]["port"] for t in router["transports"] if "ws" in t["paths"]]
    assert public and endpoint["port"] not in public
    assert set(operator[0]["paths"]) == {"/"}  # no WAMP on the operator port
    assert all(c["extra"]["metrics"] is True for c in router["components"])


def dashboard_exprs() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"])
            for panel in board["panels"] for target in panel.get("targets", [])]


def test_every_dashboard_panel_queries_metrics_that_exist() -> None:
    """Each query names only metrics we export (ours, or the client's from metrics24a
    whose names issue 24 fixes), with their histogram and counter suffixes."""
    client = ("etcdwamp_etcd_requests_total", "etcdwamp_etcd_request_duration_seconds",
              "etcdwamp_etcd_endpoint_healthy", "etcdwamp_watch_streams",
              "etcdwamp_coalesced_ops_total")
    known = set(METRIC_NAMES) | set(client)
    for base in list(known):
        if base.endswith("_seconds"):
            known |= {base + "_bucket", base + "_sum", base + "_count"}
    panels = dashboard_exprs()
    titles = {title for title, _ in panels}
    for wanted in ("Calls per second by outcome", "p99 call latency", "Publisher lag",
                   "etcd endpoint health", "Limit refusals"):
        assert wanted in titles
    for title, expr in panels:
        names = set(re.findall(r"\betcdwamp_[a-z_]+", expr))
        assert names, f"{title}: no etcdwamp metric in {expr!r}"
        assert names <= known, f"{title}: unknown {names - known}"


class FakeWatch:
    """A feed's watch as Publisher.lag sees it: streaming or not, and its resume revision."""

    def __init__(self, streaming: bool, resume: int) -> None:
        self.streaming = streaming
        self.resume = resume

    def resume_revision(self, keyset: KeySet) -> int:
        return self.resume


def test_the_publisher_lag_counts_only_feeds_whose_watch_is_down() -> None:
    """A streaming watch gets each change pushed: no lag. A watch that is down lags by
    etcd's revision minus what the feed is known published up to (events published,
    or a progress notification's revision). No read of the maps is made."""
    settings = Settings.from_extra({"etcd": {"endpoints": ["http://127.0.0.1:2379"]},
                                    "db_prefix": "app/", "kv_prefixes": ["a/", "b/"]})

    class NoReads:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the lag must not call etcd ({name})")

    publisher = Publisher(NoReads(), settings, {}, lambda *a, **k: None,  # type: ignore[arg-type]
                          lambda: 1, Clock())
    a, b = publisher.feeds
    a.floor, a.published = 100, 105
    b.floor, b.published = 100, 0
    a.watch = FakeWatch(streaming=True, resume=106)  # type: ignore[assignment]
    b.watch = FakeWatch(streaming=True, resume=101)  # type: ignore[assignment]
    assert publisher.lag(112) == 0  # not leading: nothing to measure
    publisher.is_publisher = True
    assert publisher.lag(112) == 0  # both streaming
    a.watch.streaming = False  # type: ignore[union-attr]
    assert publisher.lag(112) == 112 - 105
    b.watch.streaming = False  # type: ignore[union-attr]
    assert publisher.lag(112) == 112 - 100  # b: its floor, nothing published since
    b.watch.resume = 111  # type: ignore[union-attr]  # a progress notification said 110
    assert publisher.lag(112) == 112 - 105
    a.watch, a.published = None, 0  # not started yet: from its floor
    assert publisher.lag(112) == 112 - 100
    publisher.is_publisher = False
    assert publisher.lag(112) == 0


class _HealthSession(EtcdWampSession):
    def __init__(self, clock: Clock) -> None:
        self._init_state()
        self.clock = clock
        self.config = SimpleNamespace(realm="realm1")

    def _clock(self) -> Any:
        return self.clock

    def _meta_call(self, procedure: str) -> Deferred[Any]:
        assert procedure == "wamp.session.count"
        return succeed(4)


class _StatusClient:
    def __init__(self) -> None:
        self.answers: list[Any] = []

    def status(self) -> Deferred[Any]:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            return fail(answer)
        return succeed(SimpleNamespace(revision=answer))


class _LagPublisher:
    is_publisher = True

    def __init__(self) -> None:
        self.broken = False

    def lag(self, revision: int) -> int:
        if self.broken:
            raise RuntimeError("a bug in the lag")
        return revision - 100


def test_the_health_checks_survive_a_bug_and_say_unhealthy_meanwhile() -> None:
    """An unexpected exception in a check must not end the checks with /health left
    as it was: the component says etcd unreachable, and the next good check heals it."""
    clock = Clock()
    session = _HealthSession(clock)
    client, publisher = _StatusClient(), _LagPublisher()
    session.client = client  # type: ignore[assignment]
    session.publisher = publisher  # type: ignore[assignment]
    session._registered = True
    session.settings = Settings.from_extra({"etcd": {"endpoints": ["http://127.0.0.1:2379"]},
                                            "metrics": True})
    client.answers = [107, 108, errors.Unavailable("down"), 109]
    registry = CollectorRegistry()
    session.metrics = PrometheusComponentMetrics(registry)
    checks = Deferred.fromCoroutine(session._check_health(1.0))
    assert session.health()["healthy"] and session.publisher_lag == 7
    assert value(registry, "etcdwamp_sessions") == 4  # the router's count for the realm
    assert value(registry, "etcdwamp_publisher_lag_revisions") == 7
    publisher.broken = True
    clock.advance(1.0)
    assert not session.health()["healthy"]
    publisher.broken = False
    clock.advance(1.0)
    assert not session.health()["etcd_reachable"]  # etcd refused this one
    clock.advance(1.0)
    assert session.health()["healthy"] and session.publisher_lag == 9
    assert not checks.called
    checks.cancel()
    checks.addErrback(lambda f: f.trap(CancelledError))


class _Recorder(ComponentMetrics):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.refused: list[str] = []

    def call_done(self, procedure: str, outcome: str, seconds: float) -> None:
        self.calls.append((procedure, outcome))

    def limit_refused(self, limit: str) -> None:
        self.refused.append(limit)


@pytest.mark.parametrize(("error", "limit"), [
    ("etcd.error.quota_exceeded", "max_keys"),
    ("etcd.error.busy", "busy"),
    ("etcd.error.too_large", "size"),
    ("etcd.error.not_found", None),
])
def test_a_refused_call_counts_against_its_limit(error: str, limit: str | None) -> None:
    """A call answered with a limit's error is a call of that outcome and, for a limit,
    one refusal by it (rate limits report themselves, from the limiter)."""
    sink = _Recorder()
    failure = Failure(ApplicationError(error, "refused"))
    assert _observed(failure, sink, "map.put", 0.0) is failure
    assert sink.calls == [("map.put", error.rsplit(".", 1)[1])]
    assert sink.refused == ([] if limit is None else [limit])
