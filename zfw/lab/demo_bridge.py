"""The bridged demo (``contrib/demo --bridge``): the bridged lab (:mod:`zfw.lab.bridge`),
zfw proxying HTTP and FTP across the bridge, ping bridged, the rest dropped.

It tears the lab down whatever happens.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from zfw.lab import LabError
from zfw.lab.bridge import (
    BRIDGE_MAC,
    CLIENT4,
    CLIENT6,
    CLIENT_PORT,
    FW4,
    FW6,
    SERVER4,
    SERVER6,
    SERVER_PORT,
    BridgeLab,
)
from zfw.lab.demo import (
    CLIENT,
    curl,
    say,
    show_file,
    show_zfw_log,
    start_ftp_server,
    start_web_server,
)

POLICY = f"""
from zfw.policy import *

Bridge("br0", client_ports=["{CLIENT_PORT}"], server_ports=["{SERVER_PORT}"],
       mac="{BRIDGE_MAC}", addresses=["{FW4}/24", "{FW6}/64"], bridge_traffic=["ping"])
InetZone("clients", ["{CLIENT4}/32", "{CLIENT6}/128"], outbound_services=["*"])
InetZone("servers", ["{SERVER4}/32", "{SERVER6}/128"], inbound_services=["*"])


def bridge():
    Service("web", HttpProxy)
    Service("files", FtpProxy)
    Listener(SockAddrInet("", 50080), "web", intercept=80)
    Listener(SockAddrInet("", 50021), "files", intercept=21)
"""


def main() -> int:
    lab = BridgeLab("zfwbrdemo")
    say(
        f"== bridged lab: client {CLIENT4} ({CLIENT6}) | fw: br0 {FW4} | "
        f"server {SERVER4} ({SERVER6}), one subnet"
    )
    try:
        lab.up()
    except LabError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    procs = []
    zfw = None
    web_dir = ""
    d = tempfile.mkdtemp()
    policy = os.path.join(d, "bridge.py")
    with open(policy, "w") as f:
        f.write(POLICY)
    try:
        say("== packet filter: zfw rules apply --backend nft (table inet zfw, table bridge zfw)")
        lab.apply_rules(policy, backend="nft")
        web, web_dir = start_web_server(lab)
        ftp, _ftp_dir = start_ftp_server(lab)
        server = lab.popen("server", [sys.executable, "-m", "zfw.lab.tools", "whoami", "22"])
        assert server.stdout is not None
        server.stdout.readline()
        procs += [web, ftp, server]
        say("== zfw: twistd -n zfw --policy bridge.py --instance bridge")
        zfw = lab.start_zfw(policy, "bridge", "--log-spec", "core.*:4")
        say("== traffic from the client namespace, across the bridge")
        for args, what in (
            ([f"http://{SERVER4}/"], "HTTP through HttpProxy"),
            ([f"http://[{SERVER6}]/"], "the same over IPv6"),
            ([f"ftp://{SERVER4}/readme.txt"], "FTP, passive, through FtpProxy"),
            (["--ftp-port", "-", f"ftp://{SERVER4}/readme.txt"], "FTP, active"),
        ):
            say(f"  curl {' '.join(args)}  {what}\n      client got: {curl(lab, *args)}")
        for server_addr in (SERVER4, SERVER6):
            proc = lab.run("client", ["ping", "-c", "1", "-W", "2", server_addr], check=False)
            got = "an answer" if proc.returncode == 0 else "no answer"
            say(f"  ping {server_addr}  bridged (bridge_traffic ping)\n      client got: {got}")
        out = lab.run("client", ["python3", "-c", CLIENT, SERVER4, "22", CLIENT4]).stdout
        say(f"  {CLIENT4} -> {SERVER4}:22  no service for it: dropped\n"
            f"      client got: {out.strip()}")  # fmt: skip
        time.sleep(0.3)
    finally:
        if zfw is not None:
            zfw.stop()
        for p in procs:
            p.kill()
            p.wait()
        if web_dir:
            show_file("the web server's log (the client's own address)", f"{web_dir}/access.log")
        if zfw is not None:
            show_zfw_log(zfw)
        lab.down()
        say("== lab torn down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
