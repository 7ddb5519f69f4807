"""The proxy interface: how the engine makes, configures and starts a proxy, and how
one proxy hands its client over to another (``docs/proxies.md``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from zfw.options import Declared, OptionError, check_instance

if TYPE_CHECKING:
    from zfw.engine.session import Session
    from zfw.policytable import TableSpec
    from zfw.stream import Stream


@attrs.frozen
class Handover:
    """What a proxy passes to the proxy that takes over its session's client.

    - ``pending``: bytes from the client that the first proxy read and did not use;
    - ``client_eof``: the client has half-closed after them;
    - ``server``: the server stream, when the first proxy opened it (a proxy whose
      ``needs_server`` is True gets one);
    - ``to_client``: bytes from the server not yet passed on;
    - ``connect``: opens the way to the server in place of
      :meth:`Session.connect_server` (same arguments and result), e.g. through a
      parent proxy;
    - ``covers``: whether the server's certificate names a host (given by a TLS
      layer, so that HTTP refuses a Host the certificate does not cover).
    """

    pending: bytes = b""
    client_eof: bool = False
    server: Stream | None = None
    to_client: bytes = b""
    connect: Callable[..., Any] | None = None
    covers: Callable[[str], bool] | None = None


class Proxy(Declared):
    """One proxy instance serves one session.

    The engine makes it with the session, calls :meth:`configure` (every
    class's :meth:`preset`, then the policy's :meth:`config`) and then
    :meth:`start` with the client stream. A policy customises a proxy
    Zorp-style, by subclassing it and overriding :meth:`config`::

        class MyPlug(PlugProxy):
            def config(self):
                self.timeout = 300

    The options a policy may set are declared with :func:`zfw.options.option` in the
    class body, and checked after ``config()``.

    A proxy uses its streams only through :class:`zfw.stream.Stream`, its
    session for connecting, logging and closing, and nothing of the engine.
    """

    #: Log tag prefix (``plug`` gives ``plug.info``, ``plug.error`` ...).
    log_tag: ClassVar[str] = "proxy"
    #: Destination ports a transparent listener intercepts unless told otherwise.
    default_ports: ClassVar[tuple[int, ...]] = ()
    #: Whether it can read the server from the request (with an InbandRouter).
    inband: ClassVar[bool] = False
    #: Whether it applies the service's encryption policy itself, at a STARTTLS
    #: command (the engine then starts it on the plaintext, not EncryptionProxy).
    starttls: ClassVar[bool] = False
    #: Taking over a CONNECT tunnel, it wants the server connection open first (zfw
    #: answers 200 only once it is); False: it opens the way itself, after its own
    #: look at what the client sends (the TLS tunnel decides by the ClientHello).
    needs_server: ClassVar[bool] = False
    #: Its policy tables (``self.request`` ...), each with its declared shape, held to
    #: it at ``zfw check`` (:mod:`zfw.policytable`).
    table_specs: ClassVar[tuple[TableSpec, ...]] = ()
    #: Whether it listens transparently itself (FTP data channels): needs CAP_NET_ADMIN.
    transparent_data: ClassVar[bool] = False

    def __init__(self, session: Session):
        self.session = session

    def preset(self) -> None:
        """What this class sets up before the policy's ``config()``: restrictions a
        preset stands for. :meth:`configure` runs the preset of every class in the
        hierarchy itself (a ``preset()`` need not call ``super()``), so a ``config()``
        that forgets ``super()`` loses none of them; it may still change them on purpose."""

    def apply_presets(self) -> None:
        """Run the :meth:`preset` each class of the hierarchy defines, base classes first."""
        for cls in reversed(type(self).__mro__):
            preset = cls.__dict__.get("preset")
            if preset is not None:
                preset(self)

    def configure(self) -> None:
        """Apply the presets, then the policy's :meth:`config`, then check the options
        (:class:`~zfw.options.OptionError` blames the line of ``config()``)."""
        self.apply_presets()
        self.config()
        try:
            check_instance(self)
        except OptionError as e:
            code = type(self).config.__code__
            e.where = f"{code.co_filename}:{code.co_firstlineno}"
            raise

    def config(self) -> None:
        """Policy hook: set attributes for this session."""

    def start(self, client: Stream, handover: Handover | None = None) -> None:
        """Take over the client stream: accepted by the engine, or handed over by
        another proxy with what it passes on (:class:`Handover`)."""
        raise NotImplementedError

    def hand_over(
        self, proxy_class: type[Proxy], client: Stream, handover: Handover, **attributes: Any
    ) -> Proxy | None:
        """Make ``proxy_class`` the session's proxy and start it on ``client``; this
        proxy must have let go of the client's events and of the session first.
        ``attributes`` are set on the new proxy after its ``config()``.

        When the policy's ``config()`` raises (or sets a wrong option), one line names
        it, the client and the handed-over server are aborted, the session closes, and
        the result is None: the caller stops there."""
        try:
            proxy = proxy_class(self.session)
            proxy.configure()
            for name, value in attributes.items():
                setattr(proxy, name, value)
        except Exception as e:  # policy code in config() may raise anything
            self.session.policy_failed(f"{proxy_class.__name__} config()", e)
            for stream in (client, handover.server):
                if stream is not None:
                    stream.silence()  # no proxy is left to hear of it
                    if not stream.lost:
                        stream.abort()
            self.session.close()
            return None
        self.session.proxy = proxy
        proxy.start(client, handover)
        return proxy

    def state(self) -> str:
        """What the session is doing now, for ``zfw sessions`` (an HTTP request in
        progress, an FTP transfer ...); empty when there is nothing to say."""
        return ""

    def may_yield(self) -> bool:
        """Whether, near a limit, the session may be closed to make room for another
        client address (zfw.engine.fair): while it is still opening, nothing having
        come from a server yet (a handshake, the first bytes). A session idle for
        ``InstanceOptions(yield_idle=...)`` may yield whatever this says."""
        return self.session.traffic()[1] == 0

    def log(self, kind: str, level: int, message: str, **fields: object) -> None:
        """Log under ``<log_tag>.<kind>`` with the session id."""
        self.session.log(f"{self.log_tag}.{kind}", level, message, **fields)
