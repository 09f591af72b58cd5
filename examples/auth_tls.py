"""Connect with TLS (CA, client certificate) and/or a user login, write and read a key.

    python examples/auth_tls.py --url https://127.0.0.1:2379 --ca-file ca.pem \\
        --cert-file client.pem --key-file client-key.pem
    python examples/auth_tls.py --url http://127.0.0.1:2379 --user app --password apppw

(etcd's gateway does not accept a client certificate together with a user
login: use one or the other.)
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import defer, task

from etcdwamp.client import Client


async def main(reactor: Any, args: argparse.Namespace) -> None:
    etcd = Client(reactor, url=args.url, ca_file=args.ca_file, cert_file=args.cert_file,
                  key_file=args.key_file, user=args.user, password=args.password)
    try:
        await etcd.put(args.key.encode(), b"written over " + args.url.split(":")[0].encode())
        got = await etcd.get(args.key.encode())
        who = f"as {args.user}" if args.user else "without login"
        print(f"{args.key} = {got.kvs[0].value.decode()} ({who})")
    finally:
        await etcd.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="https://127.0.0.1:2379", help="etcd client URL")
    parser.add_argument("--ca-file", help="CA that signed the server certificate")
    parser.add_argument("--cert-file", help="client certificate (with --key-file)")
    parser.add_argument("--key-file", help="client private key")
    parser.add_argument("--user", help="etcd user (with --password)")
    parser.add_argument("--password")
    parser.add_argument("--key", default="app/auth-tls-demo", help="the key to write")
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args)))
