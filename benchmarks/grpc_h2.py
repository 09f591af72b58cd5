"""Client-side CPU per unary gRPC call: etcdwamp.grpc's H2Connection against the ``h2``
library (issue 25: at most 25 µs per call for ours).

Both clients talk to the same in-memory ``h2`` server, which answers every call as etcd
3.4 (grpc-go) does: response HEADERS, one DATA message, trailers, and a PING (grpc-go's
bandwidth probe, sent after each call's DATA). From the second call on etcd's header
blocks are references to its HPACK table (``88c0``, ``bfbe``); the trailers here lack
etcd's empty ``grpc-message``, which the ``h2`` library's encoder would insert into its
table again on every call. Only the client's own work is timed:
building the request bytes, and parsing the answer into the gRPC message and status
(framing included, the same for both), plus answering the PING. The server's time is
not counted. Rounds alternate between the clients, so a burst of other work on the
machine hits both alike; printed is the median round of each, in µs per call.

Measured (2 cores, load about 1, two runs of 5 x 5,000 calls)::

    client                 µs/call    best   vs h2 ratio
    etcdwamp.grpc.h2          18.8    15.3          0.12
    h2 library               160.5   148.0          1.00

    etcdwamp.grpc.h2          17.6    15.8          0.11
    h2 library               155.3   143.7          1.00

No etcd is needed. Usage::

    python benchmarks/grpc_h2.py [--quick] [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.settings

from etcdwamp.grpc.framing import MessageDecoder, frame, grpc_status
from etcdwamp.grpc.h2 import Data, H2Connection, Trailers

PATH = b"/etcdserverpb.KV/Range"
AUTHORITY = "127.0.0.1:2379"
EXTRA_HEADERS = [(b"token", b"Y3JlYXRlZCBieSB0aGUgYmVuY2htYXJrLjE2"), (b"grpc-timeout", b"10S")]
# A RangeRequest for one key, and an answer with one key-value (about etcd's size).
REQUEST = b"\x0a\x0ebenchmark/key1"
ANSWER = (b"\x0a\x1a\x08\xcb\xea\xe6\xff\xe1\xd7\x8c\xa7\xc7\x01\x10\xc5\xd9\xcf\xc9\xa1\xc4"
          b"\xae\xe6\xe5\x01\x18\x07\x20\x02\x12\x1e\x0a\x0ebenchmark/key1\x10\x05\x18\x07"
          b"\x20\x01\x2a\x05value\x20\x01")


class Server:
    """An ``h2`` server answering each unary call as etcd does."""

    def __init__(self) -> None:
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.conn.initiate_connection()
        self.pings = 0

    def receive(self, data: bytes) -> bytes:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                sid = event.stream_id
                self.conn.send_headers(sid, [(b":status", b"200"),
                                             (b"content-type", b"application/grpc")])
                self.conn.send_data(sid, frame(ANSWER))
                self.conn.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
                self.pings += 1
                self.conn.ping(self.pings.to_bytes(8, "big"))
        return bytes(self.conn.data_to_send())


def ours(calls: int) -> float:
    """Client-side ns per call of H2Connection."""
    client = H2Connection(AUTHORITY)
    server = Server()
    client.receive(server.receive(client.initiate()))
    spent = 0
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        _, out = client.request(PATH, EXTRA_HEADERS, frame(REQUEST))
        t1 = clock()
        answer = server.receive(out)
        t2 = clock()
        events, out = client.receive(answer)
        decoder = MessageDecoder(4 * 1024 * 1024)
        messages: list[bytes] = []
        status = None
        for event in events:
            if isinstance(event, Data):
                messages += decoder.feed(event.data)
            elif isinstance(event, Trailers):
                status = grpc_status(event.headers)
        t3 = clock()
        spent += (t1 - t0) + (t3 - t2)
        assert messages == [ANSWER] and status == (0, ""), (events, status)
        if out:
            server.receive(out)
    return spent / calls


def theirs(calls: int) -> float:
    """Client-side ns per call of the ``h2`` library doing the same."""
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0,
                            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 * 1024 * 1024})
    client.increment_flow_control_window(64 * 1024 * 1024 - 65_535)
    server = Server()
    client.receive_data(server.receive(client.data_to_send()))
    server.receive(client.data_to_send())
    headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", PATH),
               (b":authority", AUTHORITY.encode()), (b"content-type", b"application/grpc"),
               (b"te", b"trailers"), *EXTRA_HEADERS]
    spent = 0
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, headers)
        client.send_data(stream_id, frame(REQUEST), end_stream=True)
        out = client.data_to_send()
        t1 = clock()
        answer = server.receive(out)
        t2 = clock()
        decoder = MessageDecoder(4 * 1024 * 1024)
        messages: list[bytes] = []
        status = None
        for event in client.receive_data(answer):
            if isinstance(event, h2.events.DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, stream_id)
                messages += decoder.feed(event.data)
            elif isinstance(event, h2.events.TrailersReceived):
                status = grpc_status(event.headers)
        out = client.data_to_send()
        t3 = clock()
        spent += (t1 - t0) + (t3 - t2)
        assert messages == [ANSWER] and status == (0, ""), status
        if out:
            server.receive(out)
    return spent / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--calls", type=int, default=5000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per client")
    args = parser.parse_args()
    calls, rounds = (200, 1) if args.quick else (args.calls, args.rounds)
    clients: list[tuple[str, Callable[[int], float]]] = [
        ("etcdwamp.grpc.h2", ours), ("h2 library", theirs)]
    for _, run in clients:  # warm-up: imports, caches, first-call costs
        run(200)
    results: dict[str, list[float]] = {name: [] for name, _ in clients}
    for _ in range(rounds):
        for name, run in clients:
            results[name].append(run(calls) / 1000)
    median = {name: statistics.median(values) for name, values in results.items()}
    base = median["h2 library"]
    print(f"client-side CPU per unary call ({calls} calls x {rounds} rounds; µs/call of "
          f"the median round, of the best round)")
    print(f"{'client':<20}{'µs/call':>10}{'best':>8}{'vs h2 ratio':>14}")
    for name, _ in clients:
        print(f"{name:<20}{median[name]:>10.1f}{min(results[name]):>8.1f}"
              f"{median[name] / base:>14.2f}")


if __name__ == "__main__":
    main()
