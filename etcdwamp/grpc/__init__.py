"""etcd's gRPC API without grpcio: the optional ``grpc`` transport's protocol core.

This package is optional (the ``grpc`` extra): the JSON gateway stays the default
transport and needs none of it. It holds pure code only, in the sans-IO style of
h11: bytes in, events out, no sockets, clocks or threads, so that Twisted and
asyncio drive the same protocol.

- :mod:`etcdwamp.grpc.h2`: an HTTP/2 client connection specialised for gRPC calls
  (needs the ``hpack`` package to decode the peer's header blocks);
- :mod:`etcdwamp.grpc.framing`: gRPC's length-prefixed messages, the status in its
  trailers, and the exception etcdwamp raises for it.
"""
