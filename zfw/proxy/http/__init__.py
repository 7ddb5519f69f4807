"""HttpProxy: a strict HTTP/1.1 application proxy with Zorp-style policy tables.

The protocol work (framing, keep-alive, hop-by-hop fields, 1xx) is done by the
sans-IO core, :mod:`zfw.http`; the policy tables are :mod:`zfw.http.policy`'s.
The proxy itself is split by concern: :mod:`.proxy` (the session and the
requests), :mod:`.responses` (the server side), :mod:`.tables` (applying the
policy), :mod:`.inband` (non-transparent routing, CONNECT, the parent proxy,
the Host check), :mod:`.endings` (timers, error pages, closing) and
:mod:`.messages` (what a transaction keeps and what a policy sees).
"""

from zfw.proxy.http.messages import HttpRequest, HttpResponse, split_host
from zfw.proxy.http.proxy import HttpProxy, HttpProxyNonTransparent

__all__ = ["HttpProxy", "HttpProxyNonTransparent", "HttpRequest", "HttpResponse", "split_host"]
