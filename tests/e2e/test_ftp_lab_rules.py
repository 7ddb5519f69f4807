"""FtpProxy under the lab's minimal hand-written rule sets (not the compiled ones).

Both DIVERT variants must reach the foreign-address data listeners: the
``! --syn`` one through its trailing ``-m socket`` rule for SYNs, the
textbook one through its first rule.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.e2e.helpers import big_file, start_ftp_servers, stop_all
from zfw.lab import CLIENT4, SERVER4, Lab
from zfw.lab.tools import pattern_block

POLICY = os.path.join(os.path.dirname(__file__), "policies", "ftp.py")


@pytest.mark.parametrize("divert", ["nosyn", "textbook"])
def test_passive_and_active_downloads(lab: Lab, tmp_path, divert):
    root = tmp_path / "root"
    root.mkdir()
    digest = big_file(root / "ten.bin", 10 * 2**20, pattern_block())
    servers = start_ftp_servers(lab, root, [21])
    lab.tproxy({21: 50021}, divert=divert)
    z = lab.start_zfw(POLICY, "ftp", "--log-spec", "ftp.*:3")
    try:
        for mode in ([], ["--ftp-port", "-"]):
            out = tmp_path / "out.bin"
            proc = lab.run(
                "client",
                [
                    "curl",
                    "-sS",
                    "--max-time",
                    "60",
                    *mode,
                    "-o",
                    str(out),
                    f"ftp://{SERVER4}/ten.bin",
                ],
                check=False,
                timeout=90,
            )
            assert proc.returncode == 0, proc.stderr
            assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
        log = (tmp_path / "ftp21.log").read_text()
        assert log.count(f"data connection from {CLIENT4}:") == 2
    finally:
        z.stop()
        stop_all(servers)
        lab.tproxy({}, divert="none")
