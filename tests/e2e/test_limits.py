"""One client must not starve the others: 2,000 slowloris connections from one address
against a service of 1,000 sessions, and a normal request from another address of the
same zone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.e2e.helpers import zfw_in_front
from zfw.lab import CLIENT4, SERVER4, Lab
from zfw.lab.servers import start_nginx

POLICY = os.path.join(os.path.dirname(__file__), "policies", "limits.py")
OTHER = "192.0.2.3"  # another address of the client's zone (lan is 192.0.2.0/25)


def test_slowloris_from_one_address_leaves_the_service_to_the_others(lab: Lab, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "ok.txt").write_text("served\n")
    nginx = start_nginx(lab, str(tmp_path), f"        listen 80;\n        root {tmp_path}/www;")
    lab.run("client", ["ip", "addr", "add", f"{OTHER}/24", "dev", "eth0"])
    time.sleep(0.5)
    slow = None
    try:
        with zfw_in_front(lab, nginx, POLICY, "limits", "core.*:3,http.*:3") as z:
            base = z.rss_kib()
            slow = subprocess.Popen(
                lab.tool("client", "slowloris", SERVER4, "80", "2000", "--source", CLIENT4),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert slow.stdout is not None
            opened = slow.stdout.readline()  # all 2,000 tried: held, or refused at once
            assert opened.startswith("open "), opened
            time.sleep(1.0)  # dribbling now, well inside the 10 s header deadline
            started = time.monotonic()
            proc = lab.run(
                "client",
                [
                    "curl",
                    "-sS",
                    "--max-time",
                    "2",
                    "--interface",
                    OTHER,
                    f"http://{SERVER4}/ok.txt",
                ],
                check=False,
            )
            took = time.monotonic() - started
            assert proc.stdout == "served\n", (proc.stderr, opened)
            assert took < 2.0
            # The slow address holds its share (a tenth) and no more; refusals are logged,
            # rate-limited, and counted.
            lines = z.grep(f"refused {CLIENT4} for service 'web'")
            assert lines and "100 sessions of this address running" in lines[0]
            assert len(lines) <= 2
            grown = z.rss_kib() - base
            assert grown < 64 * 1024, f"zfw grew by {grown} KiB"
            status = subprocess.run(
                [
                    os.path.join(os.path.dirname(sys.executable), "zfw"),
                    "status",
                    "--json",
                    "--socket",
                    lab.control_socket("limits"),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert '"client": ' in status and '"client": 0' not in status
    finally:
        if slow is not None:
            slow.kill()
            slow.wait()
        lab.run("client", ["ip", "addr", "del", f"{OTHER}/24", "dev", "eth0"], check=False)
