"""``zfw ca create``: modes, the service group, and the advice for each kind of CA."""

from __future__ import annotations

import grp
import os
import stat

import pytest

from zfw.cli import main
from zfw.tls import cli as ca_cli
from zfw.tls.certs import CertificateAuthority


def _create(capsys, *args: str) -> tuple[str, str]:
    assert main(["ca", "create", *args]) == 0
    out = capsys.readouterr()
    return out.out.strip(), out.err


def test_the_trusted_ca_says_to_install_it(tmp_path, capsys):
    cert, advice = _create(capsys, str(tmp_path / "ca"), "--group", "nogroup")
    assert cert == str(tmp_path / "ca" / "ca.pem")
    assert f"Install {cert} as a trusted root on the clients" in advice
    assert f'DynamicCertificate(trusted_ca=("{cert}", ' in advice
    assert "mode 0640, group nogroup" in advice
    ca = CertificateAuthority.load(cert, str(tmp_path / "ca" / "ca.key"))
    assert "inspection" in ca.certificate.subject.rfc4514_string()


def test_the_untrusted_ca_is_never_to_be_installed(tmp_path, capsys):
    cert, advice = _create(capsys, "--untrusted", str(tmp_path / "bad"), "--group", "")
    assert "trusted root" not in advice and "Install" not in advice
    assert f"Never install {cert} on the clients" in advice
    assert f'untrusted_ca=("{cert}", ' in advice
    key = str(tmp_path / "bad" / "ca.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "bad").st_mode) == 0o700
    ca = CertificateAuthority.load(cert, key)
    assert "UNTRUSTED" in ca.certificate.subject.rfc4514_string()


def test_the_key_is_readable_by_the_service_group_when_it_exists(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ca_cli, "SERVICE_GROUP", "nogroup")
    _create(capsys, str(tmp_path / "ca"))
    gid = grp.getgrnam("nogroup").gr_gid
    key = os.stat(tmp_path / "ca" / "ca.key")
    assert (stat.S_IMODE(key.st_mode), key.st_gid) == (0o640, gid)
    folder = os.stat(tmp_path / "ca")
    assert (stat.S_IMODE(folder.st_mode), folder.st_gid) == (0o750, gid)


def test_without_the_service_group_the_key_stays_private(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ca_cli, "SERVICE_GROUP", "zfw-no-such-group")
    _cert, advice = _create(capsys, str(tmp_path / "ca"))
    assert "0600; no group 'zfw-no-such-group' here" in advice
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "ca.key").st_mode) == 0o600


def test_an_unknown_group_is_one_line(tmp_path, capsys):
    assert main(["ca", "create", str(tmp_path / "ca"), "--group", "zfw-no-such-group"]) == 2
    assert capsys.readouterr().err == "zfw: no group 'zfw-no-such-group'\n"
    assert not (tmp_path / "ca").exists()


@pytest.mark.parametrize("flag", [[], ["--untrusted"]])
def test_an_existing_ca_is_not_replaced(tmp_path, capsys, flag):
    _create(capsys, str(tmp_path / "ca"), *flag)
    assert main(["ca", "create", str(tmp_path / "ca"), *flag]) == 2
    assert "exists already" in capsys.readouterr().err
