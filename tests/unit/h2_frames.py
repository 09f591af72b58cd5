"""Reading what a gRPC connection wrote, for the unit tests: the types of the HTTP/2
frames in a byte string (RFC 9113 4.1: a 9-byte header, its length in the first 3)."""

from __future__ import annotations


def frame_types(data: bytes) -> list[int]:
    """The type of each whole frame in ``data``, in order."""
    kinds, at = [], 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at:at + 3], "big")
        kinds.append(data[at + 3])
        at += 9 + length
    return kinds
