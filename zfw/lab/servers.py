"""Real servers and clients for the lab's hosts: nginx, certificates, openssl s_client.

Used by the end-to-end tests, the demo and the benchmarks alike.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from zfw.lab import Lab

_NGINX = """
user root;
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections {connections}; }}
http {{
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
{http}
    server {{
{server}
    }}
}}
"""


def pinned(cpu: int, args: Sequence[str]) -> list[str]:
    """``args`` pinned to one CPU (benchmarks keep the proxy and the load apart)."""
    return ["taskset", "-c", str(cpu), *args]


def self_signed_cert(directory: str, name: str, alt_names: Sequence[str] = ()) -> None:
    """Write ``cert.pem`` and ``key.pem`` (P-256, one day) for ``name`` into ``directory``."""
    sans = ",".join(f"DNS:{n}" for n in (name, *alt_names))
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName={sans}",
            "-keyout",
            os.path.join(directory, "key.pem"),
            "-out",
            os.path.join(directory, "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )


def tls_server_lines(directory: str, root: str) -> str:
    """nginx server lines for TLS on port 443 (IPv4 and IPv6) with the cert in ``directory``."""
    return (
        f"        listen 443 ssl;\n        listen [::]:443 ssl;\n"
        f"        ssl_protocols TLSv1.2 TLSv1.3;\n"
        f"        ssl_certificate {directory}/cert.pem;\n"
        f"        ssl_certificate_key {directory}/key.pem;\n"
        f"        root {root};"
    )


def start_nginx(
    lab: Lab,
    directory: str,
    server: str,
    http: str = "",
    connections: int = 1024,
    cpu: int | None = None,
) -> subprocess.Popen[str]:
    """nginx in the server namespace, its files and temporary paths in ``directory``."""
    conf = os.path.join(directory, "nginx.conf")
    with open(conf, "w") as f:
        f.write(_NGINX.format(dir=directory, server=server, http=http, connections=connections))
    args = ["nginx", "-c", conf]
    return lab.popen("server", pinned(cpu, args) if cpu is not None else args)


def s_client(lab: Lab, address: str, name: str | None, *extra: str) -> str:
    """``openssl s_client -brief`` from the client namespace; its report (stderr)."""
    sni = ["-servername", name] if name else ["-noservername"]
    proc = lab.run(
        "client",
        ["openssl", "s_client", "-connect", address, *sni, "-brief", *extra],
        input="",
        check=False,
    )
    return proc.stderr
