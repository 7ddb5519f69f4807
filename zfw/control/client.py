"""Talking to running instances from the ``zfw`` command (blocking; no reactor)."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import socket
from typing import Any

from zfw.control.protocol import MAX_LINE
from zfw.errors import ZfwError

#: Where instances put their control sockets (systemd's RuntimeDirectory=zfw).
RUN_DIR = "/run/zfw"


def socket_path(run_dir: str, instance: str) -> str:
    """The control socket of ``instance``."""
    return os.path.join(run_dir, f"{instance}.sock")


def running(run_dir: str) -> dict[str, str]:
    """Instance name -> control socket, for every socket in ``run_dir``."""
    found = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "*.sock"))):
        found[os.path.basename(path)[: -len(".sock")]] = path
    return found


def call(path: str, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Send one request to the control socket at ``path``; its answer.

    :class:`ZfwError` with a sentence for a person when the instance cannot be asked."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except FileNotFoundError:
            raise ZfwError(f"no control socket {path}: is the instance running?") from None
        except PermissionError:
            raise ZfwError(f"{path}: permission denied (run as root or as zfw's user)") from None
        except OSError as e:
            if e.errno == errno.ECONNREFUSED:
                raise ZfwError(f"{path}: nothing answers (the instance is not running)") from None
            raise ZfwError(f"{path}: {e.strerror}") from None
        # Refused before the request went out: the refusal still waits to be read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:  # after the refusal it sent, if any
                break
            if not chunk:
                break
            data += chunk
            if len(data) > 64 * MAX_LINE * 16:
                raise ZfwError(f"{path}: answer too long")
    except TimeoutError:
        raise ZfwError(f"{path}: no answer within {timeout:g} s") from None
    except OSError as e:
        raise ZfwError(f"{path}: {e.strerror}") from None
    finally:
        s.close()
    if not data:
        raise ZfwError(f"{path}: the instance closed the connection without an answer")
    try:
        answer: Any = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise ZfwError(f"{path}: not an answer of zfw's control protocol")
    if not answer["ok"] and not isinstance(answer.get("error"), str):
        raise ZfwError(f"{path}: a refusal without its reason")
    return answer
