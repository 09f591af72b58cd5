"""An etcd stand-in for the gRPC connection's unit tests: the ``h2`` library as the
server, in memory, wired to a :class:`~etcdwamp.grpc.connection.GrpcConnection` through
a pipe that records what the connection wrote and how it ended its socket."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events

from etcdwamp.grpc.connection import GrpcConnection
from etcdwamp.grpc.framing import frame

__all__ = ["HEAD", "OK", "Peer", "Pipe"]

HEAD = [(b":status", b"200"), (b"content-type", b"application/grpc")]
OK = [(b"grpc-status", b"0")]


class Pipe:
    """The connection's socket: ``out`` is what the peer has not read yet, ``written``
    everything, ``ended`` the ways it was ended ("close", "abort")."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.written = bytearray()
        self.ended: list[str] = []

    def write(self, data: bytes) -> None:
        self.out += data
        self.written += data

    def close(self) -> None:
        self.ended.append("close")

    def abort(self) -> None:
        self.ended.append("abort")

    @property
    def closed(self) -> bool:
        """Closed cleanly."""
        return "close" in self.ended

    @property
    def aborted(self) -> bool:
        """Aborted."""
        return "abort" in self.ended


class Peer:
    """An h2 server wired to a GrpcConnection: the streams it saw opened and reset."""

    def __init__(self, endpoint: str = "http://127.0.0.1:2379") -> None:
        self.pipe = Pipe()
        self.conn = GrpcConnection("127.0.0.1:2379", endpoint=endpoint)
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.server.initiate_connection()
        self.conn.connection_made(self.pipe)
        self.requests: list[int] = []
        self.reset: list[int] = []
        self.pump()

    def pump(self) -> None:
        """Exchange bytes both ways until neither side has anything to say."""
        while True:
            data, self.pipe.out = bytes(self.pipe.out), bytearray()
            if data:
                for event in self.server.receive_data(data):
                    self.on_event(event)
            back = self.server.data_to_send()
            if back:
                self.conn.data_received(back)
            if not back and not self.pipe.out:
                return

    def on_event(self, event: Any) -> None:
        """What the server saw (a subclass may record more)."""
        if isinstance(event, h2.events.RequestReceived):
            self.requests.append(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.reset.append(event.stream_id)
        elif isinstance(event, h2.events.DataReceived):
            self.server.acknowledge_received_data(event.flow_controlled_length,
                                                  event.stream_id)

    def answer(self, stream_id: int, *messages: bytes, trailers: Any = OK) -> None:
        """Answer a call: headers, each message, then ``trailers``."""
        self.server.send_headers(stream_id, HEAD)
        for message in messages:
            self.server.send_data(stream_id, frame(message))
        self.server.send_headers(stream_id, trailers, end_stream=True)
        self.pump()
