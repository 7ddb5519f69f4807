"""The network-namespace lab: client, firewall and server hosts on one machine.

::

    client 192.0.2.2/24        fw 192.0.2.1 | 198.51.100.1     server 198.51.100.2/24
           2001:db8:1::2/64       2001:db8:1::1 | 2001:db8:2::1       2001:db8:2::2/64
    [eth0] ---------------- [cl0]    fw     [sv0] ---------------- [eth0]

The client also has 192.0.2.130 (a second zone in tests). The firewall
forwards, has ``rp_filter`` off and the TPROXY policy routing. Only
namespaces named after the lab are touched, never the host's own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from zfw.routing import TproxyRouting

NODES = ("client", "fw", "server")

CLIENT4 = "192.0.2.2"
CLIENT4_OTHER = "192.0.2.130"
FW_CLIENT4 = "192.0.2.1"
SERVER4 = "198.51.100.2"
FW_SERVER4 = "198.51.100.1"
CLIENT6 = "2001:db8:1::2"
FW_CLIENT6 = "2001:db8:1::1"
SERVER6 = "2001:db8:2::2"
FW_SERVER6 = "2001:db8:2::1"

MARK = 0x1000000
ROUTING = TproxyRouting(mark=MARK, mask=MARK, table=100)


class LabError(Exception):
    """The lab could not be made (not root, no namespaces, no iptables-legacy ...)."""


def _run(args: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def missing_tools() -> list[str]:
    """Programs the lab needs that are not installed."""
    need = ["ip", "iptables-legacy-restore", "ip6tables-legacy-restore", "sysctl"]
    return [t for t in need if shutil.which(t) is None]


class Lab:
    """Three namespaces named ``NAME-client``, ``NAME-fw`` and ``NAME-server``."""

    def __init__(self, name: str = "zfwlab"):
        self.name = name
        self.ns = {node: f"{name}-{node}" for node in NODES}
        #: Control sockets of the zfw instances the lab runs (not the host's /run/zfw).
        self.run_dir = f"/tmp/{name}-run"

    # --- life cycle ----------------------------------------------------------------------

    def up(self) -> Lab:
        """Create the lab (after removing a stale one of the same name)."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces)")
        missing = missing_tools()
        if missing:
            raise LabError(f"missing programs: {', '.join(missing)} (run contrib/install-deps)")
        self.down()
        os.makedirs(self.run_dir, exist_ok=True)
        try:
            self._create()
        except BaseException:
            self.down()
            raise
        return self

    def _create(self) -> None:
        c, f, s = self.ns["client"], self.ns["fw"], self.ns["server"]
        for ns in (c, f, s):
            _run(["ip", "netns", "add", ns])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        for dev, peer in (("cl0", c), ("sv0", s)):
            _run(
                [
                    "ip",
                    "-n",
                    f,
                    "link",
                    "add",
                    dev,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    peer,
                ]
            )
        addrs = [
            (c, "eth0", [f"{CLIENT4}/24", f"{CLIENT4_OTHER}/24", f"{CLIENT6}/64"]),
            (f, "cl0", [f"{FW_CLIENT4}/24", f"{FW_CLIENT6}/64"]),
            (f, "sv0", [f"{FW_SERVER4}/24", f"{FW_SERVER6}/64"]),
            (s, "eth0", [f"{SERVER4}/24", f"{SERVER6}/64"]),
        ]
        for ns, dev, items in addrs:
            for a in items:
                extra = ["nodad"] if ":" in a else []
                _run(["ip", "-n", ns, "addr", "add", a, "dev", dev, *extra])
            _run(["ip", "-n", ns, "link", "set", dev, "up"])
        for ns, gw4, gw6 in ((c, FW_CLIENT4, FW_CLIENT6), (s, FW_SERVER4, FW_SERVER6)):
            _run(["ip", "-n", ns, "route", "add", "default", "via", gw4])
            _run(["ip", "-n", ns, "-6", "route", "add", "default", "via", gw6])
        sysctls = [
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.conf.cl0.rp_filter=0",
            "net.ipv4.conf.sv0.rp_filter=0",
            # zfw's outgoing connections take ephemeral ports on the clients' addresses:
            # keep them below the listener ports (50000 and up) used in the lab.
            "net.ipv4.ip_local_port_range=10000 49999",
        ]
        _run(["ip", "netns", "exec", f, "sysctl", "-q", "-w", *sysctls])
        self.routing(ROUTING)

    def down(self) -> None:
        """Kill what runs in the lab's namespaces and delete them."""
        existing = set(
            subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        )
        for ns in self.ns.values():
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
            if ns not in existing:
                continue
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        with contextlib.suppress(OSError):  # the hosts' directory, if empty
            os.rmdir("/etc/netns")
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def exists(self) -> bool:
        """Whether the lab's namespaces are there."""
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return all(ns in out.split() for ns in self.ns.values())

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- running things ------------------------------------------------------------------

    def cmd(self, node: str, args: Sequence[str]) -> list[str]:
        """``args`` as run inside ``node``."""
        return ["ip", "netns", "exec", self.ns[node], *args]

    def run(
        self, node: str, args: Sequence[str], check: bool = True, timeout: float = 120, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion inside ``node``; raise LabError on failure if ``check``."""
        proc = subprocess.run(
            self.cmd(node, args), capture_output=True, text=True, timeout=timeout, **kw
        )
        if check and proc.returncode != 0:
            raise LabError(
                f"{node}: {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def popen(self, node: str, args: Sequence[str], **kw: Any) -> subprocess.Popen[str]:
        """Start inside ``node``."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        return subprocess.Popen(self.cmd(node, args), text=True, **kw)

    def hosts(self, node: str, names: dict[str, str]) -> None:
        """Names that programs started in ``node`` from now on resolve, besides those
        of the machine's ``/etc/hosts`` (the lab has no DNS): ``ip netns exec`` mounts
        ``/etc/netns/NS/hosts`` on ``/etc/hosts`` for them. No names: as before (and
        the lab's end removes them too)."""
        directory = f"/etc/netns/{self.ns[node]}"
        if not names:
            shutil.rmtree(directory, ignore_errors=True)
            with contextlib.suppress(OSError):  # made for the lab, if nothing else is there
                os.rmdir("/etc/netns")
            return
        with open("/etc/hosts") as f:
            base = f.read()
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "hosts"), "w") as f:
            f.write(base.rstrip("\n") + "\n")
            f.write("".join(f"{address} {name}\n" for name, address in names.items()))

    def tool(self, node: str, *args: str) -> list[str]:
        """The command line of a lab tool (``python -m zfw.lab.tools ...``) in ``node``."""
        return self.cmd(node, [sys.executable, "-m", "zfw.lab.tools", *args])

    # --- the firewall's packet filter ----------------------------------------------------

    def routing(self, r: TproxyRouting) -> None:
        """Put the TPROXY policy routing into the firewall namespace."""
        from pyroute2 import NetNS

        from zfw import routing

        ns = NetNS(self.ns["fw"])
        try:
            routing.apply(ns, r)
        finally:
            ns.close()

    def restore(self, v4: str, v6: str | None = None) -> None:
        """Load iptables-restore text into the firewall (legacy backend)."""
        self.run("fw", ["iptables-legacy-restore"], input=v4)
        if v6 is not None:
            self.run("fw", ["ip6tables-legacy-restore"], input=v6)

    def tproxy(self, ports: dict[int, int], divert: str = "nosyn", mark: int = MARK) -> None:
        """A minimal mangle table: DIVERT plus TPROXY of ``{dport: listener port}``.

        ``divert='nosyn'`` sends only established traffic through the socket
        match before TPROXY (then remaining SYNs, for foreign-address
        listeners); ``'textbook'`` puts ``-m socket`` first for every packet;
        ``'none'`` leaves the mangle table empty (plain routing).
        """
        texts = []
        for any_addr in ("0.0.0.0", "::"):
            lines = ["*mangle", ":PREROUTING ACCEPT [0:0]", ":DIVERT - [0:0]"]
            if divert == "textbook":
                lines.append("-A PREROUTING -p tcp -m socket -j DIVERT")
            elif divert == "nosyn":
                lines.append("-A PREROUTING -p tcp ! --syn -m socket -j DIVERT")
            if divert != "none":
                for dport, lport in sorted(ports.items()):
                    lines.append(
                        f"-A PREROUTING -i cl0 -p tcp --dport {dport} -j TPROXY "
                        f"--on-port {lport} --on-ip {any_addr} --tproxy-mark {mark:#x}/{mark:#x}"
                    )
                if divert == "nosyn":
                    lines.append("-A PREROUTING -p tcp -m socket -j DIVERT")
            lines += [
                f"-A DIVERT -j MARK --set-xmark {mark:#x}/{mark:#x}",
                "-A DIVERT -j ACCEPT",
                "COMMIT",
                # ... and an open filter table (no rules compiled from a policy).
                "*filter",
                ":INPUT ACCEPT [0:0]",
                ":FORWARD ACCEPT [0:0]",
                ":OUTPUT ACCEPT [0:0]",
                "COMMIT",
                "",
            ]
            texts.append("\n".join(lines))
        self.restore(texts[0], texts[1])
        if shutil.which("nft"):  # and no table of zfw's nft backend left from a test
            self.run("fw", ["nft", "-f", "-"], input="table inet zfw\ndelete table inet zfw\n")

    # --- zfw -----------------------------------------------------------------------------

    def apply_rules(self, policy: str, *extra: str, backend: str = "iptables") -> None:
        """``zfw rules apply POLICY --netns FW``: the packet filter compiled from a policy
        (its last good ruleset kept in the lab's run directory, gone with the lab)."""
        zfw = os.path.join(os.path.dirname(sys.executable), "zfw")
        args = [zfw, "rules", "apply", policy, "--netns", self.ns["fw"], "--backend", backend]
        proc = subprocess.run(
            [*args, "--state-dir", self.run_dir, *extra],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise LabError(f"zfw rules apply: {proc.stderr.strip()}")

    def control_socket(self, instance: str) -> str:
        """Where a zfw the lab runs for ``instance`` has its control socket."""
        return os.path.join(self.run_dir, f"{instance}.sock")

    def zfw_command(self, policy: str, instance: str, *extra: str) -> list[str]:
        """The ``twistd -n zfw`` command line for ``policy`` and ``instance``."""
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        return [
            twistd,
            "--nodaemon",
            "--pidfile=",
            "zfw",
            "--policy",
            policy,
            "--instance",
            instance,
            "--control-socket",
            self.control_socket(instance),
            *extra,
        ]

    def start_zfw(self, policy: str, instance: str, *extra: str, ready: float = 20) -> ZfwProcess:
        """Run ``twistd -n zfw`` in the firewall; wait until its listeners are up."""
        return ZfwProcess(self.popen("fw", self.zfw_command(policy, instance, *extra)), ready)


class ZfwProcess:
    """A zfw running in the lab; its output lines are collected as they come."""

    def __init__(self, proc: subprocess.Popen[str], ready: float):
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self.wait_for("started from", ready):
            self.stop()
            raise LabError("zfw did not start:\n" + "\n".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 10, start: int = 0) -> str | None:
        """The first line (from index ``start``) containing ``text``, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(left, 0.2))

    def grep(self, text: str) -> list[str]:
        """Lines so far that contain ``text``."""
        with self._cond:
            return [line for line in self.lines if text in line]

    @property
    def pid(self) -> int:
        """The process id of twistd (``ip netns exec`` execs it)."""
        return self.proc.pid

    def rss_kib(self) -> int:
        """Resident memory of zfw in KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise LabError("zfw has no VmRSS")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to zfw."""
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode
