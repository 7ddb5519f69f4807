"""What the gallery's tests share: a gallery policy written out as ``zfw example NAME
DIR`` writes it, with the files its comment asks the administrator to make."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.pki import server_certificate
from zfw.cli import main
from zfw.tls.certs import create_ca

ROOT = Path(__file__).resolve().parents[1]
#: Every policy of the gallery, by name.
NAMES = sorted(p.stem for p in (ROOT / "policies").glob("*.py"))
#: The site certificate of policies/dmz.py names this.
DMZ_SITE = "www.example.com"


def make_files(name: str, directory: Path) -> None:
    """The files policy ``name`` reads beside itself: its CAs, its site certificate."""
    if name == "web_gateway":
        for ca in ("ca", "untrusted"):
            if not (directory / ca).exists():
                create_ca(str(directory / ca), f"gallery {ca} CA")
    if name == "dmz":
        (directory / "tls").mkdir(exist_ok=True)
        server_certificate(str(directory / "tls"), "www", [DMZ_SITE], None)


def write_example(name: str, directory: Path) -> Path:
    """``zfw example NAME DIR`` and the files the policy needs; the policy's path."""
    assert main(["example", name, str(directory), "--force"]) == 0
    make_files(name, directory)
    os.chmod(directory, 0o755)
    return directory / "policy.py"
