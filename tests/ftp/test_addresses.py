"""PORT/227 and EPRT/229 addresses, parsed strictly and produced exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zfw.ftp.addresses import (
    format_eprt,
    format_epsv_reply,
    format_pasv_reply,
    format_port,
    parse_eprt,
    parse_epsv_reply,
    parse_pasv_reply,
    parse_port,
)
from zfw.ftp.core import FtpViolation


def test_port():
    assert parse_port("192,0,2,10,4,1") == ("192.0.2.10", 1025)
    assert format_port("192.0.2.10", 1025) == "192,0,2,10,4,1"


@pytest.mark.parametrize(
    "arg",
    [
        None,
        "",
        "192,0,2,10,4",
        "192,0,2,10,4,1,7",
        "192,0,2,10,4,256",
        "192,0,2,300,4,1",
        "192,0,2,10,04,1",
        "192, 0,2,10,4,1",
        "192,0,2,10,4,1 ",
        "+192,0,2,10,4,1",
        "192.0.2.10,4,1",
        "192,0,2,10,0,0",
        "0x10,0,2,10,4,1",
    ],
)
def test_malformed_port(arg):
    with pytest.raises(FtpViolation):
        parse_port(arg)


@pytest.mark.parametrize(
    "text, address",
    [
        ("Entering Passive Mode (198,51,100,2,156,64).", ("198.51.100.2", 40000)),
        ("Entering Passive Mode 198,51,100,2,156,64", ("198.51.100.2", 40000)),
        ("=198,51,100,2,156,64", ("198.51.100.2", 40000)),
    ],
)
def test_pasv_reply(text, address):
    assert parse_pasv_reply(text) == address


@pytest.mark.parametrize(
    "text",
    [
        "Entering Passive Mode.",
        "Entering Passive Mode (198,51,100,2,156).",
        "Entering Passive Mode (198,51,100,2,156,64,1).",
        "(198,51,100,2,156,64) or (198,51,100,3,156,64)",
        "Entering Passive Mode (198,51,100,2,156,640).",
        "Entering Passive Mode (198,51,100,2,0,0).",
    ],
)
def test_malformed_pasv_reply(text):
    with pytest.raises(FtpViolation):
        parse_pasv_reply(text)


def test_our_pasv_reply_parses_back():
    assert parse_pasv_reply(format_pasv_reply("198.51.100.2", 40001)) == ("198.51.100.2", 40001)


@pytest.mark.parametrize(
    "arg, address",
    [
        ("|1|132.235.1.2|6275|", ("132.235.1.2", 6275)),
        ("|2|1080::8:800:200C:417A|5282|", ("1080::8:800:200c:417a", 5282)),
        ("!1!192.0.2.2!1025!", ("192.0.2.2", 1025)),
    ],
)
def test_eprt(arg, address):
    assert parse_eprt(arg) == address


@pytest.mark.parametrize(
    "arg",
    [
        None,
        "",
        "|1|132.235.1.2|6275",
        "|1|132.235.1.2|6275||",
        "|3|132.235.1.2|6275|",
        "|1|2001:db8::1|6275|",
        "|2|132.235.1.2|6275|",
        "|1|132.235.01.2|6275|",
        "|1|132.235.1.2|0|",
        "|1|132.235.1.2|65536|",
        "|1|132.235.1.2|06275|",
        "|1|host.example|6275|",
        "1|1|132.235.1.2|6275|",
        " |1|132.235.1.2|6275|",
    ],
)
def test_malformed_eprt(arg):
    with pytest.raises(FtpViolation):
        parse_eprt(arg)


def test_epsv_reply():
    assert parse_epsv_reply("Entering Extended Passive Mode (|||6446|)") == 6446
    assert parse_epsv_reply(format_epsv_reply(40000)) == 40000
    assert parse_epsv_reply("ok (!!!1025!)") == 1025


@pytest.mark.parametrize(
    "text",
    [
        "Entering Extended Passive Mode",
        "Entering Extended Passive Mode (||6446|)",
        "Entering Extended Passive Mode (|||6446)",
        "Entering Extended Passive Mode (|1|198.51.100.2|6446|)",
        "Entering Extended Passive Mode (|||0|)",
        "Entering Extended Passive Mode (|||70000|)",
        "Entering Extended Passive Mode (|!|6446|)",
    ],
)
def test_malformed_epsv_reply(text):
    with pytest.raises(FtpViolation):
        parse_epsv_reply(text)


@given(st.ip_addresses(), st.integers(1, 65535))
def test_eprt_round_trip(ip, port):
    assert parse_eprt(format_eprt(str(ip), port)) == (str(ip), port)


@given(st.ip_addresses(v=4), st.integers(1, 65535))
def test_port_round_trip(ip, port):
    assert parse_port(format_port(str(ip), port)) == (str(ip), port)
