"""The lab fixture: namespaces made once per run, torn down whatever happens.

Under CI (``CI`` set) a lab that cannot be made fails the tests that need
it; elsewhere (say, not root) they are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from zfw.lab import Lab, LabError

HERE = os.path.dirname(__file__)
PLUG_POLICY = os.path.join(HERE, "policies", "plug.py")

# Intercepted destination port -> zfw listener port, as in policies/plug.py.
PLUG_PORTS = {22: 50022, 7: 50007, 9: 50009, 13: 50013}


@pytest.fixture(scope="session", autouse=True)
def rules_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``zfw rules apply`` keeps the last good ruleset here, not in the host's /var/lib/zfw
    (every zfw the tests start inherits it)."""
    path = str(tmp_path_factory.mktemp("rules-state"))
    before = os.environ.get("ZFW_STATE_DIR")
    os.environ["ZFW_STATE_DIR"] = path
    try:
        yield path
    finally:
        if before is None:
            del os.environ["ZFW_STATE_DIR"]
        else:
            os.environ["ZFW_STATE_DIR"] = before


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    lab = Lab(f"zfwt{os.getpid()}")
    try:
        lab.up()
    except LabError as e:
        if os.environ.get("CI"):
            pytest.fail(f"the lab cannot be made under CI: {e}", pytrace=False)
        pytest.skip(f"lab unavailable: {e}")
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def servers(lab: Lab) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """whoami on 22, echo on 7, sink (slow for 4 s) on 9, echo on 13, in the server."""
    procs = {
        "whoami": lab.popen("server", [sys.executable, "-m", "zfw.lab.tools", "whoami", "22"]),
        "echo": lab.popen("server", [sys.executable, "-m", "zfw.lab.tools", "echo", "7"]),
        "sink": lab.popen(
            "server", [sys.executable, "-m", "zfw.lab.tools", "sink", "9", "--slow-seconds", "4"]
        ),
        "echo13": lab.popen("server", [sys.executable, "-m", "zfw.lab.tools", "echo", "13"]),
    }
    try:
        for name, p in procs.items():
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line.strip() == "ready", f"{name}: {line}"
        yield procs
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


@pytest.fixture
def plug_lab(lab: Lab, servers: dict) -> Lab:
    """The lab with the minimal TPROXY rules for policies/plug.py."""
    lab.tproxy(PLUG_PORTS)
    return lab
