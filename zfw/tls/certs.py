"""Certificates for TLS inspection, without I/O on the reactor: the CAs zfw signs with,
the leaves it shows clients, and their cache.

A leaf mirrors the server's certificate (Zorp's keybridge): the subject's
common name and the subjectAltNames are copied; the issuer is the trusted CA
when the server's certificate verified, the untrusted CA when it did not, so
that the client sees a verification error exactly when it would have without
zfw. Leaves are EC P-256 and share one key per process (a leaf costs one
signature, about 0.2 ms); serials are derived from the CA, the server's
certificate and the validity, so a leaf minted again is the same leaf.
Validity starts a day back (clocks differ) and lasts 90 days, well under the
398 days browsers accept.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import stat
from collections import OrderedDict
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from zfw.tls.names import normal

#: How long a leaf is valid, and how far back it starts.
LEAF_DAYS = 90
BACKDATE = datetime.timedelta(days=1)


class CertificateError(Exception):
    """A CA or certificate file zfw cannot use; the message names the file."""


@attrs.frozen(eq=False)
class CertificateAuthority:
    """A CA certificate and its private key."""

    certificate: x509.Certificate
    key: Any
    #: sha256 of the certificate (DER): part of every leaf's cache key and serial.
    fingerprint: bytes

    @classmethod
    def load(cls, cert_file: str, key_file: str) -> CertificateAuthority:
        """Load a CA; refuses a key file that others than its owner may read."""
        cert = load_certificate(cert_file)
        key = load_key(key_file, "the CA key")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise CertificateError(f"{key_file}: the key does not belong to {cert_file}")
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise CertificateError(f"{cert_file}: not a CA certificate (basicConstraints)")
        return cls(cert, key, cert.fingerprint(hashes.SHA256()))


def load_certificate(path: str) -> x509.Certificate:
    """The first PEM certificate in ``path``."""
    try:
        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())
    except OSError as e:
        raise CertificateError(f"{path}: {e.strerror}") from None
    except ValueError as e:
        raise CertificateError(f"{path}: not a PEM certificate ({e})") from None


def load_key(path: str, what: str = "the key") -> Any:
    """A PEM private key without passphrase, readable by its owner and at most its
    group (``zfw ca create`` makes it 0640 root:zfw, for the service user); refuses a
    key that others may read or its group may change."""
    try:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO):
            raise CertificateError(
                f"{path}: {what} is readable by others (mode {stat.S_IMODE(mode):o}); "
                f"chmod 640 {path} (600 if no group needs it)"
            )
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), password=None)
    except OSError as e:
        raise CertificateError(f"{path}: {e.strerror}") from None
    except (ValueError, TypeError) as e:
        raise CertificateError(f"{path}: not a PEM private key without passphrase ({e})") from None


def _key_usage(signs: bool) -> x509.KeyUsage:
    """Digital signatures, and for a CA certificate and CRL signing too."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs,
        crl_sign=signs,
        encipher_only=False,
        decipher_only=False,
    )


def _write_key(path: str, key: Any, exclusive: bool) -> None:
    """``key`` as PEM (PKCS#8, no passphrase) in a file of mode 0600; ``exclusive``:
    refuse to replace an existing file."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def ca_certificate(key: ec.EllipticCurvePrivateKey, name: str, days: int) -> x509.Certificate:
    """A self-signed CA certificate for ``key``, valid for ``days`` from a little before now."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zfw TLS inspection"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(signs=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def create_ca(
    directory: str, name: str, days: int = 3650, group: int | None = None
) -> tuple[str, str]:
    """Make a CA key and certificate in ``directory``; their paths.

    The key is 0600 and a new directory 0700; with ``group`` (a gid: the service
    user's), the key is 0640 and the directory 0750, both of that group, so that
    zfw running as that user can read them. Refuses to overwrite: a CA that
    clients trust is replaced on purpose only.
    """
    made = not os.path.isdir(directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cert_path = os.path.join(directory, "ca.pem")
    key_path = os.path.join(directory, "ca.key")
    for path in (cert_path, key_path):
        if os.path.exists(path):
            raise CertificateError(f"{path}: exists already; remove it to make a new CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca_certificate(key, name, days)
    _write_key(key_path, key, exclusive=True)
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(cert_path, 0o644)
    if group is not None:
        os.chown(key_path, -1, group)
        os.chmod(key_path, 0o640)
        if made:
            os.chown(directory, -1, group)
            os.chmod(directory, 0o750)
    return cert_path, key_path


def _names(cert: x509.Certificate) -> tuple[str, list[x509.GeneralName]]:
    """The common name and the subjectAltNames a leaf copies from ``cert``; none of
    them from a certificate that cannot be parsed (two subjectAltName extensions, an
    address of 5 bytes, ...): the leaf then names what the client asked for."""
    try:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else ""
        x509.NameAttribute(NameOID.COMMON_NAME, cn[:64] or "zfw")
    except Exception:  # a hostile certificate: whatever its parser raises
        cn = ""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alt = [n for n in san if isinstance(n, x509.DNSName | x509.IPAddress)]
        x509.SubjectAlternativeName(alt)
    except Exception:  # ExtensionNotFound, DuplicateExtension, ValueError, ...
        alt = []
    return cn, alt


class LeafMinter:
    """Mints the leaves zfw shows clients, with a bounded cache (least recently used
    first out) and, optionally, a cache directory that survives restarts."""

    def __init__(self, max_cached: int = 4096, cache_directory: str | None = None):
        self.max_cached = max_cached
        self.cache_directory = cache_directory
        #: The one leaf key of this process (kept in the cache directory, if there is
        #: one, so that cached leaves serve after a restart).
        self.key = self._leaf_key()
        self._cache: OrderedDict[bytes, x509.Certificate] = OrderedDict()
        self.minted = 0

    def _leaf_key(self) -> ec.EllipticCurvePrivateKey:
        if self.cache_directory is None:
            return ec.generate_private_key(ec.SECP256R1())
        path = os.path.join(self.cache_directory, "leaf.key")
        if os.path.exists(path):
            key = load_key(path)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                return key
        os.makedirs(self.cache_directory, mode=0o700, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        # Whole or not at all, and the first of several workers starting at once wins:
        # the others take its key, so that every worker's leaves serve every other.
        tmp = f"{path}.{os.getpid()}"
        _write_key(tmp, key, exclusive=False)
        try:
            os.link(tmp, path)
        except FileExistsError:
            found = load_key(path)
            if isinstance(found, ec.EllipticCurvePrivateKey):
                key = found
            else:
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return key

    def mirror(
        self, ca: CertificateAuthority, server: x509.Certificate | None, name: str | None
    ) -> x509.Certificate:
        """A leaf signed by ``ca`` mirroring ``server`` (None: naming ``name`` only, for a
        server that showed no certificate zfw could read)."""
        name = normal(name) if name else name
        if server is not None:
            source = server.fingerprint(hashes.SHA256())
            cn, alt = _names(server)
        else:
            source = (name or "").encode()
            cn, alt = name or "", []
        if not alt and name:
            alt = [x509.DNSName(name)]
        return self._leaf(ca, source, cn or (name or "zfw"), alt)

    def named(self, ca: CertificateAuthority, names: list[str]) -> x509.Certificate:
        """A leaf signed by ``ca`` for ``names`` (no server to mirror)."""
        alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        return self._leaf(ca, "\0".join(names).encode(), names[0], alt)

    def _leaf(
        self, ca: CertificateAuthority, source: bytes, cn: str, alt: list[x509.GeneralName]
    ) -> x509.Certificate:
        day = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        not_before = day - BACKDATE
        key = hashlib.sha256(ca.fingerprint + source + not_before.isoformat().encode()).digest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        cert = self._from_disk(key)
        if cert is None:
            cert = self._sign(ca, key, cn, alt, not_before)
            self._to_disk(key, cert)
        self._cache[key] = cert
        if len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return cert

    def _sign(
        self,
        ca: CertificateAuthority,
        key: bytes,
        cn: str,
        alt: list[x509.GeneralName],
        not_before: datetime.datetime,
    ) -> x509.Certificate:
        self.minted += 1
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn[:64] or "zfw")]))
            .issuer_name(ca.certificate.subject)
            .public_key(self.key.public_key())
            .serial_number(int.from_bytes(key[:19], "big") >> 1 or 1)
            .not_valid_before(not_before)
            .not_valid_after(not_before + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(signs=False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.certificate.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return builder.sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]

    def _from_disk(self, key: bytes) -> x509.Certificate | None:
        if self.cache_directory is None:
            return None
        path = os.path.join(self.cache_directory, key.hex() + ".pem")
        try:
            with open(path, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
        except (OSError, ValueError):
            return None
        # A leaf made with another key (the cache directory's key file was replaced).
        if cert.public_key().public_numbers() != self.key.public_key().public_numbers():  # type: ignore[union-attr]
            return None
        return cert

    def _to_disk(self, key: bytes, cert: x509.Certificate) -> None:
        if self.cache_directory is None:
            return
        path = os.path.join(self.cache_directory, key.hex() + ".pem")
        tmp = f"{path}.{os.getpid()}"
        try:  # whole or not at all: another worker may read it at once
            with open(tmp, "wb") as f:
                f.write(cert.public_bytes(serialization.Encoding.PEM))
            os.replace(tmp, path)
        except OSError:
            pass  # a cache, not a store
