"""EncryptionProxy in memory: its decisions, and the bypass path through the tunnel's relay."""

from __future__ import annotations

import pytest

from tests.proxy.harness import ProxyHarness
from tests.proxy.test_tls import _record, _server_hello, _tls13_hello
from zfw.proxy.encryption import EncryptionProxy
from zfw.proxy.http import HttpProxy
from zfw.tls.certs import create_ca
from zfw.tls.encryption import DynamicCertificate, TwoSidedEncryption
from zfw.tls.retry import HRR_RANDOM

DEST = ("198.51.100.2", 443)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return create_ca(str(tmp_path_factory.mktemp("pki") / "ca"), "zfw test CA")


def _bypassing(ca):
    enc = TwoSidedEncryption(
        DynamicCertificate(trusted_ca=ca), bypass=["a.example"], reject=["denied.example"]
    )
    return ProxyHarness(EncryptionProxy, DEST, encryption=enc, inner_proxy=HttpProxy)


def test_a_bypassed_name_is_relayed_untouched(ca):
    h = _bypassing(ca)
    first = _tls13_hello(b"a.example")
    h.send(first)
    h.connect()
    assert h.to_server() == first
    h.reply(_server_hello(b"\x11" * 32))
    h.send(_record(23, b"x"))
    assert h.to_server() == _record(23, b"x") and not h.closed
    assert "tunnel: a.example is on the bypass list" in h.log()


def test_a_denied_name_in_a_second_hello_after_a_retry_request_is_refused(ca):
    # As on the TLS tunnel (tests/proxy/test_tls.py): the bypass path relays through it.
    h = _bypassing(ca)
    first = _tls13_hello(b"a.example")
    h.send(first)
    h.connect()
    assert h.to_server() == first
    h.reply(_server_hello(HRR_RANDOM))
    h.send(_record(20, b"\x01") + _tls13_hello(b"denied.example"))
    assert h.to_server() == b""  # the second hello never reached the server
    assert "the second ClientHello names 'denied.example', the first 'a.example'" in h.log()
    assert "tls.violation(1)" in h.log() and h.closed


def test_a_second_hello_naming_the_same_server_passes_on_the_bypass_path(ca):
    h = _bypassing(ca)
    h.send(_tls13_hello(b"a.example"))
    h.connect()
    h.to_server()
    h.reply(_server_hello(HRR_RANDOM))
    second = _record(20, b"\x01") + _tls13_hello(b"a.example")
    h.send(second)
    assert h.to_server() == second and not h.closed
