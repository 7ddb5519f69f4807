"""The last good ruleset: what the previous successful ``zfw rules apply`` loaded.

``zfw rules apply`` falls back to it when the policy does not load, so it must
outlive a reboot: it is kept in ``/var/lib/zfw`` (``--state-dir``, or
``ZFW_STATE_DIR``), one file per network namespace, as JSON of the compiled
:class:`~zfw.rules.model.Ruleset` (any backend renders it), written atomically
(a temporary file renamed over the old one) and readable by root alone.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import attrs

from zfw.rules.model import Ruleset, ruleset_from_data, ruleset_to_data

DEFAULT_DIR = "/var/lib/zfw"


def state_dir(given: str | None) -> str:
    """The directory of the last good rulesets: ``given``, ``$ZFW_STATE_DIR``, or the default."""
    return given or os.environ.get("ZFW_STATE_DIR") or DEFAULT_DIR


def path(directory: str, netns: str | None) -> str:
    """The file of one namespace's last good ruleset."""
    return os.path.join(directory, f"last-good-{netns or 'host'}.json")


@attrs.frozen
class LastGood:
    """A recorded ruleset and when and from what it was applied."""

    ruleset: Ruleset
    applied_at: float
    policy: str
    backend: str

    def when(self) -> str:
        """The time of the apply, local, to the minute."""
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.applied_at))


def save(directory: str, netns: str | None, last: LastGood) -> None:
    """Record ``last`` (replacing the previous record in one rename)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    data = {
        "applied_at": last.applied_at,
        "policy": last.policy,
        "backend": last.backend,
        "ruleset": ruleset_to_data(last.ruleset),
    }
    fd, tmp = tempfile.mkstemp(prefix=".last-good-", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path(directory, netns))
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(directory: str, netns: str | None) -> tuple[LastGood | None, str | None]:
    """The recorded ruleset, or None and why not (None, None: none was recorded)."""
    where = path(directory, netns)
    try:
        with open(where) as f:
            data = json.load(f)
        last = LastGood(
            ruleset_from_data(data["ruleset"]),
            float(data["applied_at"]),
            str(data["policy"]),
            str(data["backend"]),
        )
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"the last good ruleset {where} is unreadable ({e})"
    return last, None
