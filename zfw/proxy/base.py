"""The base class of every proxy a policy can name."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from zfw.engine.endpoint import Endpoint
    from zfw.engine.session import Session


class Proxy:
    """One proxy instance serves one session.

    A policy customises a proxy Zorp-style, by subclassing it and overriding
    :meth:`config`, which runs at the start of every session::

        class MyPlug(PlugProxy):
            def config(self):
                self.timeout = 300
    """

    #: Log tag prefix (``plug`` gives ``plug.info``, ``plug.error`` ...).
    log_tag: ClassVar[str] = "proxy"
    #: Destination ports a transparent listener intercepts unless told otherwise.
    default_ports: ClassVar[tuple[int, ...]] = ()
    #: Whether it can read the server from the request (with an InbandRouter).
    inband: ClassVar[bool] = False

    def __init__(self, session: Session):
        self.session = session

    def config(self) -> None:
        """Policy hook: set attributes for this session."""

    def start(self, client: Endpoint) -> None:
        """Take over the accepted client connection."""
        raise NotImplementedError

    def state(self) -> str:
        """What the session is doing now, for ``zfw sessions`` (an HTTP request in
        progress, an FTP transfer ...); empty when there is nothing to say."""
        return ""

    def log(self, kind: str, level: int, message: str, **fields: object) -> None:
        """Log under ``<log_tag>.<kind>`` with the session id."""
        self.session.log(f"{self.log_tag}.{kind}", level, message, **fields)
