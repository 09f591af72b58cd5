"""Decoding a 10,000-key Range answer: the protobuf codec's paths against the JSON path.

No etcd and no I/O: one answer of 10,000 key-values (20-byte keys, 64-byte values, as
``benchmarks/client.py`` stores them) is built once, as etcd's gRPC server would send it
(protobuf bytes) and as its gateway would (JSON bytes), and each path decodes it into the
same :class:`~etcdwamp.wire.RangeResult`:

- ``grpc fast``: ``codec.decode`` (the message parsed by upb, its key-values a
  ``KeyValues`` sequence over the repeated field, each built on first use);
- ``grpc tables``: the message parsed, then ``codec.message_json`` into ``parse_range``
  (the path of answers without a fast decoder);
- ``grpc generic``: the message parsed, then ``MessageToDict`` into ``parse_range``;
- ``gateway JSON``: ``json.loads`` of the gateway's answer, then ``parse_range`` (what the
  client does today).

Each path runs ``--rounds`` times, the paths taking turns; the best round counts (the
machine is shared). The
``+ keys, values`` rows also read every key and value, the
``+ numbers`` rows every key-value's mod revision (which makes the JSON path
decode the numbers it leaves as strings until asked).
Ratios are the JSON path's time over the path's (>1: faster than the JSON path).

Measured (2-core machine shared with other work; Python 3.11.7, protobuf 7.36.2 with upb;
``--rounds 7``, 2026-12-07; "before": one lazy object per key-value, same machine, minutes
apart)
------------------------------------------------------------------------------------------
The answer is 979,780 bytes as protobuf, 1,987,938 as the gateway's JSON.

=======================  ==========  ===============  ==========================
path                     ms          x the JSON path  before (an object per key)
=======================  ==========  ===============  ==========================
gateway JSON             15.1        1.00             17.0
grpc fast                0.45        33.2             3.14 ms, 5.43x
grpc tables              39.6        0.38
grpc generic             59.0        0.26
JSON + keys, values      15.6        1.00             15.7
grpc fast + keys, values 11.2        1.40             14.5 ms, 1.08x
JSON + numbers           47.9        1.00             48.0
grpc fast + numbers      10.7        4.47             14.3 ms, 3.35x
=======================  ==========  ===============  ==========================

- The fast path builds no object per key-value (``etcdwamp.grpc.keyvalues``): the result
  is ready once upb has parsed the message (~0.4 ms), ``len`` reads the repeated field's
  length. A key-value read is built then (~1 us with its six fields) and kept, so a
  reader of every key-value pays what building them up front cost.
- In a client process the cyclic GC changes the picture (this table collects before
  every round): each key-value built is an object the collector tracks, and 10,000 of
  them surviving a read bring a full collection forward; a range read for its length or
  a few keys now leaves none behind (``benchmarks/client.py --grpc``: see docs/client.rst).
- Answers without a fast decoder go through ``message_json`` (~1.5x faster than
  ``MessageToDict``), still slower than ``json.loads``: fine for the admin calls, which
  is why the range, the txn and a coalesced batch have fast paths (a batch of 64 puts'
  answer: 67 us fast, 392 us through ``message_json``, 357 us on the JSON path).
- Encoding, 1,000 requests: a put 1.46-1.56 ms by table (``ParseDict`` 7.7-12.0 ms,
  ``json.dumps`` of the body 1.8-1.9 ms); a coalesced batch of 64 puts 112-117 ms by
  table (1.7 us per op; ``ParseDict`` 719-769 ms, ``json.dumps`` 57-62 ms).

Usage: ``python benchmarks/grpc_codec.py [--keys N] [--rounds N] [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from etcdwamp.grpc import codec
from etcdwamp.grpc.pb import kv_pb2, rpc_pb2
from etcdwamp.wire import KeySet, put_request, range_request
from etcdwamp.wire.batch import batch_request
from etcdwamp.wire.results import parse_range

KEYS = 10_000
VALUE_SIZE = 64


def answers(keys: int) -> tuple[bytes, bytes]:
    """The same Range answer as protobuf bytes and as the gateway's JSON bytes."""
    message = rpc_pb2.RangeResponse(
        header={"cluster_id": 14841639068965178418, "member_id": 10276657743932975437,
                "revision": keys + 1, "raft_term": 2},
        kvs=[kv_pb2.KeyValue(key=b"bench/range/%08d" % i, value=bytes([65 + i % 26]) * VALUE_SIZE,
                             create_revision=i + 2, mod_revision=i + 2, version=1)
             for i in range(keys)],
        count=keys)
    as_json = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return message.SerializeToString(), json.dumps(as_json, separators=(",", ":")).encode()


def best_of(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """The fastest of ``rounds`` runs of each of ``runs``, in seconds; the runs take turns
    in every round, so a busy moment of the machine does not fall on one of them only."""
    times: dict[str, float] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            gc.collect()
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            times[name] = min(times.get(name, elapsed), elapsed)
    return times


def main() -> int:
    """Run every path, check they agree, print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=KEYS)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1,000 keys, 2 rounds")
    args = parser.parse_args()
    keys, rounds = (1000, 2) if args.quick else (args.keys, args.rounds)

    payload, gateway = answers(keys)
    request = range_request(KeySet(b"bench/range/", prefix=True))
    cls = rpc_pb2.RangeResponse

    paths: dict[str, Callable[[], Any]] = {
        "gateway JSON": lambda: parse_range(json.loads(gateway)),
        "grpc fast": lambda: codec.decode(request, payload),
        "grpc tables": lambda: parse_range(codec.message_json(cls.FromString(payload))),
        "grpc generic": lambda: codec.decode_generic(request, payload),
    }
    results = {name: run() for name, run in paths.items()}
    expected = results["gateway JSON"]
    assert all(r == expected for r in results.values()), "the paths disagree"
    assert len(expected.kvs) == keys
    del results, expected  # 40,000 key-values the collector would walk in every round

    def with_numbers(run: Callable[[], Any]) -> Callable[[], int]:
        return lambda: sum(kv.mod_revision for kv in run().kvs)

    def with_values(run: Callable[[], Any]) -> Callable[[], int]:
        return lambda: sum(len(kv.key) + len(kv.value) for kv in run().kvs)

    runs = dict(paths)
    runs.update({f"{name} + keys, values": with_values(paths[name])
                 for name in ("gateway JSON", "grpc fast")})
    runs.update({f"{name} + numbers": with_numbers(paths[name])
                 for name in ("gateway JSON", "grpc fast")})
    rows = list(best_of(runs, rounds).items())
    json_time = rows[0][1]
    json_values = rows[-4][1]
    json_numbers = rows[-2][1]
    print(f"Range answer of {keys:,} key-values: protobuf {len(payload):,} bytes, "
          f"gateway JSON {len(gateway):,} bytes; best of {rounds} rounds")
    print(f"{'path':<34}{'ms':>9}{'x JSON':>9}")
    for name, seconds in rows:
        baseline = (json_numbers if name.endswith("+ numbers") else
                    json_values if name.endswith("+ keys, values") else json_time)
        print(f"{name:<34}{seconds * 1000:>9.2f}{baseline / seconds:>9.2f}")
    encodings(rounds)
    return 0


def encodings(rounds: int) -> None:
    """Encoding a put and a coalesced batch of 64 puts, 1,000 times each: the codec's
    tables, ``ParseDict``, and the gateway path's ``json.dumps`` of the same body."""
    put = put_request(b"bench/put/00000001", b"v" * VALUE_SIZE)
    batch = batch_request([put_request(b"bench/put/%08d" % i, b"v" * VALUE_SIZE)
                           for i in range(64)])
    print(f"\n{'encoding, 1,000 times':<34}{'ms':>9}{'x JSON':>9}")
    for label, request in (("put", put), ("batch of 64 puts", batch)):
        assert codec.encode(request) == codec.encode_generic(request)
        times = best_of({
            "json.dumps": lambda r=request: [json.dumps(r.body) for _ in range(1000)],
            "grpc tables": lambda r=request: [codec.encode(r) for _ in range(1000)],
            "grpc ParseDict": lambda r=request: [codec.encode_generic(r) for _ in range(1000)],
        }, rounds)
        for name, seconds in times.items():
            print(f"{label + ', ' + name:<34}{seconds * 1000:>9.2f}"
                  f"{times['json.dumps'] / seconds:>9.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
