"""Start a throw-away etcd on a free loopback port, run the examples against it, stop it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from etcdwamp.testing import EtcdCluster

EXAMPLES = ["getting_started.py", "pmap_users.py"]


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    with EtcdCluster(1) as etcd:
        print(f"etcd running at {etcd.url} (data in {etcd.tmpdir})", flush=True)
        for name in EXAMPLES:
            print(f"--- examples/{name}", flush=True)
            done = subprocess.run([sys.executable, str(root / "examples" / name),
                                   "--url", etcd.url], check=False)
            if done.returncode != 0:
                return done.returncode
    print("etcd stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
