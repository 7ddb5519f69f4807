"""``zfw check`` finds what would otherwise fail only at run time: one line each,
``file:line: message``, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zfw.cli import main
from zfw.loader import load_policy
from zfw.tls.certs import create_ca

ZONES = """\
InetZone('lan', '192.0.2.0/24', outbound_services=['*'])
InetZone('net', '0.0.0.0/0', inbound_services=['*'])
"""

# (name, policy body after ``from zfw.policy import *`` (line 1), the line the error
# names, a part of its message)
CASES = [
    (
        "headroom out of range",
        ZONES
        + """
def i():
    InstanceOptions(headroom=1)
    Service('web', HttpProxy)
""",
        6,
        "InstanceOptions: headroom must be a number from 0 to 0.9, not 1",
    ),
    (
        "config raises",
        ZONES
        + """
class Broken(HttpProxy):
    def config(self):
        self.request['GET'] = 1 / 0

def i():
    Service('web', Broken)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "service 'web': Broken.config() failed: ZeroDivisionError: division by zero",
    ),
    (
        "attribute typo in config",
        ZONES
        + """
class Slow(PlugProxy):
    def config(self):
        self.timeout = 5
        self.timout = 5

def i():
    Service('ssh', Slow)
    Listener(SockAddrInet('', 50022), 'ssh', intercept=22)
""",
        8,
        "Slow has no attribute 'timout' (did you mean 'timeout'?)",
    ),
    (
        "response table key that is not (method, status)",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.request['PUT'] = HTTP_REQ_ACCEPT
        self.response[404] = (HTTP_RSP_DENY, 403, 'hidden')

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        8,
        "service 'web': Web.response[404]: a key of response is (method or '*', status or '*'),"
        " not 404 (write ('*', 404) for any method)",
    ),
    (
        "POLICY function without its request argument",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.request['GET'] = (HTTP_REQ_POLICY, self.check)

    def check(self):
        return HTTP_REQ_ACCEPT

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "Web.request['GET']: the POLICY function Web.check() cannot be called as "
        "Web.check(request)",
    ),
    (
        "response POLICY function taking the request only",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.response[('*', '*')] = (HTTP_RSP_POLICY, lambda request: HTTP_RSP_ACCEPT)

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "cannot be called as <lambda>(request, response)",
    ),
    (
        "unknown action constant",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.request['GET'] = HTTP_HDR_DROP

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "Web.request['GET']: 5 is not an HTTP_REQ_* action",
    ),
    (
        "action tuple of the wrong length",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.request_header['User-Agent'] = (HTTP_HDR_REPLACE, 'zfw', 'extra')

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "Web.request_header['User-Agent']: HTTP_HDR_REPLACE takes one text value, not "
        "('zfw', 'extra')",
    ),
    (
        "header table setting a framing header",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.response_header.update({
            'Server': (HTTP_HDR_REPLACE, 'web'),
            'Transfer-Encoding': (HTTP_HDR_INSERT, 'chunked'),
        })

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "Web.response_header['Transfer-Encoding']: Transfer-Encoding is set by zfw",
    ),
    (
        "FTP command in lower case",
        ZONES
        + """
class Ftp(FtpProxyRO):
    def config(self):
        self.request['stor'] = (FTP_REQ_REJECT, 550, 'No uploads.')

def i():
    Service('ftp', Ftp)
    Listener(SockAddrInet('', 50021), 'ftp')
""",
        7,
        "Ftp.request['stor']: a key of request is a command (in upper case) or '*', not 'stor'"
        " (commands are in upper case: 'STOR')",
    ),
    (
        "FTP reply code out of range",
        ZONES
        + """
class Ftp(FtpProxy):
    def config(self):
        self.request['DELE'] = (FTP_REQ_REJECT, 250, 'Deleted (not really).')

def i():
    Service('ftp', Ftp)
    Listener(SockAddrInet('', 50021), 'ftp')
""",
        7,
        "Ftp.request['DELE']: FTP_REQ_REJECT: reply code 250 is not 4xx or 5xx",
    ),
    (
        "POP3 table replaced whole, with a DENY it does not have",
        ZONES
        + """
class Mail(Pop3Proxy):
    def config(self):
        self.request = {
            'DELE': 2,
        }

def i():
    Service('mail', Mail)
    Listener(SockAddrInet('', 50110), 'mail')
""",
        8,
        "service 'mail': Mail.request['DELE']: 2 is not a POP3_REQ_* action",
    ),
    (
        "directed router given a string",
        ZONES
        + """
def i():
    Service('ssh', PlugProxy, router=DirectedRouter('198.51.100.1:80'))
    Listener(SockAddrInet('192.0.2.1', 50022), 'ssh', transparent=False)
""",
        6,
        "DirectedRouter: target must be SockAddrInet(host, port), not '198.51.100.1:80'",
    ),
    (
        "transparent router forced_port out of range",
        ZONES
        + """
def i():
    Service('ssh', PlugProxy, router=TransparentRouter(forced_port=70000))
    Listener(SockAddrInet('', 50022), 'ssh', intercept=22)
""",
        6,
        "TransparentRouter: forced_port must be a port from 1 to 65535 or None, not 70000",
    ),
    (
        "router flag not a bool",
        ZONES
        + """
def i():
    Service('ssh', PlugProxy, router=TransparentRouter(forge_addr='yes'))
    Listener(SockAddrInet('', 50022), 'ssh', intercept=22)
""",
        6,
        "TransparentRouter: forge_addr must be True or False, not 'yes'",
    ),
    (
        "port intercepted twice",
        ZONES
        + """
def i():
    Service('web', HttpProxy)
    Service('web2', HttpProxy)
    Listener(SockAddrInet('', 50080), 'web')
    Listener(SockAddrInet('', 50081), 'web2', intercept=[(79, 81)])
""",
        9,
        "listener *:50081 intercepts port 79:81, as the one at",
    ),
    (
        "zone no address reaches",
        """\
InetZone('lan', '192.0.2.0/24', outbound_services=['*'])
InetZone('low', '192.0.2.0/25')
InetZone('high', '192.0.2.128/25')
""",
        2,
        "zone 'lan' can never match an address: every address in it belongs to a more",
    ),
    (
        "bypass given as a string",
        ZONES
        + """
CA = ("@CA@/ca.pem", "@CA@/ca.key")
INSPECT = TwoSidedEncryption(DynamicCertificate(trusted_ca=CA), bypass="*.bank.example")
""",
        6,
        "TwoSidedEncryption: bypass must be a list of names or '*.domain' patterns, "
        "not the string '*.bank.example' (write ['*.bank.example'])",
    ),
    (
        "reject given as a string",
        ZONES
        + """
CA = ("@CA@/ca.pem", "@CA@/ca.key")
INSPECT = TwoSidedEncryption(
    DynamicCertificate(trusted_ca=CA),
    reject="tracker.example",
)
""",
        6,
        "TwoSidedEncryption: reject must be a list of names",
    ),
    (
        "a wildcard inside a label",
        ZONES
        + """
CA = ("@CA@/ca.pem", "@CA@/ca.key")
INSPECT = TwoSidedEncryption(DynamicCertificate(trusted_ca=CA), bypass=["*bank.example"])
""",
        6,
        "'*bank.example': a wildcard is a whole first label, '*.domain' for the names below domain",
    ),
    (
        "a wildcard as the last label",
        ZONES
        + """
class Tunnel(TlsTunnelProxy):
    def config(self):
        self.allowed_names = ["bank.*"]

def i():
    Service('tls', Tunnel)
    Listener(SockAddrInet('', 50443), 'tls')
""",
        7,
        "service 'tls': TlsTunnelProxy.allowed_names must be a list of names or '*.domain' "
        "patterns: 'bank.*': a wildcard is a whole first label",
    ),
    (
        "timeout as a string",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.timeout = "60"

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "service 'web': HttpProxy.timeout must be a number of seconds, not '60'",
    ),
    (
        "body size with a unit",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.max_body_length = "10M"

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "service 'web': HttpProxy.max_body_length must be a number of bytes or None, not '10M'",
    ),
    (
        "a flag given as a string",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.verify_host = "false"

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "service 'web': HttpProxy.verify_host must be True or False, not 'false'",
    ),
    (
        "upgrade protocols as a string",
        ZONES
        + """
class Web(HttpProxy):
    def config(self):
        self.permit_upgrade = "websocket"

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
""",
        7,
        "HttpProxy.permit_upgrade must be a list of strings, not the string 'websocket'",
    ),
    (
        "connect_proxy named by a string",
        ZONES
        + """
class Proxy(HttpProxyNonTransparent):
    def config(self):
        self.connect_proxy = "PlugProxy"

def i():
    Service('web', Proxy, router=InbandRouter())
    Listener(SockAddrInet('192.0.2.1', 53128), 'web', transparent=False)
""",
        7,
        "HttpProxy.connect_proxy must be a Proxy class, not 'PlugProxy'",
    ),
    (
        "a zone's services as a bare string",
        """
InetZone('lan', '192.0.2.0/24', outbound_services='web')
""",
        3,
        "zone 'lan' outbound_services must be a list of service names, not the string 'web' "
        "(write ['web'])",
    ),
    (
        "a local service's zones as a bare string",
        ZONES
        + """
LocalService('ssh', 22, zones='lan')
""",
        5,
        "local service 'ssh' zones must be a list of zone names, not the string 'lan'",
    ),
    (
        "FTP in an instance of several workers",
        ZONES
        + """
def i():
    InstanceOptions(workers=2)
    Service('ftp', FtpProxy)
    Listener(SockAddrInet('', 50021), 'ftp')
""",
        7,
        "instance 'i' has 2 workers, but service 'ftp' is FtpProxy, whose data channels are "
        "not shared across workers yet: run it in an instance of one worker",
    ),
    (
        "CONNECT inspection given a name pattern",
        ZONES
        + """
class Proxy(HttpProxyNonTransparent):
    def config(self):
        self.connect_encryption = "*.example.com"

def i():
    Service('web', Proxy, router=InbandRouter())
    Listener(SockAddrInet('192.0.2.1', 53128), 'web', transparent=False)
""",
        7,
        "HttpProxy.connect_encryption must be TwoSidedEncryption or None, not '*.example.com'",
    ),
    (
        "CONNECT inspection around a parent proxy",
        ZONES
        + """
class Proxy(HttpProxyNonTransparent):
    def config(self):
        self.connect_encryption = TwoSidedEncryption(
            DynamicCertificate(trusted_ca=("@CA@/ca.pem", "@CA@/ca.key"))
        )
        self.parent_proxy = ("198.51.100.9", 3128)

def i():
    Service('web', Proxy, router=InbandRouter())
    Listener(SockAddrInet('192.0.2.1', 53128), 'web', transparent=False)
""",
        10,
        "connect_encryption and parent_proxy cannot both be set",
    ),
    (
        "POP3 STLS under an encryption policy that is not two-sided",
        ZONES
        + """
OFFLOAD = ClientOnlyEncryption(StaticCertificate("@CA@/ca.pem", "@CA@/ca.key"))

def i():
    Service('pop3', Pop3Proxy, encryption=OFFLOAD)
    Listener(SockAddrInet('', 50110), 'pop3')
""",
        8,
        "Pop3Proxy applies encryption at its STARTTLS command, on both sides",
    ),
    (
        "FTP data ports out of order",
        ZONES
        + """
class Ftp(FtpProxy):
    def config(self):
        self.data_port_min = 41000
        self.data_port_max = 40000
        self.timeout = 60

def i():
    Service('ftp', Ftp)
    Listener(SockAddrInet('', 50021), 'ftp')
""",
        8,
        "service 'ftp': Ftp: data_port_min (41000) is above data_port_max (40000)",
    ),
    (
        "FTP data ports out of order, the lower one set last",
        ZONES
        + """
class Ftp(FtpProxy):
    def config(self):
        self.data_port_max = 40000
        self.data_port_min = 41000

def i():
    Service('ftp', Ftp)
    Listener(SockAddrInet('', 50021), 'ftp')
""",
        8,
        "service 'ftp': Ftp: data_port_min (41000) is above data_port_max (40000)",
    ),
    (
        "CONNECT ports as one number",
        ZONES
        + """
class Proxy(HttpProxyNonTransparent):
    def config(self):
        self.connect_ports = 443

def i():
    Service('web', Proxy, router=InbandRouter())
    Listener(SockAddrInet('192.0.2.1', 53128), 'web', transparent=False)
""",
        7,
        "HttpProxy.connect_ports must be a list of ports from 1 to 65535, not 443",
    ),
    (
        "FTP data ports privileged",
        ZONES
        + """
class Ftp(FtpProxyRO):
    def config(self):
        self.data_port_min = 20
        self.data_port_max = 1000

def i():
    Service('ftp', Ftp)
    Listener(SockAddrInet('', 50021), 'ftp')
""",
        7,
        "service 'ftp': FtpProxy.data_port_min must be a port from 1024 to 65535, not 20",
    ),
    (
        "denied names as a string",
        ZONES
        + """
class Tunnel(TlsTunnelProxy):
    def config(self):
        self.denied_names = "*.tracker.example"

def i():
    Service('tls', Tunnel)
    Listener(SockAddrInet('', 50443), 'tls')
""",
        7,
        "TlsTunnelProxy.denied_names must be a list of names or '*.domain' patterns, "
        "not the string '*.tracker.example'",
    ),
    (
        "allowed names as a string on the class",
        ZONES
        + """
class Tunnel(TlsTunnelProxy):
    allowed_names = "example.com"

def i():
    Service('tls', Tunnel)
    Listener(SockAddrInet('', 50443), 'tls')
""",
        5,
        "Tunnel: TlsTunnelProxy.allowed_names must be a list of names or '*.domain' patterns, "
        "not the string 'example.com'",
    ),
    (
        "a verifier flag given as a string",
        ZONES
        + """
VERIFY = ServerCertificateVerifier(check_subject="false")
""",
        5,
        "ServerCertificateVerifier: check_subject must be True or False, not 'false'",
    ),
    (
        "a TLS version that is not one",
        ZONES
        + """
TO_SERVER = ServerOnlyEncryption(options=TlsOptions(min_version="TLSv1.0"))
""",
        5,
        'TlsOptions: min_version must be one of "TLSv1.2" or "TLSv1.3", not \'TLSv1.0\'',
    ),
    (
        "a pop3 timeout as a string",
        ZONES
        + """
class Mail(Pop3Proxy):
    def config(self):
        self.timeout = "10m"

def i():
    Service('pop3', Mail)
    Listener(SockAddrInet('', 50110), 'pop3')
""",
        7,
        "service 'pop3': Pop3Proxy.timeout must be a number of seconds, not '10m'",
    ),
    ("empty policy", "", None, "the policy declares nothing"),
    (
        "sys.exit",
        """\
import sys
InetZone('lan', '192.0.2.0/24')
sys.exit(3)
""",
        4,
        "the policy called sys.exit(3)",
    ),
    (
        "instance function calls exit",
        ZONES
        + """
def i():
    raise SystemExit
""",
        6,
        "the policy called sys.exit()",
    ),
]


@pytest.mark.parametrize("body,line,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_reports_file_line_and_exits_2(write_policy, tmp_path, capsys, body, line, message):
    if "@CA@" in body:
        create_ca(str(tmp_path / "ca"), "zfw test CA")
        body = body.replace("@CA@", str(tmp_path / "ca"))
    path = write_policy(body)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    where = f"{path}:{line}: " if line else f"{path}: "
    assert err.startswith(where), err
    assert message in err, err


def test_a_policy_that_never_finishes_is_stopped_where_it_runs(write_policy):
    path = write_policy("InetZone('lan', '192.0.2.0/24')\nwhile True:\n    pass\n")
    with pytest.raises(Exception) as info:
        load_policy(str(path), time_limit=0.5)
    assert str(info.value) == f"{path}:3: the policy did not finish loading within 0.5 s"


def test_the_cli_limit_applies_to_zfw_check(write_policy):
    path = write_policy("import time\ntime.sleep(60)\n")
    proc = subprocess.run(
        # Long enough for the policy's imports on a loaded machine to reach line 3.
        [sys.executable, "-m", "zfw.cli", "check", str(path), "--time-limit", "5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{path}:3: the policy did not finish loading within 5 s"


def test_own_names_of_a_policy_are_allowed(write_policy):
    path = write_policy(
        ZONES
        + """
class Web(HttpProxy):
    hosts = ()

    def config(self):
        self.hosts = ('a.example',)   # declared on the class
        self._seen = set()            # private by name
        self.timeout = 10             # the proxy's own
        self.request['GET'] = (HTTP_REQ_POLICY, self._check)

    def _check(self, request):
        return HTTP_REQ_ACCEPT

def i():
    Service('web', Web)
    Listener(SockAddrInet('', 50080), 'web')
"""
    )
    load_policy(str(path))


@pytest.mark.parametrize(
    "raw",
    [
        b"\xef\xbb\xbf" + b"from zfw.policy import *\nInetZone('lan', '192.0.2.0/24')\n",
        b"# -*- coding: latin-1 -*-\nfrom zfw.policy import *\n"
        b"# Zone f\xfcr das LAN\nInetZone('lan', '192.0.2.0/24')\n",
    ],
    ids=["utf-8 BOM", "PEP 263 latin-1"],
)
def test_encodings_python_honours(tmp_path, raw):
    path = tmp_path / "policy.py"
    path.write_bytes(raw)
    assert [z.name for z in load_policy(str(path)).zones] == ["lan"]


def _two_instances(a: str, b: str) -> str:
    return (
        ZONES
        + f"""
def one():
    Service('p1', PlugProxy, router=DirectedRouter(SockAddrInet('198.51.100.2', 7)))
    Listener(SockAddrInet({a}), 'p1', transparent=False)

def two():
    Service('p2', PlugProxy, router=DirectedRouter(SockAddrInet('198.51.100.2', 7)))
    Listener(SockAddrInet({b}), 'p2', transparent=False)
"""
    )


@pytest.mark.parametrize(
    "a,b,shown",
    [
        ("'192.0.2.1', 8000", "'192.0.2.1', 8000", "192.0.2.1:8000 clashes with 192.0.2.1:8000"),
        ("'', 8000", "'192.0.2.1', 8000", "192.0.2.1:8000 clashes with *:8000"),
        ("'0.0.0.0', 8000", "'192.0.2.1', 8000", "192.0.2.1:8000 clashes with 0.0.0.0:8000"),
        ("'2001:db8::1', 8000", "'::', 8000", "[::]:8000 clashes with [2001:db8::1]:8000"),
        ("'', 8000", "'::', 8000", "[::]:8000 clashes with *:8000"),
    ],
)
def test_one_address_and_port_in_two_instances(write_policy, capsys, a, b, shown):
    path = write_policy(_two_instances(a, b))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    # The second instance's listener, naming the first one's place.
    assert err.startswith(f"{path}:11: listener {shown} at {path}:7 (instance 'one'): "), err


@pytest.mark.parametrize(
    "a,b",
    [
        ("'192.0.2.1', 8000", "'192.0.2.2', 8000"),  # two addresses
        ("'', 8000", "'', 8001"),  # two ports
        ("'0.0.0.0', 8000", "'::', 8000"),  # two families (IPv6 sockets are v6only)
        ("'::', 8000", "'192.0.2.1', 8000"),
    ],
)
def test_listeners_that_can_both_open_pass(write_policy, a, b):
    load_policy(str(write_policy(_two_instances(a, b))))
