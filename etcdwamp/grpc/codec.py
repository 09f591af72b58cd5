"""The protobuf encoding of the wire layer's requests and answers (etcd's gRPC API).

The wire layer stays the one source of meaning: a :class:`~etcdwamp.wire.Request` holds a
gateway path and the gateway's proto3-JSON body, and its ``parse`` reads the gateway's
JSON answer. This module gives each path its gRPC method (:func:`method`) and a second
encoding of the same request and answer:

- the generic path, complete for every request: ``json_format.ParseDict`` of the body,
  and ``MessageToDict`` of the answer handed to the request's own ``parse``
  (:func:`encode_generic`, :func:`decode_generic`);
- fast paths for the hot requests: the body set into the message by tables built from
  the message descriptors (no ``json_format``), and the answers of range, put, delete,
  txn, lease grant and keep-alive, status and watch decoded straight into the wire
  layer's result objects (:func:`encode`, :func:`decode`, :func:`encode_watch`,
  :func:`decode_watch`), a coalesced batch's too; every other answer reaches its
  ``parse`` as JSON built by such tables (:func:`message_json`), ~1.5x faster than
  ``MessageToDict``.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError

from .. import errors as e
from ..wire.batch import BatchParse
from ..wire.concurrency import LeaseKeepAliveResult, lease_keepalive_request
from ..wire.requests import Request
from ..wire.results import (
    DeleteResult,
    Header,
    LeaseGrantResult,
    OpResult,
    PutResult,
    RangeResult,
    StatusResult,
    TxnResult,
    parse_delete,
    parse_lease_grant,
    parse_put,
    parse_range,
    parse_status,
    parse_txn,
)
from ..wire.watch import EventType, WatchEvent, WatchResponse, parse_watch_frame
from . import pb
from .keyvalues import KeyValues, decode_key_values
from .keyvalues import decode_key_value as _kv

__all__ = [
    "FAST_ENCODE_PATHS",
    "Method",
    "answer_json",
    "decode",
    "decode_generic",
    "decode_key_values",
    "decode_watch",
    "decode_watch_generic",
    "encode",
    "encode_generic",
    "encode_watch",
    "message_json",
    "method",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Method:
    """The gRPC method behind one gateway path, with its message classes."""

    #: the gateway path, relative to ``/v3`` (``/kv/range``)
    path: str
    #: the gRPC method path etcd serves (``/etcdserverpb.KV/Range``)
    name: str
    request_class: Any
    response_class: Any
    client_streaming: bool
    server_streaming: bool


def _methods() -> dict[str, Method]:
    modules = {m.__name__.rsplit(".", 1)[-1]: m for m in
               (pb.rpc_pb2, pb.kv_pb2, pb.auth_pb2, pb.v3election_pb2, pb.v3lock_pb2)}
    out = {}
    for path, (name, request, response, module, client_streams,
               server_streams) in pb.ROUTES.items():
        out[path] = Method(path, name, getattr(modules[module], request),
                           getattr(modules[module], response), client_streams, server_streams)
    return out


_METHODS = _methods()


def method(path: str) -> Method:
    """The gRPC method of gateway ``path`` (relative to ``/v3``).

    :raises ValueError: etcd's API binds no RPC to ``path``
    """
    try:
        return _METHODS[path]
    except KeyError:
        raise ValueError(f"etcd's gRPC API has no method for the gateway path {path!r}") from None


# -- the generic path ---------------------------------------------------------------------

def encode_generic(request: Request[Any]) -> bytes:
    """The request message of ``request`` from its JSON body by ``json_format.ParseDict``.

    :raises ValueError: an unknown path, or a body that is not the message's JSON
    """
    message = method(request.path).request_class()
    try:
        json_format.ParseDict(request.body, message)
    except json_format.ParseError as exc:
        raise ValueError(f"{request.path}: the body is not the request's JSON: {exc}") from None
    result: bytes = message.SerializeToString()
    return result


def answer_json(path: str, payload: bytes) -> dict[str, Any]:
    """The gateway's JSON form of an answer to ``path``: ``MessageToDict`` with the proto
    field names, wrapped in ``{"result": ...}`` for a streaming method as the gateway does.

    :raises ProtocolError: ``payload`` is not the method's answer message
    """
    m = method(path)
    message = _parse(m.response_class, payload, path)
    obj = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return {"result": obj} if m.server_streaming else obj


def decode_generic(request: Request[T], payload: bytes) -> T:
    """``request.parse`` of the answer's JSON (:func:`answer_json`): the same result object
    the gateway path gives. Raises what ``parse`` raises, or :class:`ProtocolError`."""
    return request.parse(answer_json(request.path, payload))


def _parse(cls: Any, payload: bytes, path: str) -> Any:
    try:
        return cls.FromString(payload)
    except DecodeError:
        raise e.ProtocolError(f"{path}: the answer is not a valid protobuf message") from None


# -- fast encoding: the JSON body by tables built from the descriptors -------------------

_INTEGER_TYPES = frozenset({
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_SFIXED32,
})

_a2b = binascii.a2b_base64

# message descriptor -> {JSON key (proto name and json_name): the setter of that field}
_Setter = Callable[[Any, Any], None]  # (message, the field's JSON value)
_TABLES: dict[Any, dict[str, _Setter]] = {}


def _same(value: Any) -> Any:
    return value  # strings and bools: the message checks their types


def _repeated(field: Any) -> bool:
    # protobuf 6.31 added is_repeated; 7 dropped label.
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)


def _enum_number(field: Any) -> Callable[[Any], Any]:
    numbers = {value.name: value.number for value in field.enum_type.values}
    enum = field.enum_type.name

    def number(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # a number: the message checks it
        try:
            return numbers[value]
        except KeyError:
            raise ValueError(f"{enum} has no value {value!r}") from None
    return number


def _scalar(field: Any) -> Callable[[Any], Any]:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _a2b
    if field.type in _INTEGER_TYPES:
        return int  # int64s are strings in JSON
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum_number(field)
    return _same


def _array(values: Any) -> list[Any]:
    if not isinstance(values, list):
        raise TypeError(f"expected a JSON array, got {type(values).__name__}")
    return values


def _setter(field: Any) -> _Setter:
    """What sets ``field`` of a message from its JSON value, in place."""
    name = field.name
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        descriptor = field.message_type
        if _repeated(field):
            def add_messages(message: Any, values: Any) -> None:
                add = getattr(message, name).add
                for value in _array(values):
                    _fill(add(), descriptor, value)
            return add_messages

        def set_message(message: Any, value: Any) -> None:
            inner = getattr(message, name)
            inner.SetInParent()  # {} is a message too (a progress request)
            _fill(inner, descriptor, value)
        return set_message
    convert = _scalar(field)
    if _repeated(field):
        def extend(message: Any, values: Any) -> None:
            getattr(message, name).extend([convert(v) for v in _array(values)])
        return extend

    def set_scalar(message: Any, value: Any) -> None:
        setattr(message, name, convert(value))
    return set_scalar


def _table(descriptor: Any) -> dict[str, _Setter]:
    table = _TABLES.get(descriptor)
    if table is None:
        table = {}
        for field in descriptor.fields:
            table[field.name] = table[field.json_name] = _setter(field)
        _TABLES[descriptor] = table
    return table


def _fill(message: Any, descriptor: Any, body: Any) -> None:
    """Set the fields of ``message`` (of ``descriptor``) from its JSON ``body``."""
    if type(body) is not dict and not isinstance(body, Mapping):  # the cheap test first
        raise TypeError(f"{descriptor.name} should be a JSON object, got {type(body).__name__}")
    table = _TABLES.get(descriptor) or _table(descriptor)
    for key, value in body.items():
        try:
            set_field = table[key]
        except KeyError:
            raise ValueError(f"{descriptor.name} has no field {key!r}") from None
        set_field(message, value)


def _build(cls: Any, body: Mapping[str, Any], what: str) -> bytes:
    message = cls()
    try:
        _fill(message, cls.DESCRIPTOR, body)
    except (TypeError, ValueError, binascii.Error) as exc:
        raise ValueError(f"{what}: the body is not the request's JSON: {exc}") from None
    data: bytes = message.SerializeToString()
    return data


#: the paths :func:`encode` converts by table; the others go through ``ParseDict``
FAST_ENCODE_PATHS = frozenset({
    "/kv/range", "/kv/put", "/kv/deleterange", "/kv/txn", "/lease/grant", "/lease/keepalive",
    "/maintenance/status", "/watch",
})


def encode(request: Request[Any]) -> bytes:
    """The request message of ``request``, serialised: by table for the
    :data:`FAST_ENCODE_PATHS`, else by :func:`encode_generic`. Both give the same bytes.

    :raises ValueError: an unknown path, or a body that is not the message's JSON
    """
    if request.path in FAST_ENCODE_PATHS:
        return _build(method(request.path).request_class, request.body, request.path)
    return encode_generic(request)


def encode_watch(body: Mapping[str, Any]) -> bytes:
    """One ``WatchRequest`` of the watch stream from its JSON (``watch_create_body``,
    ``watch_cancel_body`` or ``{"progress_request": {}}``).

    :raises ValueError: ``body`` is not a WatchRequest's JSON
    """
    return _build(pb.rpc_pb2.WatchRequest, body, "/watch")


# -- fast decoding: the answer's JSON by tables, for the parsers without a fast path -----

_INT64_TYPES = frozenset({
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
})
_JSON_CONVERTERS: dict[Any, Callable[[Any], Any]] = {}


def _b64(value: bytes) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _enum_name(field: Any) -> Callable[[int], Any]:
    names = {number: value.name for number, value in field.enum_type.values_by_number.items()}
    return lambda number: names.get(number, number)  # an unknown number stays a number


def _json_converter(field: Any) -> Callable[[Any], Any]:
    convert = _JSON_CONVERTERS.get(field)
    if convert is None:
        if field.type == FieldDescriptor.TYPE_BYTES:
            convert = _b64
        elif field.type in _INT64_TYPES:
            convert = str  # as the gateway writes int64s
        elif field.type == FieldDescriptor.TYPE_ENUM:
            convert = _enum_name(field)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            convert = message_json
        else:
            convert = _same
        if _repeated(field):
            convert = _each_json(convert)
        _JSON_CONVERTERS[field] = convert
    return convert


def _each_json(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda values: [convert(v) for v in values]


def message_json(message: Any) -> dict[str, Any]:
    """``message`` as the gateway's JSON (what ``MessageToDict`` with the proto field names
    gives, without its cost): fields left at their defaults are left out."""
    return {field.name: _json_converter(field)(value) for field, value in message.ListFields()}


# -- fast decoding: messages straight into the wire layer's results ----------------------

def _header(message: Any) -> Header:
    h = message.header
    return Header(h.cluster_id, h.member_id, h.revision, h.raft_term)


def _range(message: Any, header: Header) -> RangeResult:
    # Built on first use: a large range is often read for its count or a few keys.
    return RangeResult(header, KeyValues(message.kvs), message.more, message.count)


def _put(message: Any, header: Header) -> PutResult:
    return PutResult(header, _kv(message.prev_kv) if message.HasField("prev_kv") else None)


def _delete(message: Any, header: Header) -> DeleteResult:
    return DeleteResult(header, message.deleted, decode_key_values(message.prev_kvs))


def _txn(message: Any, header: Header) -> TxnResult:
    # Inner answers carry the transaction's header, as parse_txn gives them.
    return TxnResult(header, message.succeeded,
                     tuple(_response_op(op, header) for op in message.responses))


def _response_op(op: Any, header: Header) -> OpResult:
    kind = op.WhichOneof("response")
    if kind == "response_range":
        return _range(op.response_range, header)
    if kind == "response_put":
        return _put(op.response_put, header)
    if kind == "response_delete_range":
        return _delete(op.response_delete_range, header)
    if kind == "response_txn":
        return _txn(op.response_txn, header)
    raise e.ProtocolError(f"unknown txn response op: {kind}")


def _lease_grant(message: Any, header: Header) -> LeaseGrantResult:
    if message.error:
        raise e.ProtocolError(f"lease grant failed: {message.error}")
    return LeaseGrantResult(header, message.ID, message.TTL)


def _keepalive(message: Any, header: Header) -> LeaseKeepAliveResult:
    return LeaseKeepAliveResult(header, message.ID, message.TTL)


def _status(message: Any, header: Header) -> StatusResult:
    return StatusResult(header, message.version, message.dbSize, message.leader,
                        message.raftIndex, message.raftTerm, message.raftAppliedIndex,
                        message.dbSizeInUse, message.isLearner, tuple(message.errors))


_EVENT_TYPES = (EventType.PUT, EventType.DELETE)  # mvccpb.Event.EventType's numbers


def _watch(message: Any, header: Header) -> WatchResponse:
    events = []
    for event in message.events:
        if not 0 <= event.type < len(_EVENT_TYPES):
            raise e.ProtocolError(f"unknown watch event type {event.type}")
        events.append(WatchEvent(_EVENT_TYPES[event.type], _kv(event.kv),
                                 _kv(event.prev_kv) if event.HasField("prev_kv") else None))
    return WatchResponse(header, message.watch_id, message.created, message.canceled,
                         message.compact_revision, message.cancel_reason, message.fragment,
                         tuple(events))


# The parsers whose answers are decoded without JSON, with the path each belongs to:
# another parser of the same path (a coalesced batch's) takes the generic path.
_FAST_DECODE: dict[Callable[..., Any], tuple[str, Callable[[Any, Header], Any]]] = {
    parse_range: ("/kv/range", _range),
    parse_put: ("/kv/put", _put),
    parse_delete: ("/kv/deleterange", _delete),
    parse_txn: ("/kv/txn", _txn),
    parse_lease_grant: ("/lease/grant", _lease_grant),
    lease_keepalive_request(1).parse: ("/lease/keepalive", _keepalive),
    parse_status: ("/maintenance/status", _status),
}


def decode(request: Request[T], payload: bytes) -> T:
    """The result of ``request`` from its answer message: straight from the message for the
    hot requests and coalesced batches, else ``request.parse`` of :func:`message_json`;
    the same object :func:`decode_generic` gives.

    :raises ProtocolError: ``payload`` is not the answer message, or holds what the
        gateway path's parser refuses too
    """
    m = method(request.path)
    message = _parse(m.response_class, payload, request.path)
    parse = request.parse
    if isinstance(parse, BatchParse) and request.path == "/kv/txn":  # a coalesced batch
        return cast(T, parse.results(_txn(message, _header(message))))
    fast = _FAST_DECODE.get(parse)
    if fast is None or fast[0] != request.path:
        obj = message_json(message)
        return parse({"result": obj} if m.server_streaming else obj)
    result: T = fast[1](message, _header(message))
    return result


def decode_watch(payload: bytes) -> WatchResponse:
    """One ``WatchResponse`` of the watch stream as the wire layer's :class:`WatchResponse`
    (what :class:`~etcdwamp.wire.watch.WatchDecoder` yields for the gateway's frame).

    :raises ProtocolError: ``payload`` is not a WatchResponse, or has an unknown event type
    """
    message = _parse(pb.rpc_pb2.WatchResponse, payload, "/watch")
    return _watch(message, _header(message))


def decode_watch_generic(payload: bytes) -> WatchResponse:
    """:func:`decode_watch` by way of the gateway's JSON frame and ``parse_watch_frame``."""
    return parse_watch_frame(answer_json("/watch", payload))
