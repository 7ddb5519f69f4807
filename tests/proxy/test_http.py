"""HttpProxy's behaviour with in-memory transports: framing, policy, errors, timers."""

from __future__ import annotations

import inspect

import pytest

from tests.proxy.harness import ProxyHarness
from zfw.http.policy import (
    HTTP_HDR_DROP,
    HTTP_HDR_INSERT,
    HTTP_HDR_POLICY,
    HTTP_HDR_REPLACE,
    HTTP_REQ_ABORT,
    HTTP_REQ_ACCEPT,
    HTTP_REQ_POLICY,
    HTTP_REQ_REJECT,
    HTTP_RSP_ACCEPT,
    HTTP_RSP_DENY,
    HTTP_RSP_POLICY,
)
from zfw.proxy.base import Handover
from zfw.proxy.http import HttpProxy, split_host

GET = b"GET /a HTTP/1.1\r\nHost: www.example\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


class Harness(ProxyHarness):
    """HttpProxy between a fake client and fake servers."""

    def __init__(self, proxy_class=HttpProxy, **attrs):
        super().__init__(proxy_class, ("198.51.100.2", 80), **attrs)


def test_get_relayed_canonically_without_hop_by_hop_headers():
    h = Harness()
    h.send(
        b"GET /a?b=1 HTTP/1.1\r\nHost:www.example\r\nConnection: keep-alive, X-Hop\r\n"
        b"X-Hop: 1\r\nKeep-Alive: 5\r\nAccept:  */*  \r\n\r\n"
    )
    st = h.connect()
    assert st.value() == b"GET /a?b=1 HTTP/1.1\r\nHost: www.example\r\nAccept: */*\r\n\r\n"
    h.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nProxy-Connection: x\r\n\r\nhi")
    assert h.to_client() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    assert (
        "http.request(3): (i/http:1): GET http://www.example/a?b=1 -> 200; client=192.0.2.2; "
        "server=198.51.100.2:80; bytes=2"
    ) in h.log()


def test_a_small_response_goes_to_the_client_in_one_write():
    h = Harness()
    writes = []
    h.client.write = writes.append
    h.send(GET)
    h.connect()
    h.reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
    assert writes == [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"]


def test_keep_alive_reuses_the_server_connection():
    h = Harness()
    h.send(GET)
    h.connect()
    h.reply(OK)
    h.send(GET)
    assert not h.pending and h.to_server().count(b"GET /a") == 2
    h.reply(OK)
    assert h.to_client() == OK * 2 and not h.ct.disconnecting


def test_server_hears_close_when_the_client_connection_ends_with_the_request():
    # So the server closes first and the TIME_WAIT is the server's, not the firewall's.
    for request, kw in (
        (b"GET /a HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n", {}),
        (b"GET /a HTTP/1.0\r\n\r\n", {}),
        (GET, {"max_keepalive_requests": 1}),
    ):
        h = Harness(**kw)
        h.send(request)
        h.connect()
        assert h.to_server().endswith(b"\r\nConnection: close\r\n\r\n"), request


def test_server_hears_no_close_while_the_client_keeps_its_connection():
    h = Harness()
    h.send(GET)
    h.connect()
    assert h.to_server() == GET


def test_server_connection_close_means_a_new_connection_next_time():
    h = Harness()
    h.send(GET)
    h.connect()
    h.reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    h.servers[0][0].readConnectionLost()  # the server closes, as it said it would
    assert h.servers[0][1].disconnecting
    h.send(GET)
    assert h.pending
    h.connect()
    assert h.to_server().startswith(b"GET /a")


def _closing_transaction() -> Harness:
    """A harness whose client ended its connection with a request, answered."""
    h = Harness()
    h.send(b"GET /a HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n")
    h.connect()
    h.reply(OK)
    return h


def test_a_server_told_to_close_closes_first():
    # zfw waits for its FIN, so the server, not the firewall, keeps the TIME_WAIT.
    h = _closing_transaction()
    assert h.to_client().endswith(b"\r\nConnection: close\r\n\r\nhi")
    server_ep, server = h.servers[0]
    assert h.ct.disconnecting and not server.disconnecting
    server_ep.readConnectionLost()
    assert server.disconnecting


def test_a_server_that_does_not_close_is_closed_after_the_wait():
    h = _closing_transaction()
    server = h.servers[0][1]
    h.clock.advance(h.proxy.server_close_wait - 0.1)
    assert not server.disconnecting
    h.clock.advance(0.2)
    assert server.disconnecting


def test_a_server_sending_after_its_last_response_is_aborted():
    h = _closing_transaction()
    h.reply(b"more")
    server = h.servers[0][1]
    assert server.disconnecting  # StringTransport.abortConnection: disconnected at once
    assert not [c for c in h.clock.getDelayedCalls() if "loseConnection" in repr(c)]  # no wait


def test_pipelined_requests_are_answered_in_order():
    h = Harness()
    h.send(GET + b"HEAD /b HTTP/1.1\r\nHost: www.example\r\n\r\n")
    st = h.connect()
    assert st.value().count(b"HTTP/1.1\r\n") == 1  # the second waits for the first answer
    h.reply(OK)
    assert h.to_server().endswith(b"HEAD /b HTTP/1.1\r\nHost: www.example\r\n\r\n")
    h.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    assert h.to_client() == OK + b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"


def test_chunked_upload_is_rechunked():
    h = Harness()
    h.send(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n")
    h.connect()
    h.send(b"2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n")
    assert h.to_server() == (
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )


def test_expect_100_continue_is_relayed():
    h = Harness()
    h.send(b"POST /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    h.connect()
    assert b"Expect: 100-continue" in h.to_server()
    h.reply(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert h.to_client() == b"HTTP/1.1 100 Continue\r\n\r\n"
    h.send(b"abc")
    assert h.to_server() == b"abc"
    h.reply(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 201 Created")


def test_head_response_keeps_content_length_and_has_no_body():
    h = Harness()
    h.send(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    h.connect()
    h.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    h.send(GET)
    assert h.to_server().endswith(GET)  # the connection is in sync: reused


def test_close_delimited_response_is_chunked_to_an_http11_client():
    h = Harness()
    h.send(GET)
    h.connect()
    h.reply(b"HTTP/1.0 200 OK\r\n\r\nabc")
    h.servers[-1][0].readConnectionLost()
    assert h.to_client() == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert not h.ct.disconnecting


def test_http10_client_gets_close_delimited_and_connection_closed():
    h = Harness()
    h.send(b"GET / HTTP/1.0\r\n\r\n")
    h.connect()
    assert b"Host: 198.51.100.2\r\n" in h.to_server()
    h.reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
    assert h.to_client() == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhi"
    assert h.ct.disconnecting


def test_delete_is_rejected_without_contacting_the_server():
    h = Harness()
    h.send(b"DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert not h.pending
    out = h.to_client()
    assert out.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"i/http:1" in out and h.ct.disconnecting
    assert "http.policy(3): (i/http:1): request rejected: DELETE 405" in h.log()


def test_policy_function_rewrites_url_and_headers():
    class P(HttpProxy):
        def config(self):
            self.request["GET"] = (HTTP_REQ_POLICY, self.rewrite)

        def rewrite(self, request):
            assert request.header("host") == "www.example"
            request.url = "/new" + request.url
            request.headers.append(("X-Seen", "yes"))
            return HTTP_REQ_ACCEPT

    h = Harness(P)
    h.send(GET)
    h.connect()
    assert h.to_server() == b"GET /new/a HTTP/1.1\r\nHost: www.example\r\nX-Seen: yes\r\n\r\n"


def test_policy_function_answers_with_its_own_error():
    class P(HttpProxy):
        def config(self):
            self.request["GET"] = (HTTP_REQ_POLICY, lambda r: (HTTP_REQ_REJECT, 451, "no"))

    h = Harness(P)
    h.send(GET)
    assert h.to_client().startswith(b"HTTP/1.1 451 Unavailable For Legal Reasons")


def test_abort_closes_without_an_answer():
    h = Harness()
    h.proxy.request["GET"] = HTTP_REQ_ABORT
    h.send(GET)
    assert h.to_client() == b"" and h.ct.disconnecting


def test_header_tables():
    h = Harness()
    h.proxy.request_header.update(
        {
            "User-Agent": (HTTP_HDR_REPLACE, "zfw"),
            "cookie": HTTP_HDR_DROP,
            "X-Via": (HTTP_HDR_INSERT, "zfw"),
            "X-Id": (HTTP_HDR_POLICY, lambda n, v: (HTTP_HDR_REPLACE, v.upper())),
        }
    )
    h.send(b"GET / HTTP/1.1\r\nHost: h\r\nuser-agent: curl\r\nCookie: a\r\nX-Id: ab\r\n\r\n")
    h.connect()
    assert h.to_server() == (
        b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: zfw\r\nX-Id: AB\r\nX-Via: zfw\r\n\r\n"
    )


def test_policy_cannot_insert_framing_or_bad_values():
    h = Harness()
    h.proxy.request_header["Transfer-Encoding"] = (HTTP_HDR_INSERT, "chunked")
    h.send(GET)
    assert h.to_client().startswith(b"HTTP/1.1 500 ")
    assert "Transfer-Encoding is set by zfw" in h.log() and not h.pending

    h = Harness()
    h.proxy.request_header["X-A"] = (HTTP_HDR_INSERT, "a\r\nX-Injected: 1")
    h.send(GET)
    assert h.to_client().startswith(b"HTTP/1.1 500 ") and not h.pending


def test_response_table_with_wildcards():
    h = Harness()
    h.proxy.response[("*", 404)] = (HTTP_RSP_DENY, 403, "hidden")
    h.send(GET)
    h.connect()
    h.reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 403 Forbidden")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
    ],
)
def test_invalid_request_is_answered_400_and_never_forwarded(request_bytes):
    h = Harness()
    h.send(request_bytes)
    assert h.to_client().startswith(b"HTTP/1.1 400 Bad Request") and not h.pending
    assert "http.violation(1)" in h.log()


def test_invalid_response_gives_502_and_closes_both():
    h = Harness()
    h.send(GET)
    h.connect()
    h.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 502 Bad Gateway")
    assert h.ct.disconnecting and h.servers[0][1].disconnecting
    assert "response: more than one Content-Length" in h.log()


def test_server_sending_two_responses_is_not_reused():
    h = Harness()
    h.send(GET)
    h.connect()
    h.reply(OK + OK)
    assert h.servers[0][1].disconnecting
    assert h.to_client() == OK


def test_slow_request_head_gets_408():
    h = Harness(header_timeout=5)
    h.send(b"GET / HTTP/1.1\r\n")
    h.clock.pump([1] * 5)
    assert h.to_client().startswith(b"HTTP/1.1 408 Request Timeout")


def test_silent_client_is_closed_quietly():
    h = Harness(header_timeout=5)
    h.clock.pump([1] * 5)
    assert h.to_client() == b"" and h.ct.disconnecting


def test_keepalive_idle_then_close():
    h = Harness(keepalive_timeout=7)
    h.send(GET)
    h.connect()
    h.reply(OK)
    h.clock.pump([1] * 6)
    assert not h.ct.disconnecting
    h.clock.pump([1] * 2)  # the idle watch looks once a second
    assert h.ct.disconnecting


def test_response_timeout_gives_504():
    h = Harness(response_timeout=3)
    h.send(GET)
    h.connect()
    h.clock.pump([1] * 3)
    assert h.to_client().startswith(b"HTTP/1.1 504 Gateway Timeout")


def test_connect_failure_gives_502():
    from twisted.internet.error import ConnectionRefusedError
    from twisted.python.failure import Failure

    h = Harness()
    h.send(GET)
    _ok, failed = h.pending.pop()
    failed(Failure(ConnectionRefusedError()))
    assert h.to_client().startswith(b"HTTP/1.1 502 Bad Gateway")


def test_a_websocket_not_permitted_is_refused_with_its_reason():
    from zfw.log import Log, LogSpec

    h = Harness()
    h.proxy.session._log = Log(LogSpec.parse(""), h.out)  # the default levels
    h.proxy._request_log = h.proxy.session.log_writer("http.request", 3)
    h.send(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert not h.pending  # never reaches the server
    assert h.to_client().startswith(b"HTTP/1.1 403 Forbidden")
    assert (
        "http.policy(3): (i/http:1): request rejected: Upgrade to websocket is not permitted."
        in h.log()
    )
    assert "GET http://h/ws -> 403" in h.log()
    assert h.proxy.session.stats.proxy["http_upgrades_refused"] == 1


def test_another_upgrade_not_permitted_is_removed_and_said():
    # h2c: the request is answered as by a server that ignores Upgrade (curl falls back).
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")  # fmt: skip
    h.connect()
    assert b"Upgrade" not in h.to_server()
    assert "http.policy(3): (i/http:1): upgrade to h2c not permitted; Upgrade removed" in h.log()
    assert h.proxy.session.stats.proxy["http_upgrades_refused"] == 1


def test_permitted_websocket_upgrade_becomes_a_relay():
    h = Harness(permit_upgrade=("websocket",))
    h.send(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    h.connect()
    assert h.to_server().endswith(b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    h.reply(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxy"
    )
    assert h.to_client() == (
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nxy"
    )
    h.send(b"\x81\x00raw")
    assert h.to_server() == b"\x81\x00raw"
    assert "-> 101" not in h.log()  # the access line comes when it ends, with its bytes
    h.reply(b"12345")
    h.servers[-1][0].connectionLost(None)
    line = next(x for x in h.log().splitlines() if "GET http://h/ws -> 101" in x)
    assert "bytes=7;" in line and "client_bytes=5" in line  # xy12345 and \x81\x00raw
    stats = h.proxy.session.stats.proxy
    assert stats["http_upgrades"] == 1 and stats["http_requests_1xx"] == 1
    assert h.closed
    # The service's byte counters take the session's traffic, relayed bytes included.
    request = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    switch = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    assert h.proxy.session.traffic() == (len(request) + 5, len(switch) + 7)


def test_unrequested_101_is_a_violation():
    h = Harness()
    h.send(GET)
    h.connect()
    h.reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 502 ")


def test_error_pages_from_templates_and_silent(tmp_path):
    (tmp_path / "405.html").write_text("<p>@STATUS@ for @SESSION@: @INFO@</p>")
    h = Harness(error_files_dir=str(tmp_path))
    h.proxy.request["DELETE"] = (HTTP_REQ_REJECT, "not <here>")
    h.send(b"DELETE / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert h.to_client().endswith(b"\r\n\r\n<p>405 for i/http:1: not &lt;here&gt;</p>")

    h = Harness(error_silent=True)
    h.send(b"DELETE / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert h.to_client().endswith(
        b"Content-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    )


def test_a_relative_error_files_dir_starts_from_the_policy_files_directory(tmp_path):
    from types import SimpleNamespace

    (tmp_path / "errors").mkdir()
    (tmp_path / "errors" / "405.html").write_text("<p>ours: @STATUS@</p>")
    h = Harness(error_files_dir="errors")
    h.proxy.session.policy = SimpleNamespace(path=str(tmp_path / "policy.py"))
    h.proxy.request["DELETE"] = (HTTP_REQ_REJECT, "no")
    h.send(b"DELETE / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert h.to_client().endswith(b"\r\n\r\n<p>ours: 405</p>")


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        (b"198.51.100.2", True),
        (b"198.51.100.2:80", True),
        (b"198.51.100.3", False),
        (b"198.51.100.2:8080", False),
    ],
)
def test_verify_host_with_literals(host, ok):
    h = Harness(verify_host=True)
    h.send(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert bool(h.pending) is ok
    if not ok:
        assert h.to_client().startswith(b"HTTP/1.1 409 Conflict")


def test_body_streams_with_backpressure():
    h = Harness()
    h.send(GET)
    st = h.connect()
    h.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    h.ct.producer.pauseProducing()  # the client's buffer is full
    assert st.producerState == "paused"
    h.ct.producer.resumeProducing()
    assert st.producerState == "producing"


def test_client_waits_while_a_response_is_pending():
    h = Harness()
    h.send(GET)
    h.connect()
    assert h.ct.producerState == "producing"
    h.send(GET)  # pipelined: no further requests are read meanwhile
    assert h.ct.producerState == "paused"
    h.reply(OK)
    assert h.ct.producerState == "producing"


def test_policy_tables_are_per_session():
    a, b = Harness(), Harness()
    a.proxy.request["DELETE"] = HTTP_REQ_ACCEPT
    assert "DELETE" not in b.proxy.request


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a.example", ("a.example", None)),
        ("A.example:8080", ("a.example", 8080)),
        ("[2001:db8::1]:81", ("2001:db8::1", 81)),
        ("[2001:db8::1]", ("2001:db8::1", None)),
        ("a:b", (None, None)),
        (":80", (None, None)),
        ("[::1", (None, None)),
    ],
)
def test_split_host(value, expected):
    assert split_host(value) == expected


def test_a_bad_request_behind_a_good_one_is_answered_after_it():
    h = Harness()
    h.send(GET + b"GET /b HTTP/1.1\r\nHost: www.example\r\nContent-Length: 1x\r\n\r\n")
    st = h.connect()
    assert st.value() == GET  # the good one went to the server ...
    h.reply(OK)
    out = h.to_client()
    assert out.startswith(OK + b"HTTP/1.1 400 ")  # ... was answered, then the 400
    assert h.client.transport.disconnecting
    assert "malformed Content-Length" in h.log()


def test_a_framing_lookalike_never_reaches_the_server():
    h = Harness()
    h.send(b"POST / HTTP/1.1\r\nHost: www.example\r\nContent_Length: 5\r\n\r\nhello")
    assert h.to_client().startswith(b"HTTP/1.1 400 ")
    assert "looks like a framing header" in h.log()


def test_a_framing_lookalike_dropped_by_policy():
    h = Harness(framing_lookalikes="drop")
    h.send(b"GET /a HTTP/1.1\r\nHost: www.example\r\nTransfer_Encoding: chunked\r\n\r\n")
    st = h.connect()
    assert st.value() == GET


def test_a_host_the_servers_certificate_does_not_name_gets_421():
    """Under TLS inspection the layer below says which names the server's certificate
    covers: a request for another (domain fronting) never reaches the server."""
    h = Harness(handover=Handover(covers=lambda host: host == "www.example"))
    h.send(b"GET /a HTTP/1.1\r\nHost: other.example\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 421 Misdirected Request\r\n")
    assert not h.pending and "not named by the server's certificate" in h.log()
    h = Harness(handover=Handover(covers=lambda host: host == "www.example"))
    h.send(b"GET /a HTTP/1.1\r\nHost: www.example:443\r\n\r\n")
    assert h.connect().value().startswith(b"GET /a HTTP/1.1\r\n")


class Flaky(HttpProxy):
    """A policy whose function answers a bool for /bad (a mistake) and raises for /oops."""

    def config(self):
        self.request["GET"] = (HTTP_REQ_POLICY, self.check)
        self.response[("*", 404)] = (HTTP_RSP_POLICY, self.check_response)
        self.request_header["X-Id"] = (HTTP_HDR_POLICY, lambda name, value: value == "1")

    def check(self, request):
        if request.url == "/oops":
            raise KeyError("oops")
        return True if request.url == "/bad" else HTTP_REQ_ACCEPT

    def check_response(self, request, response):
        return None


def _line(fn):
    return f"{__file__}:{inspect.getsourcelines(fn)[1]}"


def test_a_policy_function_answering_a_bool_refuses_that_request_with_one_line():
    h = Harness(Flaky)
    h.send(b"GET /bad HTTP/1.1\r\nHost: h\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 403 Forbidden") and not h.pending
    lines = [ln for ln in h.log().splitlines() if "core.policy" in ln]
    assert len(lines) == 1 and "Traceback" not in h.log()
    said = "request['GET']: POLICY function Flaky.check returned True, not an HTTP_REQ_* action"
    assert f"{_line(Flaky.check)}: {said}; refused" in lines[0]
    assert h.proxy.session.stats.proxy["policy_failures"] == 1
    assert "http.policy(3): (i/http:1): request denied: GET 403" in h.log()

    # The next request (the next connection: an error closes it) still works ...
    h2 = Harness(Flaky, like=h)
    h2.send(b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n")
    h2.connect()
    assert h2.to_server().startswith(b"GET /good HTTP/1.1\r\n")
    # ... and the same mistake again is counted, not logged again within 10 s.
    h3 = Harness(Flaky, like=h)
    h3.send(b"GET /bad HTTP/1.1\r\nHost: h\r\n\r\n")
    assert h3.to_client().startswith(b"HTTP/1.1 403 Forbidden")
    assert len([ln for ln in h.log().splitlines() if "core.policy" in ln]) == 1
    assert h.proxy.session.stats.proxy["policy_failures"] == 2


def test_a_policy_function_that_raises_refuses_that_request_naming_both_lines():
    h = Harness(Flaky)
    h.send(b"GET /oops HTTP/1.1\r\nHost: h\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 403 Forbidden") and not h.pending
    (line,) = [ln for ln in h.log().splitlines() if "core.policy" in ln]
    raised_at = inspect.getsourcelines(Flaky.check)[1] + 2
    said = "request['GET']: POLICY function Flaky.check raised KeyError: 'oops'"
    assert f"{_line(Flaky.check)}: {said} (at {__file__}:{raised_at}); refused" in line


def test_response_and_header_policy_functions_answering_wrongly_refuse():
    h = Harness(Flaky)
    h.send(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
    h.connect()
    h.reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 502 Bad Gateway")
    assert f"{_line(Flaky.check_response)}: response[('GET', 404)]: POLICY function " in h.log()
    assert "returned nothing; refused" in h.log()

    h = Harness(Flaky)
    h.send(b"GET /a HTTP/1.1\r\nHost: h\r\nX-Id: 1\r\n\r\n")
    assert h.to_client().startswith(b"HTTP/1.1 403 Forbidden") and not h.pending
    said = "request_header['X-Id']: POLICY function <lambda> returned True, not an HTTP_HDR_"
    assert said in h.log()


@pytest.mark.parametrize(
    "field",
    [("Transfer-Encoding", "chunked"), ("X-Bad", "a\r\nInjected: 1"), ("Bad Name", "1")],
)
def test_a_policy_function_cannot_smuggle_fields_through_the_view(field):
    class P(HttpProxy):
        def config(self):
            self.request["GET"] = (HTTP_REQ_POLICY, self.add)
            self.response[("*", "*")] = (HTTP_RSP_POLICY, self.add_to_response)

        def add(self, request):
            if request.url == "/a":
                request.headers.append(field)
            return HTTP_REQ_ACCEPT

        def add_to_response(self, request, response):
            response.headers.append(field)
            return HTTP_RSP_ACCEPT

    h = Harness(P)
    h.send(GET)
    assert h.to_client().startswith(b"HTTP/1.1 500 ") and not h.pending
    assert "http.error(1)" in h.log()

    h = Harness(P)
    h.send(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n")
    h.connect()
    h.reply(OK)
    assert h.to_client().startswith(b"HTTP/1.1 500 ")


def test_a_session_may_yield_between_requests_only():
    """Near a limit (zfw.engine.fair) the busiest address's sessions that are reading a
    request head, or idle between requests, may be closed to make room."""
    h = Harness()
    assert h.proxy.may_yield()  # no head yet
    h.send(b"GET /a HTTP/1.1\r\nHost: www.exa")
    assert h.proxy.may_yield()  # a head still arriving (slowloris)
    h.send(b"mple\r\n\r\n")
    h.connect()
    assert not h.proxy.may_yield()  # a request in progress
    h.reply(OK)
    assert h.to_client().endswith(b"hi")
    assert h.proxy.may_yield()  # idle on a kept connection
