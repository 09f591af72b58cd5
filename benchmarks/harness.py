"""What every benchmark script shares: its command line and its etcd."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer, task

from etcdwamp.testing import EtcdCluster

Run = Callable[[Any, str, bool], Coroutine[Any, Any, None]]


def main(run: Run, doc: str | None) -> int:
    """Parse ``--url``/``--quick``, start a throw-away etcd unless ``--url`` names
    one, and run ``run(reactor, etcd_url, quick)`` under the reactor."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an etcd to use (default: start a throw-away one)")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    args = parser.parse_args()

    def go(url: str) -> int:
        try:
            task.react(lambda reactor: defer.ensureDeferred(run(reactor, url, args.quick)))
        except SystemExit as exc:  # react() always exits; keep its status
            return exc.code if isinstance(exc.code, int) else 1
        return 0

    if args.url:
        return go(args.url)
    with EtcdCluster(1) as etcd:
        return go(etcd.url)
