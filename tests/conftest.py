"""Shared fixtures: real etcd servers on free loopback ports, and clients.

A test that needs etcd fails loudly when the server binary is missing and
``CI`` is set; only locally is it skipped (with the reason).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from hypothesis import settings

from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster, etcd_binary

# No per-example deadline: Hypothesis' 200 ms default failed a property test whose first
# example paid for a cold import on a loaded machine ("Unreliable test timings"). A test
# that hangs is caught by its own timeout; how fast an example runs is no behaviour.
# A mutation run names its own profile (tests/mutation_warmup.py).
settings.register_profile("suite", deadline=None)
settings.load_profile(os.environ.get("ETCDWAMP_HYPOTHESIS_PROFILE", "suite"))


def _require_etcd() -> None:
    try:
        etcd_binary()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"integration tests need etcd in CI: {exc}")
        pytest.skip(f"local run without etcd: {exc}")


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdCluster]:
    """One single-member etcd for the whole session (tests use distinct key prefixes)."""
    _require_etcd()
    cluster = EtcdCluster(1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd_factory() -> Iterator[Callable[..., EtcdCluster]]:
    """Start fresh clusters of the test's own (``EtcdCluster`` arguments); all are
    stopped after the test, so the test may kill, restart or reconfigure them."""
    _require_etcd()
    started: list[EtcdCluster] = []

    def start(*args: Any, **kwargs: Any) -> EtcdCluster:
        cluster = EtcdCluster(*args, **kwargs)
        started.append(cluster)
        return cluster.start()

    try:
        yield start
    finally:
        for cluster in started:
            cluster.stop()


@pytest.fixture
def etcd_cluster3(etcd_factory: Callable[..., EtcdCluster]) -> EtcdCluster:
    """A fresh 3-member loopback cluster (members may be killed by the test)."""
    return etcd_factory(3)


@pytest.fixture(autouse=True)
def _hypothesis_test_per_item(request: pytest.FixtureRequest) -> Iterator[None]:
    """Undo pytest-twisted's wrapping of a hypothesis test after each item.

    pytest-twisted replaces ``fn.hypothesis.inner_test`` with a wrapper bound to
    the running item, on the function object that every parametrized item
    (e.g. each loop) shares; the next item would then wrap that wrapper and
    call into the first item's torn-down fixtures."""
    handle = getattr(request.function, "hypothesis", None)
    inner = getattr(handle, "inner_test", None)
    yield
    if handle is not None:
        handle.inner_test = inner


_counter = itertools.count()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> bytes:
    """A key prefix no other test uses, so tests share one etcd safely."""
    return f"t{next(_counter)}/{request.node.name}/".encode()


@pytest.fixture(params=["twisted", "asyncio"])
def loop(request: pytest.FixtureRequest) -> str:
    """The event loop a test's clients run on: every test that takes ``client``
    (or ``loop``) runs once with ``etcdwamp.Client`` (Twisted) and once with
    ``etcdwamp.asyncio.Client``; see tests/integration/loops.py."""
    return str(request.param)


@pytest_twisted.async_yield_fixture
async def client(etcd: EtcdCluster, loop: str) -> AsyncIterator[Client]:
    from loops import make_client

    c = make_client(loop, url=etcd.url, timeout=10.0)
    try:
        yield c
    finally:
        await c.close()


@pytest_twisted.async_yield_fixture
async def clients() -> AsyncIterator[list[Client]]:
    """Clients a test makes (any loop's; closed afterwards)."""
    made: list[Client] = []
    try:
        yield made
    finally:
        for c in made:
            await c.close()
