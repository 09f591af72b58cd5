"""The gateway's shapes of what gRPC says otherwise: its HTTP status per gRPC code, and
its error frame of a stream, so that one set of rules reads errors on both transports."""

from __future__ import annotations

import json

from .. import errors

__all__ = ["HTTP_BY_CODE", "JsonFrame", "encode_json", "error_frame"]

#: JSON as the gateway writes it (compact)
encode_json = json.JSONEncoder(separators=(",", ":")).encode

#: the HTTP status grpc-gateway answers with for each gRPC code (its HTTPStatusFromCode)
HTTP_BY_CODE = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400,
                10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}


class JsonFrame(bytes):
    """A streamed chunk that is a gateway JSON frame (an error), not a protobuf message."""


def error_frame(exc: errors.ServerError) -> JsonFrame:
    """The gateway's error frame for ``exc`` (a stream that etcd ended with an error)."""
    frame = encode_json({"error": {"code": exc.code, "message": exc.message,
                                   "http_code": HTTP_BY_CODE.get(exc.code, 500)}})
    return JsonFrame(frame.encode() + b"\n")
