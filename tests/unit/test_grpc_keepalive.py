"""Lease renewals on one LeaseKeepAlive stream per connection (etcdwamp/grpc/keepalive.py
and GrpcHTTP's use of it), against the h2 library as the server in memory: one HTTP/2
stream for many renewals, answers taken in order, a cancelled renewal keeping its
place, the stream's end failing what waits, and a new stream for a new token."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2_peer import HEAD, OK, Peer
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from etcdwamp import errors
from etcdwamp.grpc import codec
from etcdwamp.grpc.connection import GrpcConnection
from etcdwamp.grpc.framing import MessageDecoder, frame
from etcdwamp.grpc.http import GrpcHTTP
from etcdwamp.grpc.keepalive import KEEPALIVE_METHOD, KeepAliveStream
from etcdwamp.wire import range_request
from etcdwamp.wire.concurrency import lease_keepalive_request

ENDPOINT = "http://127.0.0.1:2379"
NO_LEADER = [(b"grpc-status", b"14"), (b"grpc-message", b"etcdserver: no leader")]
KEEPALIVE = codec.method("/lease/keepalive")


def request(lease_id: int) -> bytes:
    return bytes(KEEPALIVE.request_class(ID=lease_id).SerializeToString())


def answer(lease_id: int, ttl: int) -> bytes:
    return bytes(KEEPALIVE.response_class(ID=lease_id, TTL=ttl).SerializeToString())


class Server(Peer):
    """The peer, also recording the lease ids each stream carried, which ended from our
    side, and the metadata each opened with."""

    def __init__(self) -> None:
        self.leases: dict[int, list[int]] = {}
        self.headers: dict[int, dict[bytes, bytes]] = {}
        self.half_closed: list[int] = []
        self._decoders: dict[int, MessageDecoder] = {}
        super().__init__(ENDPOINT)

    def on_event(self, event: Any) -> None:
        super().on_event(event)
        if isinstance(event, h2.events.RequestReceived):
            self.headers[event.stream_id] = dict(event.headers)
            self.leases[event.stream_id] = []
            self._decoders[event.stream_id] = MessageDecoder(1 << 20)
        elif isinstance(event, h2.events.DataReceived):
            for message in self._decoders[event.stream_id].feed(event.data):
                self.leases[event.stream_id].append(
                    KEEPALIVE.request_class.FromString(message).ID)
        elif isinstance(event, h2.events.StreamEnded):
            self.half_closed.append(event.stream_id)

    def reply(self, stream_id: int, *messages: bytes) -> None:
        if not self.server.streams[stream_id].state_machine.headers_sent:
            self.server.send_headers(stream_id, HEAD)
        for message in messages:
            self.server.send_data(stream_id, frame(message))
        self.pump()

    def end(self, stream_id: int, trailers: Any = OK) -> None:
        if not self.server.streams[stream_id].state_machine.headers_sent:
            self.server.send_headers(stream_id, HEAD)
        self.server.send_headers(stream_id, trailers, end_stream=True)
        self.pump()


def outcome(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0].value if isinstance(box[0], Failure) else box[0]


def stream_of(server: Server) -> tuple[KeepAliveStream, list[KeepAliveStream]]:
    ended: list[KeepAliveStream] = []
    return KeepAliveStream(server.conn, [(b"hasleader", b"true")], ended.append), ended


def test_renewals_share_one_stream_and_take_its_answers_in_order() -> None:
    server = Server()
    stream, ended = stream_of(server)
    first, second, third = (stream.renew(request(i)) for i in (7, 8, 7))
    server.pump()
    [sid] = server.leases
    assert server.leases[sid] == [7, 8, 7], "three renewals, one HTTP/2 stream"
    assert server.headers[sid][b":path"] == KEEPALIVE_METHOD
    server.reply(sid, answer(7, 30), answer(8, 0))
    assert outcome(first) == answer(7, 30) and outcome(second) == answer(8, 0)
    assert not third.called and stream.waiting == 1
    server.reply(sid, answer(7, 29))
    assert outcome(third) == answer(7, 29)
    assert server.conn.in_flight == 1 and not ended, "the stream stays open for the next"


def test_a_cancelled_renewal_keeps_its_place_and_its_late_answer_is_dropped() -> None:
    server = Server()
    stream, _ = stream_of(server)
    late = stream.renew(request(7))
    late.cancel()
    assert isinstance(outcome(late), CancelledError)
    again = stream.renew(request(7))
    server.pump()
    [sid] = server.leases
    server.reply(sid, answer(7, 11))  # the cancelled one's: not for the later renewal
    assert not again.called
    server.reply(sid, answer(7, 30))
    assert outcome(again) == answer(7, 30)


def test_the_streams_error_status_fails_every_waiting_renewal_and_ends_it() -> None:
    server = Server()
    stream, ended = stream_of(server)
    waiting = [stream.renew(request(i)) for i in (1, 2)]
    server.pump()
    [sid] = server.leases
    server.end(sid, NO_LEADER)
    for d in waiting:
        failed = outcome(d)
        assert isinstance(failed, errors.ServerError) and failed.code == 14
    assert ended == [stream] and stream.ended
    try:
        stream.renew(request(3))
    except errors.ConnectFailed:
        pass
    else:
        raise AssertionError("an ended stream takes no renewal (the owner opens a new one)")


def test_losing_the_connection_fails_the_waiting_renewals_with_connection_lost() -> None:
    server = Server()
    stream, ended = stream_of(server)
    waiting = stream.renew(request(1))
    server.conn.connection_lost("reset by peer")
    assert isinstance(outcome(waiting), errors.ConnectionLost)
    assert ended == [stream]


def test_close_waits_for_the_answers_sent_for_then_the_stream_ends() -> None:
    server = Server()
    stream, ended = stream_of(server)
    waiting = stream.renew(request(1))
    stream.close()
    server.pump()
    [sid] = server.leases
    assert server.half_closed == [sid], "END_STREAM sent: etcd answers, then ends it"
    assert not ended
    server.reply(sid, answer(1, 30))
    assert outcome(waiting) == answer(1, 30)
    server.end(sid)
    assert ended == [stream] and server.conn.in_flight == 0


def test_close_without_waiting_renewals_resets_the_stream_at_once() -> None:
    server = Server()
    stream, ended = stream_of(server)
    done = stream.renew(request(1))
    server.pump()
    [sid] = server.leases
    server.reply(sid, answer(1, 30))
    assert outcome(done) == answer(1, 30)
    stream.close()
    server.pump()
    assert server.reset == [sid] and ended == [stream] and server.conn.in_flight == 0


def http_over(server: Server) -> GrpcHTTP:
    def connect(endpoint: str) -> Deferred[GrpcConnection]:
        d: Deferred[GrpcConnection] = Deferred()
        d.callback(server.conn)
        return d

    return GrpcHTTP(connect)


def test_grpc_http_sends_keepalives_on_the_shared_stream_and_a_new_token_gets_a_new_one() -> None:
    server = Server()
    http = http_over(server)
    body = codec.encode(lease_keepalive_request(5))
    first = http.exchange(ENDPOINT, "/v3/lease/keepalive", body, "token-a")
    second = http.exchange(ENDPOINT, "/v3/lease/keepalive", body, "token-a")
    server.pump()
    [sid] = server.leases
    assert server.leases[sid] == [5, 5] and server.headers[sid][b"token"] == b"token-a"
    server.reply(sid, answer(5, 30), answer(5, 30))
    assert outcome(first) == outcome(second) == (200, answer(5, 30))
    renewed = http.exchange(ENDPOINT, "/v3/lease/keepalive", body, "token-b")
    server.pump()
    old, new = server.leases
    assert server.headers[new][b"token"] == b"token-b"
    assert server.reset == [old], "the old token's idle stream was ended"
    server.end(new, [(b"grpc-status", b"14"), (b"grpc-message", b"etcdserver: no leader")])
    status, content = outcome(renewed)
    assert status == 503 and b"no leader" in content, "the gateway's answer, as for a unary call"


def test_a_keepalive_stream_that_never_opened_is_forgotten_with_its_lost_connection() -> None:
    # etcd allows one stream, a range holds it: the renewal waits for a free stream;
    # then the connection goes. Nothing may keep the dead connection referenced.
    server = Server()
    server.server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    server.pump()
    http = http_over(server)
    held = http.exchange(ENDPOINT, "/v3/kv/range",
                         codec.encode(range_request(b"k")), None)
    renewal = http.exchange(ENDPOINT, "/v3/lease/keepalive",
                            codec.encode(lease_keepalive_request(5)), None)
    server.pump()
    assert len(server.leases) == 1, "one stream (the range's): the renewal waits"
    server.conn.connection_lost(Failure(errors.ConnectionLost("gone")))
    assert isinstance(outcome(held), errors.ConnectionLost)
    assert isinstance(outcome(renewal), errors.EtcdError)
    assert http._keepalives == {}, "no stream entry holds the lost connection"
