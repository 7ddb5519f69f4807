"""The README's main job, ``contrib/demo``, shows what it promises (its own lab)."""

from __future__ import annotations

import subprocess
import sys

from zfw.lab import Lab


def test_demo_runs_and_every_step_does_what_it_says(lab: Lab) -> None:
    # ``lab`` only for its verdict: under CI a lab that cannot be made fails here too.
    proc = subprocess.run(
        [sys.executable, "-m", "zfw.lab.demo"], capture_output=True, text=True, timeout=300
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in out + proc.stderr
    got = [line.split("client got: ", 1)[1] for line in out.splitlines() if "client got: " in line]
    # The server saw each client's own address (PlugProxy, transparent).
    for line, client in zip(got, ("192.0.2.2", "2001:db8:1::2", "192.0.2.130"), strict=False):
        assert line.startswith(f"you are {client} port "), line
    assert got[3:] == [
        "no answer: dropped",
        "hello from the web server [HTTP 200]",
        "hello from the web server [HTTP 200]",
        "Deleting is not permitted from here. [HTTP 405]",
        "hello from the web server [HTTP 200]",
        "The requested server is not permitted. [HTTP 403]",
        "HTTP/1.1 400 Bad Request",
        "hello from the FTP server",
        "hello from the FTP server",
        "handshake completed",
        "no handshake: connection closed",
    ]
    assert "session end: closed by both sides" in out  # the plug sessions end cleanly
    assert out.rstrip().endswith("== lab torn down")


def test_bridged_demo_runs_and_every_step_does_what_it_says(lab: Lab) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "zfw.lab.demo_bridge"], capture_output=True, text=True, timeout=300
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in out + proc.stderr
    got = [line.split("client got: ", 1)[1] for line in out.splitlines() if "client got: " in line]
    assert got == [
        "hello from the web server [HTTP 200]",
        "hello from the web server [HTTP 200]",
        "hello from the FTP server [HTTP 226]",
        "hello from the FTP server [HTTP 226]",
        "an answer",
        "an answer",
        "no answer: dropped",
    ]
    assert '192.0.2.10 "GET / HTTP/1.1" 200' in out  # the server saw the client's address
    assert out.rstrip().endswith("== lab torn down")
