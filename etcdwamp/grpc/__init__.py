"""etcd's gRPC API without grpcio: the optional ``grpc`` transport.

This package is optional (the ``grpc`` extra): the JSON gateway stays the default
transport and needs none of it. The protocol core is pure code in the sans-IO style
of h11 (bytes in, events out, no sockets, clocks or threads), so that Twisted and
asyncio drive the same protocol:

- :mod:`etcdwamp.grpc.h2`: an HTTP/2 client connection specialised for gRPC calls
  (needs the ``hpack`` package to decode the peer's header blocks);
- :mod:`etcdwamp.grpc.framing`: gRPC's length-prefixed messages, the status in its
  trailers, and the exception etcdwamp raises for it;
- :mod:`etcdwamp.grpc.proto`, :mod:`etcdwamp.grpc.generate`, :mod:`etcdwamp.grpc.pb`:
  etcd's vendored .proto files and the protobuf modules generated from them;
- :mod:`etcdwamp.grpc.codec`: the protobuf encoding of the wire layer's requests and
  answers.

Above them, :mod:`etcdwamp.grpc.connection` ties calls to Deferreds on one connection,
and :mod:`etcdwamp.grpc.sockets` gives it Twisted's or asyncio's socket.
"""
