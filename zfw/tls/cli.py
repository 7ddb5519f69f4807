"""``zfw ca create DIR``: the CA that TLS inspection signs leaves with."""

from __future__ import annotations

import argparse
import sys

from zfw.errors import ZfwError
from zfw.tls.certs import CertificateError, create_ca

_INSTALL = """\
made {cert} (the CA certificate) and {key} (its key, mode 0600).
Use them in the policy:
    DynamicCertificate(trusted_ca=("{cert}", "{key}"))
Install {cert} as a trusted root on the clients (never an untrusted CA's):
    Debian/Ubuntu: cp {cert} /usr/local/share/ca-certificates/zfw.crt && update-ca-certificates
    Windows:       group policy, Trusted Root Certification Authorities
    Firefox:       the enterprise policy Certificates.Install
"""


def _create(args: argparse.Namespace) -> int:
    try:
        cert, key = create_ca(args.directory, args.name, args.days)
    except (CertificateError, OSError) as e:
        raise ZfwError(str(e)) from None
    print(_INSTALL.format(cert=cert, key=key), end="", file=sys.stderr)
    print(cert)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``zfw ca ...``."""
    ca = sub.add_parser("ca", help="the certificate authority of TLS inspection")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True)
    c = ca_sub.add_parser("create", help="make a CA key (0600) and certificate in DIR")
    c.add_argument("directory")
    c.add_argument("--name", default="zfw inspection CA", help="the CA's common name")
    c.add_argument("--days", type=int, default=3650, help="validity (default 3650)")
    c.set_defaults(func=_create)
