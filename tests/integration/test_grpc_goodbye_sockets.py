"""The client's close of a gRPC connection over real sockets (Twisted's and asyncio's),
with the h2 library as the server on loopback: the server receives our GOAWAY before
the connection ends cleanly (an abort after writing it would drop it unsent)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from loops import LOOPS, ensure
from twisted.internet.protocol import Factory, Protocol
from waiting import until

from etcdwamp._deferred import Dual
from etcdwamp.grpc.connection import GrpcConnection
from etcdwamp.grpc.sockets import connect_asyncio, connect_twisted

pytestmark = pytest.mark.integration


class H2Server(Protocol):
    """An HTTP/2 server that records what the client sent and how the connection ended."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None))

    def connectionMade(self) -> None:
        self.h2.initiate_connection()
        self.transport.write(self.h2.data_to_send())

    def dataReceived(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.ConnectionTerminated):
                self.seen.append(("goaway", event.error_code))
        self.transport.write(self.h2.data_to_send())

    def connectionLost(self, reason: Any = None) -> None:
        self.seen.append(("lost", type(reason.value).__name__))


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def h2_server() -> Iterator[tuple[str, list[Any]]]:
    from twisted.internet import reactor

    seen: list[Any] = []
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: H2Server(seen)),  # type: ignore[attr-defined]
                             interface="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port.getHost().port}", seen
    finally:
        port.stopListening()


def connect(loop: str, endpoint: str) -> Dual[GrpcConnection]:
    if loop == "asyncio":
        return connect_asyncio(endpoint, timeout=5)
    from twisted.internet import reactor
    return connect_twisted(reactor, endpoint, timeout=5)


@ensure
async def test_the_server_receives_the_goaway_before_the_connection_ends(
        h2_server: tuple[str, list[Any]], loop: str) -> None:
    endpoint, seen = h2_server
    conn = await connect(loop, endpoint)
    conn.close()
    await until(lambda: conn.closed.called, timeout=10, why="our socket did not close")
    await until(lambda: any(kind == "lost" for kind, _ in seen), timeout=10,
                why=lambda: f"the server saw {seen}")
    assert seen[0] == ("goaway", h2.errors.ErrorCodes.NO_ERROR), seen
    assert seen[1] == ("lost", "ConnectionDone"), f"a clean close, not a reset: {seen}"
