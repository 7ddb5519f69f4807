"""Every option is declared, and the docs' option tables are generated from the
declarations."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from zfw import optiondocs, policy
from zfw.addr import SockAddrInet
from zfw.options import declared
from zfw.proxy.base import Proxy

DOCS = Path(__file__).parent.parent / "docs"


def _policy_classes():
    return [getattr(policy, n) for n in policy.__all__ if isinstance(getattr(policy, n), type)]


PROXIES = [c for c in _policy_classes() if issubclass(c, Proxy)]
#: SockAddrInet is an address, checked by its own validators (zfw.addr).
OTHERS = [c for c in _policy_classes() if not issubclass(c, Proxy) and c is not SockAddrInet]


def _class_vars(cls):
    names = set()
    for c in cls.__mro__:
        for name, hint in vars(c).get("__annotations__", {}).items():
            if "ClassVar" in str(hint):
                names.add(name)
    return names


@pytest.mark.parametrize("cls", PROXIES, ids=lambda c: c.__name__)
def test_every_public_attribute_of_a_proxy_class_is_a_declared_option(cls):
    exempt = _class_vars(cls)
    options = declared(cls)
    for name in dir(cls):
        if name.startswith("_") or name in exempt:
            continue
        value = inspect.getattr_static(cls, name)
        if isinstance(value, staticmethod | classmethod | property) or inspect.isfunction(value):
            continue
        assert name in options, f"{cls.__name__}.{name} is not declared (zfw.options.option)"


@pytest.mark.parametrize("cls", OTHERS, ids=lambda c: c.__name__)
def test_every_argument_of_a_policy_class_is_declared(cls):
    params = [p for p in inspect.signature(cls).parameters if p not in ("self",)]
    assert params, cls
    assert sorted(declared(cls)) == sorted(params)


def test_the_classes_are_the_ones_meant():
    names = {c.__name__ for c in OTHERS}
    assert {
        "TwoSidedEncryption",
        "ClientOnlyEncryption",
        "ServerOnlyEncryption",
        "StaticCertificate",
        "DynamicCertificate",
        "SNIBasedCertificate",
        "ServerCertificateVerifier",
        "TlsOptions",
        "TransparentRouter",
        "DirectedRouter",
        "InbandRouter",
    } <= names
    assert {"PlugProxy", "HttpProxy", "FtpProxy", "Pop3Proxy", "TlsTunnelProxy"} <= {
        c.__name__ for c in PROXIES
    }


@pytest.mark.parametrize("name", ["policy.md", "tls.md"])
def test_the_docs_tables_are_generated_from_the_declarations(name):
    text = (DOCS / name).read_text()
    assert "<!-- options: " in text
    assert optiondocs.render(text) == text, (
        f"docs/{name} is out of date: python -m zfw.optiondocs docs/policy.md docs/tls.md"
    )


def test_a_table_lists_the_declared_options():
    table = optiondocs.table("HttpProxy")
    assert "| `timeout` | a number of seconds | 300 |" in table
    assert "`connect_ports`" not in table
    assert "`connect_ports`" in optiondocs.table("HttpProxy", "inband")
    with pytest.raises(ValueError, match="not a class"):
        optiondocs.table("NoSuchProxy")


def test_the_generator_rewrites_and_checks(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("a\n<!-- options: PlugProxy -->\nstale\n<!-- /options -->\nb\n")
    assert optiondocs.main(["--check", str(doc)]) == 1
    assert optiondocs.main([str(doc)]) == 0
    assert "`max_early_data`" in doc.read_text() and "stale" not in doc.read_text()
    assert optiondocs.main(["--check", str(doc)]) == 0
