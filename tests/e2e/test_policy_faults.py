"""A POLICY function that raises at run time refuses the request it was deciding (as a
DENY), says where in one log line, and leaves every other session alone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

from tests.e2e.helpers import big_file, zfw_in_front
from zfw.lab import SERVER4, Lab
from zfw.lab.servers import start_nginx
from zfw.lab.tools import pattern_block

POLICY = os.path.join(os.path.dirname(__file__), "policies", "http_faulty.py")
SIZE = 20 * 2**20


def test_a_raising_callback_refuses_one_request_only(lab: Lab, tmp_path):
    d = tmp_path
    (d / "www").mkdir()
    (d / "www" / "small.txt").write_text("still served\n")
    digest = big_file(d / "www" / "big.bin", SIZE, pattern_block())
    nginx = start_nginx(lab, str(d), f"        listen 80;\n        root {d}/www;")
    time.sleep(0.5)
    with zfw_in_front(lab, nginx, POLICY, "http", "core.*:3,http.*:3") as z:
        # A download in flight (about 4 s at this rate) while the policy fails for others.
        slow = subprocess.Popen(
            lab.cmd(
                "client",
                ["curl", "-sS", "--limit-rate", "5M", f"http://{SERVER4}/big.bin"],
            ),
            stdout=subprocess.PIPE,
        )
        time.sleep(0.5)
        for _ in range(3):
            boom = lab.run(
                "client",
                ["curl", "-sS", "-w", "\n%{http_code}", f"http://{SERVER4}/boom"],
                check=False,
            ).stdout
            assert boom.endswith("\n403") and "Forbidden by policy." in boom
        ok = lab.run("client", ["curl", "-sS", f"http://{SERVER4}/small.txt"]).stdout
        assert ok == "still served\n"
        body, _ = slow.communicate(timeout=60)
        assert slow.returncode == 0 and hashlib.sha256(body).hexdigest() == digest
        lines = z.grep("raised RuntimeError")
        # One line for the three, naming the function's line and the one that raised;
        # no traceback.
        assert lines == [lines[0]]
        assert "core.policy(1): (http/http:" in lines[0]
        assert (
            f"{POLICY}:14: request['GET']: POLICY function FaultyHttp.check_get "
            f"raised RuntimeError: the policy author's bug (at {POLICY}:16); refused"
        ) in lines[0]
        # A function answering a bool (HEAD): that request refused as a DENY, one line.
        head = ["curl", "-sS", "-I", "-w", "%{http_code}", f"http://{SERVER4}/small.txt"]
        assert lab.run("client", head, check=False).stdout.endswith("403")
        line = z.wait_for("returned True") or ""
        said = "request['HEAD']: POLICY function FaultyHttp.check_head returned True"
        assert f"{POLICY}:19: {said}, not an HTTP_REQ_* action; refused" in line
        ok = lab.run("client", ["curl", "-sS", f"http://{SERVER4}/small.txt"]).stdout
        assert ok == "still served\n"
        assert not z.grep("Traceback")
