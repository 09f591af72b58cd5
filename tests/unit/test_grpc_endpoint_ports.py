"""A gRPC endpoint without a port (or with one that is not a port) is refused when
the client is made, on both loops, with a ValueError that says what to write; the
gateway keeps taking a URL without a port (HTTP's default)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from etcdwamp import asyncio as etcd_asyncio
from etcdwamp.client import Client


def twisted_client(url: str, transport: str) -> Any:
    reactor = MemoryReactorClock()
    client = Client(reactor, url, transport=transport)
    assert reactor.tcpClients == [], "nothing is dialled while the client is made"
    return client


def asyncio_client(url: str, transport: str) -> Any:
    return etcd_asyncio.Client(url, transport=transport)


LOOPS = pytest.mark.parametrize("make", [twisted_client, asyncio_client],
                                ids=["twisted", "asyncio"])


@LOOPS
@pytest.mark.parametrize(("url", "example"), [
    ("http://127.0.0.1", "http://127.0.0.1:2379"),
    ("https://etcd.example:", "https://etcd.example:2379"),
    ("http://[::1]/", "http://[::1]:2379"),
])
def test_an_endpoint_without_a_port_is_refused_at_construction(make: Any, url: str,
                                                               example: str) -> None:
    with pytest.raises(ValueError) as refused:
        make(url, "grpc")
    assert str(refused.value) == (
        f"a gRPC endpoint needs a port, etcd's client port (e.g. {example}): {url!r}")


@LOOPS
@pytest.mark.parametrize("url", ["http://127.0.0.1:0", "http://127.0.0.1:65536",
                                 "http://127.0.0.1:grpc"])
def test_an_endpoint_whose_port_is_not_a_port_is_refused(make: Any, url: str) -> None:
    with pytest.raises(ValueError) as refused:
        make(url, "grpc")
    assert str(refused.value) == f"a gRPC endpoint's port is a number from 1 to 65535: {url!r}"


@LOOPS
def test_one_bad_endpoint_among_several_is_refused(make: Any) -> None:
    with pytest.raises(ValueError, match="needs a port"):
        if make is twisted_client:
            Client(MemoryReactorClock(), endpoints=["http://127.0.0.1:2379", "http://127.0.0.2"],
                   transport="grpc")
        else:
            etcd_asyncio.Client(endpoints=["http://127.0.0.1:2379", "http://127.0.0.2"],
                                transport="grpc")


@LOOPS
def test_with_a_port_the_grpc_client_is_made_and_the_gateway_needs_none(make: Any) -> None:
    assert make("http://127.0.0.1:2379", "grpc").endpoints == ("http://127.0.0.1:2379",)
    assert make("http://127.0.0.1", "gateway").endpoints == ("http://127.0.0.1",)
