"""The layering the architecture promises, checked: pure packages import no Twisted,
proxies reach their connections only through the stream contract."""

from __future__ import annotations

import ast
import pathlib
import pkgutil
import subprocess
import sys

import pytest

import zfw

ROOT = pathlib.Path(zfw.__file__).parent
#: Protocol cores, the rule compiler and its backends, zones and the model: no I/O framework.
PURE = ("zfw.http", "zfw.ftp", "zfw.pop3", "zfw.tls", "zfw.rules")
#: The command-line side of a package (it loads policies, which name proxies).
NOT_PURE = ("zfw.rules.cli",)
PURE_MODULES = (
    "zfw.model",
    "zfw.zones",
    "zfw.addr",
    "zfw.summary",
    "zfw.policytable",
    "zfw.options",
)


def _modules(package: str) -> list[str]:
    path = ROOT / package.split(".", 1)[1]
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])]


@pytest.mark.parametrize(
    "module", [m for p in PURE for m in _modules(p) if m not in NOT_PURE] + list(PURE_MODULES)
)
def test_a_pure_module_imports_no_twisted(module):
    # (A namespace package's .pth file may import a bare ``zope`` at start-up: only
    # what the module itself pulls in counts.)
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"import {module}\n"
        "bad = sorted(m for m in set(sys.modules) - before\n"
        "             if m.split('.')[0] in ('twisted', 'zope'))\n"
        "print(' '.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulls in {out.stdout.strip()}"


def _attributes(path: pathlib.Path, name: str) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == name]


@pytest.mark.parametrize("path", sorted((ROOT / "proxy").rglob("*.py")), ids=lambda p: p.name)
def test_a_proxy_uses_no_transport(path):
    """Proxies talk to connections through zfw.stream.Stream, never a transport."""
    assert _attributes(path, "transport") == []


def _own_names() -> set[str]:
    """Underscored names zfw defines itself (its own attributes and methods)."""
    names = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and path.name != "twisted_compat.py"
            ):
                names.add(node.attr)
    return names


def _twisted_private() -> set[str]:
    """The underscored members of Twisted's TCP classes and epoll reactor that zfw does
    not define itself, plus the instance attributes those set."""
    from twisted.internet import epollreactor, tcp

    classes = [c for c in vars(tcp).values() if isinstance(c, type)]
    classes.append(epollreactor.EPollReactor)
    found = {n for c in classes for n in dir(c) if n.startswith("_") and not n.startswith("__")}
    found |= {"_poller", "_selectables", "_tempDataLen", "_requiresResolution", "_reads"}
    return found - _own_names()


def test_twisted_internals_live_in_one_module():
    """An underscored member of Twisted's is touched only in zfw.twisted_compat."""
    private = _twisted_private()
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path.name == "twisted_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in private:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.attr}")
    assert offenders == []
    assert {"_tempDataLen", "_closeWriteConnection", "_poller"} <= private  # the check checks


def test_pyopenssl_internals_live_in_one_module():
    """An underscored member of pyOpenSSL's is touched only in zfw.tls.openssl_compat."""
    from OpenSSL import SSL

    private = {n for n in dir(SSL) if n.startswith("_") and not n.startswith("__")}
    conn = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    private |= {n for n in dir(conn) if n.startswith("_") and not n.startswith("__")}
    private -= _own_names()
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path.name == "openssl_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.attr] if isinstance(node, ast.Attribute) else []
            if isinstance(node, ast.ImportFrom) and node.module == "OpenSSL.SSL":
                names = [a.name for a in node.names]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                          if n in private]  # fmt: skip
    assert offenders == []
    assert {"_lib", "_ffi", "_ssl", "_into_ssl", "_raise_ssl_error"} <= private
