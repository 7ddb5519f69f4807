"""Headless Chromium in the lab: a home whose NSS database trusts given CAs, and a page
loaded until its script has posted its results.

Debian's ``chromium`` and ``certutil`` (libnss3-tools); ``contrib/install-deps``
installs both.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence

from zfw.lab import Lab

#: Flags for a quiet, reproducible browser: nothing of Google's services, no QUIC
#: (HTTP/3 would go around a TCP proxy), a profile of its own.
FLAGS = (
    "--headless",
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=HttpsUpgrades",  # http:// is loaded as such, not tried as https first
)


def missing() -> list[str]:
    """The programs this needs that are not installed."""
    return [p for p in ("chromium", "certutil") if shutil.which(p) is None]


def trusting_home(directory: str, *ca_files: str) -> str:
    """A HOME in ``directory`` whose ``.pki/nssdb`` trusts ``ca_files`` for TLS servers."""
    db = os.path.join(directory, ".pki", "nssdb")
    os.makedirs(db)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True)
    for i, ca in enumerate(ca_files):
        subprocess.run(
            ["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", f"ca{i}", "-i", ca],
            check=True,
        )
    return directory


def load(
    lab: Lab,
    home: str,
    url: str,
    results: str,
    flags: Sequence[str] = (),
    node: str = "client",
    deadline: float = 180,
) -> dict[str, object]:
    """Load ``url`` in ``node`` and return what the page posted as its results: the
    page is given ``?run=ID`` and posts to the lab's web application
    (:mod:`zfw.lab.webapp`), which keeps it as ``results/ID.json``. Waiting for that
    file, rather than for a DOM dump, leaves the page all the time its own work takes
    (a WebSocket does not hold Chromium's virtual time)."""
    run = uuid.uuid4().hex
    path = os.path.join(results, f"{run}.json")
    with tempfile.TemporaryDirectory(dir=home) as profile:
        args = [*FLAGS, f"--user-data-dir={profile}", *flags, f"{url}?run={run}"]
        proc = lab.popen(
            node,
            ["chromium", *args],
            env={**os.environ, "HOME": home},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # the launcher script and its browser, stopped together
        )
        try:
            end = time.monotonic() + deadline
            while not os.path.exists(path) and proc.poll() is None and time.monotonic() < end:
                time.sleep(0.2)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            _out, err = proc.communicate()
    if not os.path.exists(path):
        raise AssertionError(f"{url}: the page posted no results; chromium said:\n{err[-3000:]}")
    with open(path) as f:
        return json.load(f)
