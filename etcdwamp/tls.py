"""TLS for https endpoints: a CA to trust and an optional client certificate."""

from __future__ import annotations

from typing import Any

from twisted.internet import ssl
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

__all__ = ["grpc_tls", "tls_policy"]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@implementer(IPolicyForHTTPS)
class _ClientCertPolicy:
    """Verify servers against ``trust`` and present ``client_cert``."""

    def __init__(self, trust: Any, client_cert: Any) -> None:
        self._trust = trust
        self._client_cert = client_cert

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return ssl.optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._trust,
                                       clientCertificate=self._client_cert)


def tls_policy(ca_file: str | None, cert_file: str | None, key_file: str | None) -> Any:
    """The Agent policy for etcd's https endpoints.

    Server certificates are always verified (against ``ca_file``, else the
    system's trust store), including the host name or IP address.
    """
    trust: Any = None
    if ca_file is not None:
        trust = ssl.Certificate.loadPEM(_read(ca_file))
    if cert_file is None or key_file is None:
        if trust is None:
            return BrowserLikePolicyForHTTPS()  # type: ignore[no-untyped-call]
        return BrowserLikePolicyForHTTPS(trustRoot=trust)  # type: ignore[no-untyped-call]
    pem = _read(cert_file) + b"\n" + _read(key_file)
    client = ssl.PrivateCertificate.loadPEM(pem)  # type: ignore[no-untyped-call]
    if trust is None:
        trust = ssl.platformTrust()  # type: ignore[no-untyped-call]
    return _ClientCertPolicy(trust, client)


def grpc_tls(ca_file: str | None, cert_file: str | None,
             key_file: str | None) -> Any:
    """For the gRPC transport: ``hostname -> connection creator``, verifying as
    :func:`tls_policy` does and offering ALPN ``h2`` (etcd's gRPC needs it on TLS)."""
    trust: Any = None
    if ca_file is not None:
        trust = ssl.Certificate.loadPEM(_read(ca_file))
    client: Any = None
    if cert_file is not None and key_file is not None:
        pem = _read(cert_file) + b"\n" + _read(key_file)
        client = ssl.PrivateCertificate.loadPEM(pem)  # type: ignore[no-untyped-call]

    def creator(hostname: str) -> Any:
        kwargs: dict[str, Any] = {"acceptableProtocols": [b"h2"]}
        if trust is not None:
            kwargs["trustRoot"] = trust
        if client is not None:
            kwargs["clientCertificate"] = client
        return ssl.optionsForClientTLS(hostname, **kwargs)

    return creator
