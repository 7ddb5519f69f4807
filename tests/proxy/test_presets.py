"""Presets cannot fail open: a subclass whose config() forgets super() keeps them."""

from __future__ import annotations

import pytest

from tests.proxy.harness import ProxyHarness
from zfw.ftp.core import Command
from zfw.ftp.policy import WRITE_COMMANDS
from zfw.policy import (
    FTP_REQ_ACCEPT,
    FTP_REQ_REJECT,
    FtpProxy,
    FtpProxyAnonRO,
    FtpProxyAnonRW,
    FtpProxyRO,
    HttpProxy,
    HttpProxyNonTransparent,
    Pop3Proxy,
)

SERVER = ("198.51.100.2", 21)


def careless(base):
    """A policy's subclass whose config() sets something and never calls super()."""

    class Careless(base):
        def config(self):
            self.timeout = 42

    return Careless


def configured(cls):
    """A proxy of ``cls`` as the engine configures it (presets, then config())."""
    return ProxyHarness(cls, SERVER).proxy


@pytest.mark.parametrize("base", [FtpProxyRO, FtpProxyAnonRO])
def test_read_only_stays_read_only(base):
    proxy = configured(careless(base))
    for verb in WRITE_COMMANDS:
        assert proxy.request[verb][:2] == (FTP_REQ_REJECT, 550), verb


@pytest.mark.parametrize("base", [FtpProxyAnonRO, FtpProxyAnonRW])
def test_anonymous_only_stays_anonymous_only(base):
    proxy = configured(careless(base))
    assert proxy.timeout == 42  # config() ran
    _policy, check = proxy.request["USER"]
    assert check(Command("USER", "root"))[0] == FTP_REQ_REJECT
    assert check(Command("USER", "anonymous")) == FTP_REQ_ACCEPT


def test_the_base_tables_hold_too():
    ftp = configured(careless(FtpProxy))
    assert ftp.request["SITE"][0] == FTP_REQ_REJECT and ftp.request["AUTH"][0] == FTP_REQ_REJECT
    http = configured(careless(HttpProxy))
    assert http.request["*"][1] == 405 and "CONNECT" not in http.request
    assert "CONNECT" in configured(careless(HttpProxyNonTransparent)).request
    pop3 = configured(careless(Pop3Proxy))
    assert pop3.request["STLS"][0] == FTP_REQ_REJECT


def test_config_may_still_loosen_a_preset_on_purpose():
    class Uploads(FtpProxyRO):
        def config(self):
            self.request["STOR"] = 1  # FTP_REQ_ACCEPT

    assert configured(Uploads).request["STOR"] == 1


def test_a_read_only_session_refuses_stor_on_the_wire():
    h = ProxyHarness(careless(FtpProxyRO), SERVER)
    server = h.connect()
    h.reply(b"220 ready\r\n")
    assert h.to_client() == b"220 ready\r\n"
    h.send(b"STOR x\r\n")
    assert h.to_client().startswith(b"550 ")
    assert server.value() == b""  # never reached the server


def _proxy_classes():
    import zfw.policy
    from zfw.proxy.base import Proxy

    found = (getattr(zfw.policy, n) for n in zfw.policy.__all__)
    return [c for c in found if isinstance(c, type) and issubclass(c, Proxy)]


@pytest.mark.parametrize("cls", _proxy_classes(), ids=lambda c: c.__name__)
def test_every_preset_table_has_its_declared_shape(cls):
    from zfw.model import Service
    from zfw.policytable import check_table
    from zfw.proxycheck import dry_session

    proxy = cls(dry_session(Service("s", cls)))
    proxy.apply_presets()
    for spec in cls.table_specs:
        check_table(spec, getattr(proxy, spec.name))


def test_the_proxies_with_tables_declare_them():
    names = {c.__name__: {s.name for s in c.table_specs} for c in _proxy_classes()}
    tables = {"request", "response", "request_header", "response_header"}
    assert names["HttpProxy"] == names["HttpProxyNonTransparent"] == tables
    assert names["FtpProxyAnonRO"] == {"request", "response"}
    assert names["Pop3Proxy"] == {"request"} and names["PlugProxy"] == set()
