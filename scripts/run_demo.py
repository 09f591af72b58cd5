"""The demo: a throw-away etcd on a free loopback port, the examples against it,
then Crossbar (from crossbar/.crossbar/config.json) serving the live page.

    .venv/bin/python scripts/run_demo.py [--no-serve]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from etcdwamp.testing import CrossbarNode, EtcdCluster

ROOT = Path(__file__).resolve().parent.parent
# The page lets anyone write notes, and etcd keeps every revision until compacted:
# at its default 2 GiB quota ~2,000 puts of 1 MB raise NOSPACE, which stops every
# write for everyone. So history older than 5 to 10 minutes is compacted (a publisher
# failover or a reconnecting watch needs seconds of it), and the quota is explicit:
# 512 MiB holds more than 30 minutes of writes at the guest rate limit (256 KiB/s).
# See docs/operations.rst, "Bounding storage".
DEMO_QUOTA_BACKEND_BYTES = 512 * 1024 ** 2
DEMO_AUTO_COMPACTION = ("periodic", "5m")
EXAMPLES = ["getting_started.py", "asyncio_client.py", "pmap_users.py", "flatbuffers/users.py"]


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> None:
    print(f"--- examples/{name}", flush=True)
    subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], check=True, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-serve", action="store_true",
                        help="stop after the examples instead of serving the web page")
    args = parser.parse_args()
    with EtcdCluster(1, quota_backend_bytes=DEMO_QUOTA_BACKEND_BYTES,
                     auto_compaction=DEMO_AUTO_COMPACTION) as etcd:
        print(f"etcd running at {etcd.url} (data in {etcd.tmpdir})", flush=True)
        for name in EXAMPLES:
            run_example(name, "--url", etcd.url)
        with CrossbarNode(str(ROOT / "crossbar" / ".crossbar" / "config.json"),
                          etcd.urls) as node:
            run_example("wamp_notes.py", "--url", node.url, "--seconds", "1", env=node.env)
            if not args.no_serve:
                print(f"\nLive demo: open {node.http_url} in a browser (two tabs show the "
                      "same notes, live; the page needs no password).\n"
                      f"Writer ticket for this run (authid 'writer'): {node.writer_ticket}\n"
                      f"  e.g. ETCDWAMP_WRITER_TICKET={node.writer_ticket} "
                      f"python examples/wamp_notes.py --url {node.url}\n"
                      "Ctrl-C stops Crossbar and etcd.", flush=True)
                try:
                    while node.process is not None and node.process.poll() is None:
                        time.sleep(0.5)
                except KeyboardInterrupt:
                    pass
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
