"""Shared fixtures: policy files written on the fly."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

HEADER = "from zfw.policy import *\n"


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[..., Path]:
    """Write a policy (``from zfw.policy import *`` prepended) and return its path."""

    def write(body: str, name: str = "policy.py", header: bool = True) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((HEADER if header else "") + textwrap.dedent(body))
        return path

    return write
