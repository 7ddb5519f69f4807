"""Record the ClientHellos in tests/tls/hellos/ from real clients on loopback.

    python tests/tls/capture_hellos.py     (openssl, curl and chromium must be installed)

Each client connects to a local socket that keeps the first bytes it sends.
"""

import socket
import subprocess
import tempfile


def capture(cmd_fn, name):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    p = subprocess.Popen(
        cmd_fn(port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    c, _ = srv.accept()
    c.settimeout(1.0)
    data = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            data += d
    except TimeoutError:
        pass
    c.close()
    p.kill()
    p.wait()
    srv.close()
    with open(f"tests/tls/hellos/{name}.bin", "wb") as f:
        f.write(data)
    print(name, len(data), data[:6].hex())


alpns = ",".join(f"proto-{i:03d}-{'x' * 10}" for i in range(100))
capture(
    lambda p: [
        "openssl",
        "s_client",
        "-connect",
        f"127.0.0.1:{p}",
        "-tls1_2",
        "-servername",
        "tls12.example",
    ],
    "openssl_tls12",
)
capture(
    lambda p: [
        "openssl",
        "s_client",
        "-connect",
        f"127.0.0.1:{p}",
        "-tls1_3",
        "-servername",
        "tls13.example",
        "-alpn",
        "h2,http/1.1",
    ],
    "openssl_tls13",
)
capture(
    lambda p: [
        "curl",
        "-s",
        "--max-time",
        "2",
        "--resolve",
        f"curl.example:{p}:127.0.0.1",
        f"https://curl.example:{p}/",
    ],
    "curl",
)
capture(
    lambda p: [
        "openssl",
        "s_client",
        "-connect",
        f"127.0.0.1:{p}",
        "-servername",
        "large.example",
        "-alpn",
        alpns,
        "-max_send_frag",
        "512",
    ],
    "openssl_large_fragmented",
)
capture(
    lambda p: ["openssl", "s_client", "-connect", f"127.0.0.1:{p}", "-noservername"],
    "openssl_no_sni",
)
capture(
    lambda p: [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tempfile.mkdtemp()}",
        "--host-resolver-rules=MAP chromium.example 127.0.0.1",
        "--dump-dom",
        f"https://chromium.example:{p}/",
    ],
    "chromium",
)
