"""zfw.tls.contexts: the roots servers are verified against."""

from __future__ import annotations

import datetime
import os

from cryptography.hazmat.primitives import serialization

from tests.e2e.pki import certificate
from zfw.tls.certs import CertificateAuthority
from zfw.tls.contexts import load_roots
from zfw.tls.verify import verify_server


def _ca(name: str) -> CertificateAuthority:
    cert, key = certificate([name], None, ca=True, san=False)
    return CertificateAuthority(cert, key, name.encode())


def _pem(*cas: CertificateAuthority) -> bytes:
    return b"".join(ca.certificate.public_bytes(serialization.Encoding.PEM) for ca in cas)


def test_a_ca_file_gives_all_its_certificates(tmp_path):
    one, two = _ca("One CA"), _ca("Two CA")
    (tmp_path / "cas.pem").write_bytes(_pem(one, two))
    roots = load_roots(str(tmp_path / "cas.pem"), None)
    assert [r.subject for r in roots] == [one.certificate.subject, two.certificate.subject]


def test_a_c_rehash_directory_counts_each_ca_once_and_passes_over_other_files(tmp_path):
    one, two = _ca("One CA"), _ca("Two CA")
    (tmp_path / "one.pem").write_bytes(_pem(one))
    (tmp_path / "two.crt").write_bytes(_pem(two))
    os.symlink("one.pem", tmp_path / "1a2b3c4d.0")  # c_rehash's links
    os.symlink("two.crt", tmp_path / "5e6f7a8b.0")
    (tmp_path / "README").write_text("not a certificate\n")
    roots = load_roots(None, str(tmp_path))
    assert sorted(r.subject.rfc4514_string() for r in roots) == ["CN=One CA", "CN=Two CA"]
    leaf, _ = certificate(["www.example.com"], two)
    now = datetime.datetime.now(datetime.UTC)
    assert verify_server(leaf, [], roots, "www.example.com", now).ok


def test_without_files_the_systems_store_is_read():
    assert isinstance(load_roots(None, None), list)  # (empty where the system has none)
