"""Certificates made at test time for the TLS inspection lab: an origin CA that the
servers' certificates come from, and the servers' certificates, good and bad."""

from __future__ import annotations

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from zfw.tls.certs import CertificateAuthority, create_ca


def _write(
    directory: str,
    name: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    chain: tuple[x509.Certificate, ...] = (),
):
    with open(os.path.join(directory, f"{name}.pem"), "wb") as f:
        for c in (cert, *chain):
            f.write(c.public_bytes(serialization.Encoding.PEM))
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
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                (issuer.key if issuer else key).public_key()
            ),
            False,
        )
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


# --- hostile and broken chains (issue #41) -------------------------------------------

#: A subjectAltName whose one IP address has 5 bytes (198.51.100.2 and a 1).
MALFORMED_IP_SAN = bytes.fromhex("30078705c633640201")
#: Stands in for a second subjectAltName while building (same encoded length).
_STAND_IN = x509.ObjectIdentifier("2.5.29.99")


def certificate(
    names: list[str],
    issuer: CertificateAuthority | None,
    *,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    days: tuple[int, int] = (-1, 30),
    ca: bool = False,
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    san: bool = True,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
    """A certificate for ``names`` (the first is also its CN) and its key; ``issuer``
    None: self-signed; ``ca``: a CA certificate."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
        builder = builder.add_extension(aki, False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, True)
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False
        )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(issuer.key if issuer else key, hashes.SHA256()), key


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def two_sans(names: list[str], issuer: CertificateAuthority):
    """A certificate with two subjectAltName extensions (cryptography's builder refuses
    to make one: a stand-in extension is renamed in the signed bytes)."""
    second = x509.UnrecognizedExtension(
        _STAND_IN, x509.SubjectAlternativeName([x509.DNSName("evil.example.net")]).public_bytes()
    )
    cert, key = certificate(names, issuer, extensions=((second, False),))
    tbs = cert.tbs_certificate_bytes.replace(b"\x06\x03\x55\x1d\x63", b"\x06\x03\x55\x1d\x11")
    der = cert.public_bytes(serialization.Encoding.DER)
    rest = der[der.index(cert.tbs_certificate_bytes) + len(cert.tbs_certificate_bytes) :]
    algorithm = rest[: 2 + rest[1]]
    signature = issuer.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    body = tbs + algorithm + _der(0x03, b"\0" + signature)
    return x509.load_der_x509_certificate(_der(0x30, body)), key


def hostile_chains(directory: str) -> dict[str, str]:
    """Servers' certificates that must not verify, signed under the origin CA of
    :func:`make_pki` (made first); their names by file name."""
    origin = CertificateAuthority.load(
        os.path.join(directory, "origin", "ca.pem"), os.path.join(directory, "origin", "ca.key")
    )
    made: dict[str, str] = {}

    def write(name: str, made_cert, *chain: x509.Certificate) -> None:
        _write(directory, name, made_cert[0], made_cert[1], chain)
        made[name] = f"{name}.example.com"

    write("twosans", two_sans(["twosans.example.com"], origin))
    bad_ip = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, MALFORMED_IP_SAN)
    write(
        "badip",
        certificate(["badip.example.com"], origin, san=False, extensions=((bad_ip, False),)),
    )
    encipher = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
    rsa_key = rsa.generate_private_key(65537, 2048)
    write(
        "encipher",
        certificate(["encipher.example.com"], origin, key=rsa_key, extensions=((encipher, True),)),
    )
    client_only = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    write(
        "clientauth",
        certificate(["clientauth.example.com"], origin, extensions=((client_only, False),)),
    )
    old_cert, old_key = certificate(
        ["old intermediate CA"], origin, ca=True, days=(-60, -2), san=False
    )
    old = CertificateAuthority(old_cert, old_key, b"old")
    write("oldchain", certificate(["oldchain.example.com"], old), old_cert)
    return made
