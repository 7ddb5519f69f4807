"""Coverage-guided fuzzing of one target with atheris (libFuzzer in CPython).

    .venv/bin/python -m tests.fuzz.run TARGET [CORPUS_DIR] [libFuzzer options]
    .venv/bin/python -m tests.fuzz.run http_requests /tmp/corpus -max_total_time=3600

TARGET: http_requests, http_responses, ftp, clienthello. A finding leaves a
``crash-*`` file (make it a regression test) and exit status 1.
"""

from __future__ import annotations

import sys


def main() -> None:
    import atheris

    with atheris.instrument_imports():
        from tests.fuzz.targets import TARGETS

    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
