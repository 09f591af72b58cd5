"""gRPC spoken with the wrong TLS setting to real etcd servers, on both loops: the
ConnectFailed says which side likely got TLS wrong ("no TLS there?" for https:// to a
cleartext etcd, "TLS there?" for http:// to a TLS etcd), as the gateway transport's
errors do, and says nothing of the kind when TLS was spoken and refused us."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator

import pytest
from loops import ensure, make_client

from etcdwamp import errors as e
from etcdwamp.testing import EtcdCluster, TLSFiles, make_test_pki

NO_TLS = "no TLS there? an endpoint that serves plain HTTP needs http://"
TLS_THERE = "TLS there? an endpoint that serves TLS needs https://"


@pytest.fixture
def pki() -> Iterator[TLSFiles]:
    with tempfile.TemporaryDirectory(prefix="etcdwamp-pki-") as directory:
        yield make_test_pki(directory)


@pytest.fixture
def tls_etcd(pki: TLSFiles, etcd_factory: Callable[..., EtcdCluster]) -> EtcdCluster:
    cluster = etcd_factory(1, tls=pki)
    assert cluster.url.startswith("https://")
    return cluster


def readable(message: str) -> None:
    assert "Failure" not in message and "twisted" not in message, message


@ensure
async def test_https_to_a_cleartext_etcd_says_no_tls_there(etcd: EtcdCluster,
                                                          loop: str) -> None:
    """etcd's cleartext port hangs up on a TLS ClientHello: not sent, and why."""
    wrong = make_client(loop, url=etcd.url.replace("http://", "https://"), transport="grpc",
                        timeout=5.0)
    try:
        with pytest.raises(e.ConnectFailed) as refused:
            await wrong.put(b"grpc-tls/never", b"v")  # a write, yet ConnectFailed: unsent
        message = str(refused.value)
        assert f"the TLS handshake failed ({NO_TLS})" in message, message
        readable(message)
    finally:
        await wrong.close()


@ensure
async def test_http_to_a_tls_etcd_says_tls_there(tls_etcd: EtcdCluster, pki: TLSFiles,
                                                 loop: str) -> None:
    """etcd's TLS port hangs up on the cleartext HTTP/2 preface: the error asks
    whether TLS is there; the same member over https:// answers."""
    wrong = make_client(loop, url=tls_etcd.url.replace("https://", "http://"),
                        transport="grpc", timeout=5.0)
    right = make_client(loop, url=tls_etcd.url, transport="grpc", ca_file=pki.ca_cert,
                        cert_file=pki.client_cert, key_file=pki.client_key)
    try:
        with pytest.raises(e.ConnectFailed) as refused:
            await wrong.put(b"grpc-tls/never", b"v")
        message = str(refused.value)
        assert f"no HTTP/2 answer ({TLS_THERE})" in message, message
        readable(message)
        await right.put(b"grpc-tls/k", b"v")
        assert (await right.get(b"grpc-tls/never")).count == 0, "the refused write was unsent"
    finally:
        await wrong.close()
        await right.close()


@ensure
async def test_a_tls_etcd_refusing_us_is_no_tls_mismatch(tls_etcd: EtcdCluster,
                                                         pki: TLSFiles, loop: str) -> None:
    """TLS spoken on both ends, the certificate refused (we do not trust its CA, it
    wants our certificate): ConnectFailed, without a hint that TLS is missing."""
    untrusting = make_client(loop, url=tls_etcd.url, transport="grpc", timeout=5.0,
                             cert_file=pki.client_cert, key_file=pki.client_key)
    no_cert = make_client(loop, url=tls_etcd.url, transport="grpc", timeout=5.0,
                          ca_file=pki.ca_cert)
    try:
        for client in (untrusting, no_cert):
            with pytest.raises(e.ConnectFailed) as refused:
                await client.get(b"grpc-tls/k")
            message = str(refused.value)
            assert "TLS there" not in message and "no TLS" not in message, message
            assert "certificate" in message, message
    finally:
        await untrusting.close()
        await no_cert.close()
