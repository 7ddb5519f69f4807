"""A mail zone: the mail server, its POP3 readers and the SMTP that feeds it.

- POP3 (port 110) from the intranet to the mail zone: Pop3Proxy, which passes the
  commands of RFC 1939 and refuses the rest (STLS and AUTH included); logins to the
  role mailboxes (root, postmaster, abuse) are refused, they are read on the mail
  server itself. POP3 sends passwords in clear: it is not offered to the internet;
- SMTP (port 25) into the mail zone from the intranet and the internet, and out of
  the mail zone to the internet: relayed by PlugProxy (zfw has no SMTP proxy yet).
  The intranet's own hosts cannot send mail to the internet directly, only through
  the mail server.
Nothing else is permitted.

What to change first: the networks in zones/mail.py, then ROLE_MAILBOXES.
"""

from zfw.policy import *

include_zones("../zones/mail.py")

ROLE_MAILBOXES = ("root", "postmaster", "abuse")


def _check_user(command):
    """USER name: a role mailbox is refused, any other passes to the server."""
    if command.args and command.args[0].lower() in ROLE_MAILBOXES:
        return (POP3_REQ_REJECT, "This mailbox is read on the mail server only.")
    return POP3_REQ_ACCEPT


class MailReaders(Pop3Proxy):
    """POP3 from the intranet."""

    def config(self):
        self.request["USER"] = (POP3_REQ_POLICY, _check_user)


def mail():
    """The mail zone's traffic."""
    Service("mail_pop3", MailReaders)
    Service("mail_smtp_in", PlugProxy)
    Service("mail_smtp_out", PlugProxy)
    Listener(SockAddrInet("", 50110), "mail_pop3")  # intercepts port 110
    # Both intercept port 25: the client's zone tells which one takes a connection.
    Listener(SockAddrInet("", 50025), "mail_smtp_in", intercept=25)
    Listener(SockAddrInet("", 50026), "mail_smtp_out", intercept=25)
