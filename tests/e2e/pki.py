"""Certificates made at test time for the TLS inspection lab: an origin CA that the
servers' certificates come from, and the servers' certificates, good and bad."""

from __future__ import annotations

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from zfw.tls.certs import CertificateAuthority, create_ca


def _write(directory: str, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
    with open(os.path.join(directory, f"{name}.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    path = os.path.join(directory, f"{name}.key")
    with open(path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.chmod(path, 0o600)


def server_certificate(
    directory: str,
    name: str,
    names: list[str],
    issuer: CertificateAuthority | None,
    days: tuple[int, int] = (-1, 30),
) -> None:
    """``name.pem``/``name.key`` for ``names``; ``issuer`` None: self-signed;
    ``days``: validity from and to, relative to now."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(issuer.key if issuer else key, hashes.SHA256())
    )
    _write(directory, name, cert, key)


def make_pki(directory: str) -> dict[str, str]:
    """The origin CA and the servers' certificates; paths by role."""
    origin = CertificateAuthority.load(*create_ca(os.path.join(directory, "origin"), "origin CA"))
    good = ["www.example.com", "bank.example.com", "blocked.example.com", "clientcert.example.com"]
    server_certificate(directory, "good", good, origin)
    server_certificate(directory, "selfsigned", ["selfsigned.example.com"], None)
    server_certificate(directory, "expired", ["expired.example.com"], origin, (-30, -1))
    server_certificate(directory, "wrongname", ["somewhere-else.example.com"], origin)
    server_certificate(directory, "dmz", ["dmz.example.com"], origin)
    return {"origin_ca": os.path.join(directory, "origin", "ca.pem"), "dir": directory}
