"""The options of ``etcdwamp export`` / ``import``, apart from the code that runs them.

Kept light (argparse only) so that building the command line does not import the pmap
codecs and tqdm, which only these two commands need (see :mod:`etcdwamp.cli_transfer`).
"""

from __future__ import annotations

import argparse

__all__ = ["ENCODINGS", "TransferError", "add_arguments"]

ENCODINGS = ("utf8", "base64", "hex")


class TransferError(Exception):
    """An export or import cannot go on; the message is for the user."""


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {n}")
    return n


def _slot(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= n <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"a slot is 0 to 65535, got {n}")
    return n


def _map_type(text: str) -> str:
    # The pmap classes are imported only when the option is given.
    from .pmap import MAP_TYPES

    if text not in MAP_TYPES:
        raise argparse.ArgumentTypeError(
            f"no map type {text!r} (choose from {', '.join(sorted(MAP_TYPES))})")
    return text


def add_arguments(sub: argparse.ArgumentParser, export: bool) -> None:
    """The options of ``export`` (``export=True``) or ``import``."""
    sub.add_argument("--prefix", default="", help="key prefix (or the Database prefix)")
    sub.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    sub.add_argument("--key-encoding", choices=ENCODINGS, default="utf8",
                     help="raw keys as utf8 (default), base64 or hex")
    sub.add_argument("--value-encoding", choices=ENCODINGS, default="base64",
                     help="raw values as base64 (default), utf8 or hex")
    sub.add_argument("--map", type=_slot, metavar="SLOT", help="a pmap slot under --prefix")
    sub.add_argument("--map-type", type=_map_type, metavar="MAPTYPE",
                     help="the map's class, e.g. MapUuidCbor (any of etcdwamp.pmap.MAP_TYPES)")
    sub.add_argument("--key-type", choices=("String", "Binary", "Oid", "Uuid"),
                     help="with --value-type: the simple map Map<KEY><VALUE>")
    sub.add_argument("--value-type", choices=("String", "Binary", "Oid", "Uuid", "Json", "Cbor",
                                              "Pickle", "FlatBuffers"))
    if export:
        sub.add_argument("-o", "--output", help="file, replaced only when complete "
                         "(default: stdout)")
        sub.add_argument("--page-size", type=_positive, default=1000)
    else:
        sub.add_argument("input", help="file, or - for stdin")
        sub.add_argument("--chunk", type=_positive, default=128,
                         help="keys per txn (at most etcd's --max-txn-ops)")
        sub.add_argument("--dry-run", action="store_true",
                         help="write nothing; print + (new) and ~ (changed) keys")
        sub.add_argument("--checkpoint", help="file recording progress, for resuming")
