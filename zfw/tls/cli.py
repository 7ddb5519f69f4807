"""``zfw ca create [--untrusted] DIR``: the CAs that TLS inspection signs leaves with."""

from __future__ import annotations

import argparse
import grp
import sys

from zfw.errors import ZfwError
from zfw.tls.certs import CertificateError, create_ca

#: The service user's group (zfw/data/sysusers/zfw.conf): CA keys are made readable by it.
SERVICE_GROUP = "zfw"

_MADE = "made {cert} (the CA certificate) and {key} (its key, mode {mode}).\n"

_TRUSTED = """\
Use them in the policy:
    DynamicCertificate(trusted_ca=("{cert}", "{key}"))
Install {cert} as a trusted root on the clients:
    Debian/Ubuntu: cp {cert} /usr/local/share/ca-certificates/zfw.crt && update-ca-certificates
    Windows:       group policy, Trusted Root Certification Authorities
    Firefox:       the enterprise policy Certificates.Install
"""

_UNTRUSTED = """\
This is the untrusted CA: zfw signs with it the leaves of servers whose own
certificate did not verify, so that clients show the error they would without zfw.
Never install {cert} on the clients. Use it in the policy:
    DynamicCertificate(trusted_ca=(...), untrusted_ca=("{cert}", "{key}"))
"""


def _group(name: str | None) -> tuple[int | None, str]:
    """The gid of ``name`` (None: the service group, if it exists) and a description."""
    if name == "":
        return None, "0600"
    try:
        gid = grp.getgrnam(name or SERVICE_GROUP).gr_gid
    except KeyError:
        if name:
            raise ZfwError(f"no group {name!r}") from None
        return None, f"0600; no group {SERVICE_GROUP!r} here to share it with"
    return gid, f"0640, group {name or SERVICE_GROUP}"


def _create(args: argparse.Namespace) -> int:
    gid, mode = _group(args.group)
    name = args.name or ("zfw UNTRUSTED CA" if args.untrusted else "zfw inspection CA")
    try:
        cert, key = create_ca(args.directory, name, args.days, gid)
    except (CertificateError, OSError) as e:
        raise ZfwError(str(e)) from None
    advice = _MADE + (_UNTRUSTED if args.untrusted else _TRUSTED)
    print(advice.format(cert=cert, key=key, mode=mode), end="", file=sys.stderr)
    print(cert)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``zfw ca ...``."""
    ca = sub.add_parser("ca", help="the certificate authority of TLS inspection")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True)
    c = ca_sub.add_parser(
        "create",
        help="make a CA key and certificate in DIR",
        description="Make DIR/ca.key and DIR/ca.pem. The key is readable by the group "
        f"{SERVICE_GROUP!r} (mode 0640, a new DIR 0750) when that group exists, so that "
        "zfw@.service, which runs as that user, can read it; else 0600.",
    )
    c.add_argument("directory")
    c.add_argument(
        "--untrusted",
        action="store_true",
        help="the untrusted CA (signs leaves of servers that failed verification; "
        "never installed on clients)",
    )
    c.add_argument("--name", help="the CA's common name")
    c.add_argument("--days", type=int, default=3650, help="validity (default 3650)")
    c.add_argument(
        "--group",
        help=f"the group that may read the key (default {SERVICE_GROUP!r} if it exists; "
        "'' for none)",
    )
    c.set_defaults(func=_create)
