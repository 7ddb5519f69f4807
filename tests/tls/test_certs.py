"""zfw.tls.certs: the CA command's files, leaves that mirror a server, the cache."""

from __future__ import annotations

import datetime
import grp
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from zfw.tls.certs import (
    LEAF_DAYS,
    CertificateAuthority,
    CertificateError,
    LeafMinter,
    create_ca,
)


@pytest.fixture
def ca(tmp_path):
    cert, key = create_ca(str(tmp_path / "ca"), "zfw test CA")
    return CertificateAuthority.load(cert, key)


def server_cert(ca: CertificateAuthority, cn: str, names: list[str]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(ca.key, hashes.SHA256())
    )


def test_create_ca_makes_a_private_key_and_refuses_to_overwrite(tmp_path):
    cert, key = create_ca(str(tmp_path / "ca"), "zfw test CA")
    assert os.stat(key).st_mode & 0o777 == 0o600 and os.stat(cert).st_mode & 0o777 == 0o644
    loaded = CertificateAuthority.load(cert, key)
    bc = loaded.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    with pytest.raises(CertificateError, match="exists already"):
        create_ca(str(tmp_path / "ca"), "again")


@pytest.mark.parametrize("mode", [0o644, 0o660, 0o604])
def test_a_ca_key_others_can_read_is_refused(tmp_path, mode):
    cert, key = create_ca(str(tmp_path / "ca"), "zfw test CA")
    os.chmod(key, mode)
    with pytest.raises(CertificateError, match=rf"readable by others \(mode {mode:o}\); chmod 640"):
        CertificateAuthority.load(cert, key)


def test_a_ca_key_its_group_can_read_is_loaded(tmp_path):
    gid = grp.getgrnam("nogroup").gr_gid
    cert, key = create_ca(str(tmp_path / "ca"), "zfw test CA", group=gid)
    for path, mode in ((key, 0o640), (cert, 0o644), (str(tmp_path / "ca"), 0o750)):
        st = os.stat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (mode, gid if path != cert else st.st_gid)
    assert os.stat(key).st_uid == os.getuid()
    CertificateAuthority.load(cert, key)


def test_a_leaf_mirrors_the_server_and_is_signed_by_the_ca(ca):
    minter = LeafMinter()
    server = server_cert(ca, "www.example.com", ["www.example.com", "example.com"])
    leaf = minter.mirror(ca, server, "www.example.com")
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "www.example.com"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.example.com", "example.com"]
    assert leaf.issuer == ca.certificate.subject
    leaf.verify_directly_issued_by(ca.certificate)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    days = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days
    assert days == LEAF_DAYS < 398
    assert leaf.not_valid_before_utc < datetime.datetime.now(datetime.UTC)  # backdated


def test_leaves_are_cached_deterministic_and_bounded(ca, tmp_path):
    minter = LeafMinter(max_cached=2)
    a = server_cert(ca, "a.example", ["a.example"])
    first = minter.mirror(ca, a, "a.example")
    assert minter.mirror(ca, a, "a.example") is first and minter.minted == 1
    for name in ("b.example", "c.example"):
        minter.named(ca, [name])
    again = minter.mirror(ca, a, "a.example")  # pushed out of the cache: minted again
    assert minter.minted == 4 and again.serial_number == first.serial_number
    assert again.public_key().public_numbers() == first.public_key().public_numbers()


def test_the_cache_directory_serves_after_a_restart(ca, tmp_path):
    d = str(tmp_path / "leaves")
    leaf = LeafMinter(cache_directory=d).named(ca, ["x.example"])
    later = LeafMinter(cache_directory=d)
    assert later.named(ca, ["x.example"]) == leaf and later.minted == 0
    assert os.stat(os.path.join(d, "leaf.key")).st_mode & 0o777 == 0o600
