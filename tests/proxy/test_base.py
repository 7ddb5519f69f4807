"""Proxy.configure: options are checked after config(), for every session."""

from __future__ import annotations

import pytest

from zfw.engine.session import policy_location
from zfw.model import Service
from zfw.options import OptionError
from zfw.proxy.ftp import FtpProxy
from zfw.proxy.http import HttpProxy
from zfw.proxycheck import dry_session


class OnlySometimes(HttpProxy):
    def config(self):
        if self.session.client[0] == "192.0.2.1":
            self.timeout = "60"


def test_a_wrong_value_at_run_time_refuses_the_session_blaming_config():
    proxy = OnlySometimes(dry_session(Service("web", OnlySometimes)))
    with pytest.raises(OptionError) as info:
        proxy.configure()
    err = info.value
    assert str(err) == "HttpProxy.timeout must be a number of seconds, not '60'"
    line = OnlySometimes.config.__code__.co_firstlineno
    assert policy_location(err) == err.where == f"{__file__}:{line}"


def test_checks_across_options_run_too():
    class Ports(FtpProxy):
        def config(self):
            self.data_port_min, self.data_port_max = 50000, 40000

    with pytest.raises(OptionError, match="data_port_min"):
        Ports(dry_session(Service("ftp", Ports))).configure()


def test_good_values_pass():
    class Fine(HttpProxy):
        def config(self):
            self.timeout = 0
            self.permit_upgrade = ["websocket"]
            self.max_body_length = 10 * 1024 * 1024
            self.request["PUT"] = 1

    proxy = Fine(dry_session(Service("web", Fine)))
    proxy.configure()
    assert proxy.permit_upgrade == ["websocket"]
