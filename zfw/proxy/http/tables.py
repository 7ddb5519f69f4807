"""HttpProxy: applying the policy tables (request, response, request_header,
response_header) to a transaction; the tables themselves are zfw.http.policy's."""

from __future__ import annotations

from zfw.http.messages import Headers, Request, Response
from zfw.http.policy import (
    HTTP_RSP_ACCEPT,
    REQUEST_HEADER,
    RESPONSE,
    RESPONSE_HEADER,
    HeaderAbort,
    Verdict,
    check_fields,
    filter_headers,
    response_entry,
    verdict,
)
from zfw.http.serialize import end_to_end
from zfw.policytable import CallbackError, PolicyValueError
from zfw.proxy.http.messages import (
    POLICY_FAILED,
    TARGET_CHARS,
    HttpRequest,
    HttpResponse,
    Refused,
    Transaction,
    field_tokens,
    raw_headers,
    text_headers,
    version_text,
)


class PolicyTables:
    """Part of :class:`~zfw.proxy.http.HttpProxy`: the request, response and header
    tables applied to a transaction, and the views a policy function gets."""

    def _full_view(self, view: HttpRequest, head: Request) -> HttpRequest:
        """The view with its end-to-end headers (built only when a policy function asks)."""
        if not view.headers:
            view.headers = text_headers(end_to_end(head.headers, head.fields))
        return view

    def _check_url(self, url: str) -> None:
        if not url or not set(url.encode("latin-1")) <= TARGET_CHARS:
            raise PolicyValueError(f"the policy set an invalid URL {url[:60]!r}")

    def _request_headers(
        self, head: Request, view: HttpRequest | None
    ) -> tuple[tuple[bytes, bytes], ...]:
        tx = self.tx
        assert tx is not None
        saw = view is not None and bool(view.headers)  # a POLICY function had them
        if saw or self.request_header:
            if view is None:
                view = HttpRequest(tx.method, tx.url, version_text(head.version), [])
            fields = filter_headers(
                REQUEST_HEADER,
                self.request_header,
                self._full_view(view, head).headers,
                lambda fn, n, v: fn(n, v),
            )
            headers = raw_headers(check_fields(fields, "request") if saw else fields)
        else:
            headers = end_to_end(head.headers, head.fields)
        if b"upgrade" not in head.fields and (head.version == (1, 1) or b"host" in head.fields):
            return headers  # the common case: nothing to add
        if head.version == (1, 0) and b"host" not in head.fields:
            host, port = self.session.destination
            host = f"[{host}]" if ":" in host else host
            headers += ((b"Host", (host if port == 80 else f"{host}:{port}").encode()),)
        upgrade = field_tokens(head.fields, b"upgrade")
        if upgrade and b"upgrade" in field_tokens(head.fields, b"connection"):
            wanted = {p.lower().encode() for p in self.permit_upgrade}
            names = {u.split(b"/")[0] for u in upgrade}
            if names <= wanted and len(upgrade) == 1:
                tx.upgrade = next(iter(upgrade))
                headers += ((b"Connection", b"upgrade"), (b"Upgrade", tx.upgrade))
                tx.client_keep = False
            else:
                self._upgrade_refused(b", ".join(sorted(upgrade)).decode("latin-1"), names)
        return headers

    def _upgrade_refused(self, protocols: str, names: set[bytes]) -> None:
        """An upgrade not in ``permit_upgrade``: a WebSocket handshake means nothing
        without it (RFC 6455 4.1), so it gets 403; any other (h2c, TLS) is removed and
        the request goes on, answered as by a server that ignores Upgrade (RFC 9110 7.8)."""
        self.session.stats.count("http_upgrades_refused")
        if b"websocket" in names:
            raise Refused(403, f"Upgrade to {protocols} is not permitted.")
        self.log("policy", 3, f"upgrade to {protocols} not permitted; Upgrade removed")

    def _response_policy(self, tx: Transaction, resp: Response) -> Headers | None:
        """The response and response_header tables; the headers to send, or None if refused."""
        view = HttpResponse(
            resp.status, resp.reason.decode("latin-1"), version_text(resp.version), []
        )
        try:
            entry = response_entry(self.response, tx.method, resp.status) if self.response else None
            if entry is not None and entry != HTTP_RSP_ACCEPT:
                v = verdict(
                    entry,
                    lambda fn: fn(self._request_view(), self._response_view(view, resp)),
                    f"response[({tx.method!r}, {resp.status})]",
                    RESPONSE,
                )
                if not v.accepted:
                    tx.status = 0
                    self._refuse(v, 502, "response")
                    return None
            saw = bool(view.headers)  # a POLICY function had them
            if saw or self.response_header:
                fields = filter_headers(
                    RESPONSE_HEADER,
                    self.response_header,
                    self._response_view(view, resp).headers,
                    lambda fn, n, v: fn(n, v),
                )
                return raw_headers(check_fields(fields, "response") if saw else fields)
            return end_to_end(resp.headers, resp.fields)
        except HeaderAbort as e:
            tx.status = 0
            self._refuse(Verdict("reject", 502, str(e)), 502, "response")
        except CallbackError as e:
            tx.status = 0
            self.session.policy_failed("response", e)
            self._refuse(Verdict("deny"), 502, "response")
        except PolicyValueError as e:
            tx.status = 0
            self._policy_error(str(e))
        except Exception as e:  # policy code
            tx.status = 0
            self.session.policy_failed(f"response policy for {tx.method} {tx.url[:80]}", e)
            self._send_error(500, POLICY_FAILED)
        return None

    def _request_view(self) -> HttpRequest:
        tx = self.tx
        assert tx is not None
        return HttpRequest(
            tx.method,
            tx.url,
            version_text(tx.head.version),
            text_headers(end_to_end(tx.head.headers, tx.head.fields)),
        )

    def _response_view(self, view: HttpResponse, resp: Response) -> HttpResponse:
        if not view.headers:
            view.headers = text_headers(end_to_end(resp.headers, resp.fields))
        return view

    def _refuse(self, v: Verdict, default_status: int, what: str) -> None:
        tx = self.tx
        if v.action == "abort":
            self.log("policy", 3, f"{what} aborted by policy")
            self._abort()
            return
        status = v.status or default_status
        info = v.info or ("Forbidden by policy." if v.action == "deny" else "Rejected by policy.")
        method = tx.method if tx else "-"
        done = "denied" if v.action == "deny" else "rejected"
        self.log("policy", 3, f"{what} {done}: {method} {status}: {info}")
        self._send_error(status, info)

    def _policy_error(self, reason: str) -> None:
        self.log("error", 1, reason)
        self._send_error(500, POLICY_FAILED)
