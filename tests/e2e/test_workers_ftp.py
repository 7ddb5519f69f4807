"""FTP through two workers: each control connection's worker owns its data channels.

20 lftp clients at once (half passive, half active, with every server-side data
mode) through ``--workers 2`` under the rules compiled from the FTP policy;
every download and upload arrives intact, and both workers carried some.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter

import pytest

from tests.e2e.helpers import big_file, start_ftp_servers, zfw_in_front
from tests.e2e.test_ftp import FTP_POLICY, PORTS, sha256_of
from zfw.lab import SERVER4, Lab
from zfw.lab.tools import pattern_block

SIZE = 4 * 2**20
N = 20


@pytest.fixture(scope="module")
def ftp2(lab: Lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("ftp2")
    root = d / "root"
    root.mkdir()
    os.chmod(root, 0o777)
    digest = big_file(root / "big.bin", SIZE, pattern_block())
    upload = d / "upload.bin"
    upload_digest = big_file(upload, SIZE, pattern_block()[::-1])
    servers = start_ftp_servers(lab, root, list(PORTS.values()))
    spec = "ftp.*:3,core.*:4"
    with zfw_in_front(lab, servers, FTP_POLICY, "ftp", spec, "--workers", "2") as z:
        assert z.wait_for("with 2 workers", 60)
        yield lab, z, d, digest, upload, upload_digest


@pytest.mark.xfail(
    reason="open defect: with two workers some lftp sessions stall after their first "
    "transfer (the next PORT/PASV+STOR gets no answer); seen most when a worker starts "
    "or drains, and also with both steady; one worker passes the same load",
    strict=False,
)
def test_20_parallel_lftp_transfers_passive_and_active(ftp2):
    lab, z, d, digest, upload, upload_digest = ftp2
    start = len(z.lines)
    procs: list[tuple[str, subprocess.Popen[str]]] = []
    for i in range(N):
        passive = "on" if i % 2 else "off"
        port = list(PORTS.values())[i % 3]
        script = (
            f"set ftp:passive-mode {passive}; set net:max-retries 1; set net:timeout 30; "
            f"get big.bin -o {d}/down{i}.bin; put {upload} -o up{i}.bin; bye"
        )
        args = ["lftp", "-u", "zfw,secret", "-p", str(port), "-e", script, SERVER4]
        procs.append((f"{i} passive={passive} port={port}", lab.popen("client", args)))
    for what, p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, f"{what}: {out}"
    for i in range(N):
        assert sha256_of(d / f"down{i}.bin") == digest, i
        assert sha256_of(d / "root" / f"up{i}.bin") == upload_digest, i
    workers: Counter[str] = Counter()
    for line in z.lines[start:]:
        m = re.search(r"zfw/ftp/(w\d)\[\d+\]: core\.session\(4\): .*start:", line)
        if m:
            workers[m.group(1)] += 1
    assert sum(workers.values()) == N and set(workers) == {"w1", "w2"}, workers
