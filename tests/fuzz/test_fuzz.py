"""The fuzz targets over their seed corpora (deterministic), and a bounded
coverage-guided run of each (``ZFW_FUZZ_SECONDS``, default 15, with a fixed seed;
a long run with other seeds is docs/security.md's)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz import corpus
from tests.fuzz.targets import TARGETS, differential, h11_requests

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds_hold_the_invariants(target):
    for seed in corpus.seeds(target):
        TARGETS[target](seed)


def test_the_differential_check_reads_the_good_corpus_like_h11():
    from tests.fuzz.targets import _messages, _run
    from zfw.http.parser import Parser

    checked = 0
    for stream in corpus._GOOD_REQUESTS:
        messages = _messages(_run(Parser("request").feed, [stream]))
        assert messages, stream
        differential(stream, messages)
        checked += 1
    assert checked == len(corpus._GOOD_REQUESTS)


def test_the_differential_check_catches_a_disagreement():
    stream = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
    assert h11_requests(stream) == [(b"GET", b"/a", ((b"host", b"a"),), b"")]
    with pytest.raises(AssertionError):
        differential(stream, [(b"GET", b"/b", ((b"host", b"a"),), b"")])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_coverage_guided_run_finds_nothing(target, tmp_path):
    seconds = int(os.environ.get("ZFW_FUZZ_SECONDS", "15"))
    seeds = corpus.write(target, tmp_path / "corpus")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            target,
            str(seeds),
            f"-max_total_time={seconds}",
            "-max_len=4096",
            "-timeout=10",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    crashes = list(tmp_path.glob("crash-*")) + list(tmp_path.glob("timeout-*"))
    assert proc.returncode == 0 and not crashes, proc.stderr[-3000:]
