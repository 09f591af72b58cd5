"""The transport's HTTP seam names its encoding: the transport encodes, decodes and
reads watch streams with what the HTTP object gives (``codec``, ``watch_decoder``),
the gateway's JSON on both loops' gateway classes, protobuf on gRPC."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from etcdwamp.asyncio.http import AiohttpHTTP
from etcdwamp.grpc.http import PROTOBUF_CODEC, GrpcHTTP, WatchMessages
from etcdwamp.transport import HTTP, JSON_CODEC, AgentHTTP, Transport, TreqHTTP, TwistedHTTP
from etcdwamp.wire import DEFAULT_MAX_REQUEST_BYTES, PutResult, Request, put_request
from etcdwamp.wire.watch import WatchDecoder

T = TypeVar("T")

ENDPOINT = "http://etcd.test:2379"
HEADER = {"cluster_id": "1", "member_id": "2", "revision": "7", "raft_term": "3"}


class TaggingCodec:
    """The JSON codec, with every body tagged and every decode recorded."""

    def __init__(self) -> None:
        self.decoded: list[tuple[str, bytes]] = []

    def encode(self, request: Request[Any]) -> bytes:
        return b"tagged:" + JSON_CODEC.encode(request)

    def decode(self, request: Request[T], endpoint: str, content: bytes) -> T:
        self.decoded.append((endpoint, content))
        return JSON_CODEC.decode(request, endpoint, content)


class OwnDecoder(WatchDecoder):
    """A watch decoder the transport can only have got from the HTTP object."""


class EncodedHTTP(TwistedHTTP):
    """Answers every exchange with ``answer``, recording what was sent."""

    codec = TaggingCodec()

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.bodies: list[bytes] = []

    def exchange(self, endpoint: str, path: str, body: bytes,
                 token: str | None) -> Deferred[tuple[int, bytes]]:
        self.bodies.append(body)
        return succeed((200, json.dumps(self.answer).encode()))

    def watch_decoder(self) -> OwnDecoder:
        return OwnDecoder()

    def close(self) -> Deferred[None]:
        return succeed(None)


def result_of(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def transport_over(http: HTTP, *, require_leader: bool = True) -> Transport:
    return Transport(http, Clock(), [ENDPOINT], timeout=5.0,
                     max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, api_prefix="/v3",
                     require_leader=require_leader)


def test_the_transport_encodes_and_decodes_with_the_codec_the_http_names() -> None:
    http = EncodedHTTP({"header": HEADER})
    transport = transport_over(http)
    result = result_of(transport.call(put_request(b"k", b"v")))
    assert http.bodies == [b'tagged:{"key":"aw==","value":"dg=="}']
    assert http.codec.decoded == [(ENDPOINT, json.dumps({"header": HEADER}).encode())]
    assert isinstance(result, PutResult) and result.revision == 7


def test_the_transport_reads_watch_streams_with_the_http_objects_decoder() -> None:
    transport = transport_over(EncodedHTTP({}))
    assert isinstance(transport.watch_decoder(), OwnDecoder)


def test_the_transport_hands_its_require_leader_option_to_the_http() -> None:
    http = EncodedHTTP({})
    assert http.require_leader
    transport_over(http, require_leader=False)
    assert http.require_leader is False


def test_the_gateway_classes_of_both_loops_speak_json_and_grpc_protobuf() -> None:
    from twisted.internet import reactor

    gateways: list[HTTP] = [
        AgentHTTP(reactor, connect_timeout=1.0, pool_size=1),
        TreqHTTP(object()),  # type: ignore[arg-type]  # never posts here
        AiohttpHTTP(object(), connect_timeout=1.0, pool_size=1),  # type: ignore[arg-type]
    ]
    for http in gateways:
        assert http.codec is JSON_CODEC, type(http).__name__
        assert type(http.watch_decoder()) is WatchDecoder, type(http).__name__
    grpc: HTTP = GrpcHTTP(lambda endpoint: Deferred())
    assert grpc.codec is PROTOBUF_CODEC
    assert isinstance(grpc.watch_decoder(), WatchMessages)


def test_the_json_codec_is_the_gateways_body_and_answer() -> None:
    request = put_request(b"k", b"v")
    assert json.loads(JSON_CODEC.encode(request)) == {"key": "aw==", "value": "dg=="}
    answer = JSON_CODEC.decode(request, ENDPOINT, json.dumps({"header": HEADER}).encode())
    assert isinstance(answer, PutResult) and answer.revision == 7


def test_the_protobuf_codec_round_trips_through_the_grpc_messages() -> None:
    from etcdwamp.grpc import codec

    request = put_request(b"k", b"v")
    assert PROTOBUF_CODEC.encode(request) == codec.encode(request)
    cls = codec.method(request.path).response_class
    message = cls(header={"revision": 9}).SerializeToString()
    answer = PROTOBUF_CODEC.decode(request, ENDPOINT, message)
    assert isinstance(answer, PutResult) and answer.revision == 9
