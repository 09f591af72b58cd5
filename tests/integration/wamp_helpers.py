"""WAMP clients for the Crossbar integration tests (inside the pytest-twisted reactor),
and the one fixture that runs every WAMP test against both placements of the component.

``component_loop`` (module-scoped, parametrized): "twisted" runs the component
embedded in the Crossbar router, as committed; "asyncio" runs it outside
Crossbar, as ``python -m etcdwamp.asyncio.component`` processes (txaio's
framework is per process, and this one's WAMP test clients are Twisted).
``loop`` follows it, so a test's own etcd client is on the component's loop.
A test module imports both fixtures (``component_loop_fixture``,
``loop_fixture``: pytest finds them by the names they declare), starts its
node with :func:`node_for` in a module-scoped fixture and hands it to tests
through a function-scoped one awaiting :func:`registered` (:func:`node_fixtures`
makes the usual pair); the test bodies are the same for both placements. (A
module-scoped *async* fixture would be torn down, when the parameter changes,
inside pytest-twisted's reactor greenlet, which breaks the tests after it.)
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.component import Component
from autobahn.wamp.exception import ApplicationError
from loops import TRANSPORT
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from waiting import until

from etcdwamp.testing import CrossbarNode
from etcdwamp.wamp.inflight import fail_in_flight_on_leave
from etcdwamp.wamp.routers import PublisherKeys

COMPONENT_LOOPS = ("twisted", "asyncio")
#: the committed Crossbar node configuration every WAMP test node is made from
CONFIG = Path(__file__).resolve().parents[2] / "crossbar" / ".crossbar" / "config.json"


@pytest.fixture(scope="module", params=COMPONENT_LOOPS, name="component_loop")
def component_loop_fixture(request: pytest.FixtureRequest) -> str:
    """Where the etcdwamp component runs: "twisted" (embedded in the router) or
    "asyncio" (external processes joining the router)."""
    return str(request.param)


@pytest.fixture(name="loop")
def loop_fixture(component_loop: str) -> str:
    """The test's own clients run on the component's loop (instead of conftest's
    parametrization, which would run every placement twice over)."""
    return component_loop


async def connect(node: CrossbarNode, *, writer: bool = True, serializer: str = "cbor",
                  authid: str = "writer", ticket: str | None = None,
                  backend: bool = False, fail_on_leave: bool = False) -> Any:
    """A joined WAMP session on the node's realm: the ticket-authenticated writer (the
    node's random ticket unless ``ticket``), an anonymous guest, or (``backend``) a
    session of the ``backend`` role on the node's backend path. With ``fail_on_leave``
    its calls in flight fail when it leaves (:func:`fail_in_flight_on_leave`); without,
    autobahn leaves them pending."""
    joined: Deferred[Any] = Deferred()
    url = node.url
    auth: dict[str, Any] | None = {"ticket": {"authid": authid,
                                              "ticket": ticket or node.writer_ticket}}
    if backend:
        url = node.backend_url
        auth = {"ticket": {"authid": "backend", "ticket": node.backend_ticket}}
    elif not writer:
        auth = None
    component = Component(
        transports=[{"type": "websocket", "url": url, "serializers": [serializer],
                     "max_retries": 0}],
        realm=node.realm,
        authentication=auth,
    )
    if fail_on_leave:
        fail_in_flight_on_leave(component)

    @component.on_join  # type: ignore[untyped-decorator]
    def on_join(session: Any, details: Any) -> None:
        if not joined.called:
            joined.callback(session)

    done = component.start(reactor)

    def failed(failure: Any) -> None:
        if not joined.called:
            joined.errback(failure)

    done.addErrback(failed)
    session = await joined
    session._etcdwamp_component = component
    return session


async def error_of(call: Any) -> ApplicationError:
    """The ``ApplicationError`` a pending call fails with (fails the test if it succeeds)."""
    try:
        await call
    except ApplicationError as exc:
        return exc
    raise AssertionError("the call unexpectedly succeeded")


async def disconnect(session: Any) -> None:
    if session.is_attached():
        await session.leave()


async def publisher_keys(node: CrossbarNode, election: str | bytes, *,
                         prefix: str = "etcd") -> PublisherKeys:
    """The publisher's election and checkpoint keys on ``node``'s router, as its
    ``status`` tells the router (every instance on one router tells the same)."""
    s = await connect(node)
    try:
        router = (await s.call(f"{prefix}.status"))["router"]
    finally:
        await disconnect(s)
    assert isinstance(router, str), router
    base = election if isinstance(election, bytes) else election.encode()
    return PublisherKeys(base, router)


async def callees(node: CrossbarNode, procedure: str) -> int:
    """How many sessions have registered ``procedure`` (the router's meta API)."""
    s = await connect(node, backend=True)
    try:
        registration = await s.call("wamp.registration.match", procedure)
        if registration is None:
            return 0
        return int(await s.call("wamp.registration.count_callees", registration))
    finally:
        await disconnect(s)


async def until_registered(node: CrossbarNode, instances: int, *,
                           prefix: str = "etcd") -> None:
    """Wait until ``instances`` components registered their procedures (each registers
    ``<prefix>.status`` after all its others)."""
    status = f"{prefix}.status"

    async def all_registered() -> bool:
        return await callees(node, status) >= instances

    await until(all_registered, timeout=60, why=node.log_tail)


@contextlib.contextmanager
def node_for(component_loop: str, config: Any, etcd_urls: Any, *, instances: int = 1,
             **kwargs: Any) -> Iterator[CrossbarNode]:
    """A started :class:`CrossbarNode` whose ``instances`` components run on
    ``component_loop`` (see the module docstring); stopped after. For a
    module-scoped fixture: tests take the node through :func:`registered`."""
    if TRANSPORT != "gateway":
        # The suite's gRPC pass: the component's client speaks gRPC (merged into
        # the committed etcd settings, as any "etcd" override is).
        overrides = dict(kwargs.get("extra_overrides") or {})
        overrides["etcd"] = {**overrides.get("etcd", {}), "transport": TRANSPORT}
        kwargs["extra_overrides"] = overrides
    node = CrossbarNode(str(config), etcd_urls, instances=instances,
                        component_loop=component_loop, **kwargs)
    try:
        node.start()
        yield node
    finally:
        node.stop()


_registered: weakref.WeakSet[CrossbarNode] = weakref.WeakSet()


async def registered(node: CrossbarNode, *, prefix: str = "etcd") -> CrossbarNode:
    """``node`` once every one of its component instances registered its procedures
    (waited for once per node)."""
    if node not in _registered:
        await until_registered(node, node.instances, prefix=prefix)
        _registered.add(node)
    return node


def node_fixtures(extra: dict[str, Any], **kwargs: Any) -> tuple[Any, Any]:
    """The ``crossbar`` (module-scoped: one node per placement, started with
    ``extra`` and ``kwargs`` by :func:`node_for`) and ``node`` (that node once
    :func:`registered`) fixtures of a test module: ``crossbar, node = node_fixtures(EXTRA)``."""
    @pytest.fixture(scope="module")
    def crossbar(etcd: Any, component_loop: str) -> Iterator[CrossbarNode]:
        with node_for(component_loop, CONFIG, etcd.urls, extra_overrides=extra,
                      **kwargs) as cb:
            yield cb

    @pytest_twisted.async_fixture
    async def node(crossbar: CrossbarNode) -> CrossbarNode:
        return await registered(crossbar)

    return crossbar, node

