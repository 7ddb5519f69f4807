"""Runtime control of a running instance: ``zfw status|sessions|kill|reload|loglevel``.

Each instance listens on a UNIX socket (``/run/zfw/INSTANCE.sock``, mode 0600;
a peer must be root or the instance's own user). The protocol
(:mod:`zfw.control.protocol`) is JSON lines: one request a line, one answer a
line. Nothing of it is reachable over the network.
"""
