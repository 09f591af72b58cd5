"""A throw-away PKI for https etcd servers and clients in tests."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._processes import _HOST

__all__ = ["TLSFiles", "make_test_pki"]


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for an https etcd (see :func:`make_test_pki`)."""

    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str = ""
    client_key: str = ""
    client_cert_auth: bool = False


def make_test_pki(directory: str) -> TLSFiles:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(filename: str, data: bytes) -> str:
        path = os.path.join(directory, filename)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("etcdwamp test CA"))
          .issuer_name(name("etcdwamp test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, *usage: x509.ObjectIdentifier) -> tuple[bytes, bytes]:
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address(_HOST)), x509.DNSName("localhost")]),
                    critical=False)
                .add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
                .sign(ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    # etcd's gateway dials its own gRPC server with the server certificate, so
    # under --client-cert-auth that certificate must be valid for clients too.
    server_cert, server_key = leaf("etcd", ExtendedKeyUsageOID.SERVER_AUTH,
                                   ExtendedKeyUsageOID.CLIENT_AUTH)
    client_cert, client_key = leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH)
    return TLSFiles(
        ca_cert=write("ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        server_cert=write("server.pem", server_cert),
        server_key=write("server-key.pem", server_key),
        client_cert=write("client.pem", client_cert),
        client_key=write("client-key.pem", client_key),
    )
