"""A loopback HTTP proxy in front of etcd that records every request and can
hold chosen ones (swallow them, as a hung server would) to catch a request
in flight, or cut chosen ones (forward them, then drop the client's
connection instead of passing etcd's answer back, as a crash or a network
failure after sending would)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.protocols import portforward
from twisted.python.failure import Failure

__all__ = ["RecordingProxy"]


class _Upstream(portforward.ProxyClient):
    """The proxy's connection to etcd: passes answers back, unless the request
    they answer is to be cut."""

    def dataReceived(self, data: bytes) -> None:
        server: _Server = self.peer
        if server.cutting:
            # etcd has handled the request: the client must not learn how.
            server.proxy.cut_answered += 1
            if server.proxy.cut_with_reset:
                server.transport.abortConnection()
            else:
                server.transport.loseConnection()
            self.transport.loseConnection()
            return
        super().dataReceived(data)


class _UpstreamFactory(portforward.ProxyClientFactory):
    protocol = _Upstream


class _Server(portforward.ProxyServer):
    """Splits the client's byte stream into whole requests (Content-Length
    bodies, as Twisted's Agent and aiohttp send them) and forwards, holds or
    cuts each."""

    clientProtocolFactory = _UpstreamFactory

    def connectionMade(self) -> None:
        self.buffer = b""
        self.holding = False
        self.cutting = False
        self.proxy: RecordingProxy = self.factory.proxy
        self.proxy.connections.append(self)
        self.proxy.peak_connections = max(self.proxy.peak_connections,
                                          len(self.proxy.connections))
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            raw, self.buffer = self.buffer[:total], self.buffer[total:]
            path, body = head[0].split(" ")[1], raw[end + 4:]
            if self.holding or self.proxy.hold(path, body):
                # Nothing more on this connection reaches etcd: it hangs.
                self.holding = True
                self.proxy.held.append((path, body))
            else:
                self.proxy.forwarded.append((path, body))
                if self.proxy.cut(path, body):
                    self.cutting = True
                    self.proxy.cut_paths.append(path)
                super().dataReceived(raw)

    def connectionLost(self, reason: Failure = portforward.protocol.connectionDone) -> None:
        if self.holding:
            self.proxy.dropped_while_held += 1
        self.proxy.connections.remove(self)
        super().connectionLost(reason)


class _Factory(portforward.ProxyFactory):
    protocol = _Server

    def __init__(self, host: str, port: int, proxy: RecordingProxy) -> None:
        super().__init__(host, port)
        self.proxy = proxy


class RecordingProxy:
    """Forwards to ``target`` (``http://host:port``); ``hold(path, body)`` decides
    which requests are swallowed instead. ``dropped_while_held`` counts the
    connections the client closed while one of their requests was held.

    ``cut(path, body)`` picks forwarded requests whose answer never reaches
    the client: the proxy drops the client's connection once etcd answered,
    with a TCP reset (``cut_with_reset``, as a crash) or a clean close (as a
    server closing an idle keep-alive connection). ``cut_paths`` lists them,
    ``cut_answered`` counts the answers withheld (so a test knows etcd
    handled each)."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").rsplit(":", 1)
        self.forwarded: list[tuple[str, bytes]] = []
        self.held: list[tuple[str, bytes]] = []
        self.hold: Callable[[str, bytes], bool] = lambda path, body: False
        self.cut: Callable[[str, bytes], bool] = lambda path, body: False
        self.cut_paths: list[str] = []
        self.cut_answered = 0
        self.cut_with_reset = True
        self.dropped_while_held = 0
        self.connections: list[_Server] = []
        #: the most client connections open at once
        self.peak_connections = 0
        self.port: IListeningPort = reactor.listenTCP(  # type: ignore[attr-defined]
            0, _Factory(host, int(port), self), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"

    @property
    def forwarded_paths(self) -> list[str]:
        """The paths of the requests forwarded to the target, in order."""
        return [path for path, _ in self.forwarded]

    @property
    def held_paths(self) -> list[str]:
        """The paths of the requests held, in order."""
        return [path for path, _ in self.held]

    def stop(self) -> None:
        for conn in list(self.connections):
            conn.transport.abortConnection()
        self.port.stopListening()
