"""Fixtures of the proxy tests."""

from __future__ import annotations

import pytest

from zfw.tls.certs import create_ca


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The lab's origin CA and servers' certificates (tests/e2e/pki.py), and zfw's two
    CAs (``zfw_ca``, ``zfw_untrusted``)."""
    from tests.e2e.pki import make_pki

    d = tmp_path_factory.mktemp("origin")
    paths = make_pki(str(d))
    paths["zfw_ca"] = create_ca(str(d / "zfw"), "zfw test CA")
    paths["zfw_untrusted"] = create_ca(str(d / "untrusted"), "zfw untrusted CA")
    return paths
