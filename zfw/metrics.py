"""Prometheus exposition of an instance's counters (off unless ``--metrics HOST:PORT``).

prometheus-client writes the text format; a collector reads zfw's own counters
(:mod:`zfw.stats`) when scraped, so counting stays a dictionary increment.
Rendering runs on the reactor thread (the counters are the reactor's) and costs
one pass over the services and the running sessions' connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.web.resource import Resource
from twisted.web.server import Site

from zfw.engine.session import Session
from zfw.errors import NetError

if TYPE_CHECKING:
    from zfw.twistd import ZfwService


class InstanceCollector:
    """The counters of the service's engine as metric families."""

    def __init__(self, service: ZfwService):
        self.service = service

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        engine = svc.engine
        if engine is None:
            return
        by_service: dict[str, list[Session]] = {}
        for s in engine.sessions.active:
            by_service.setdefault(s.service.name, []).append(s)
        counters = {
            name: engine.stats.service(name).snapshot(by_service.get(name, ()))
            for name in svc.policy.instance.services
        }
        yield from families(svc, counters)


def families(svc: ZfwService, counters: dict[str, dict[str, Any]]) -> list[Metric]:
    """The metric families of the services' ``counters`` (as ``zfw status`` gives them)."""
    inst = svc.instance
    labels = ["instance", "service"]
    running = GaugeMetricFamily("zfw_sessions_running", "Sessions running", labels=labels)
    limit = GaugeMetricFamily("zfw_sessions_limit", "Sessions allowed at once", labels=labels)
    total = CounterMetricFamily("zfw_sessions", "Sessions admitted", labels=labels)
    refused = CounterMetricFamily(
        "zfw_sessions_refused", "Sessions refused", labels=[*labels, "reason"]
    )
    evicted = CounterMetricFamily(
        "zfw_sessions_evicted",
        "Sessions closed to make room for other client addresses near a limit",
        labels=labels,
    )
    failures = CounterMetricFamily(
        "zfw_connect_failures", "Connections to servers that failed", labels=labels
    )
    traffic = CounterMetricFamily("zfw_received_bytes", "Bytes received", labels=[*labels, "side"])
    rate = GaugeMetricFamily(
        "zfw_session_rate", "New sessions a second", labels=[*labels, "window"]
    )
    proxy = CounterMetricFamily(
        "zfw_proxy_events",
        "Proxy counters (requests by status class, violations, ...)",
        labels=[*labels, "event"],
    )
    for name, service in svc.policy.instance.services.items():
        c = counters.get(name)
        if c is None:
            continue
        lv = [inst, name]
        running.add_metric(lv, c["sessions_running"])
        limit.add_metric(lv, service.max_sessions)
        total.add_metric(lv, c["sessions_total"])
        for reason, n in c["refused"].items():
            refused.add_metric([*lv, reason], n)
        evicted.add_metric(lv, c["evicted"])
        failures.add_metric(lv, c["connect_failures"])
        traffic.add_metric([*lv, "client"], c["bytes_from_client"])
        traffic.add_metric([*lv, "server"], c["bytes_from_server"])
        for window, r in c["rates"].items():
            rate.add_metric([*lv, window], r)
        for event, n in c["proxy"].items():
            proxy.add_metric([*lv, event], n)
    return [running, limit, total, refused, evicted, failures, traffic, rate, proxy]


class MetricsResource(Resource):
    """``GET /metrics``: the registry in Prometheus's text format."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry):
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)


def listen_metrics(
    reactor: Any, address: tuple[str, int], service: ZfwService, resource: Any = None
) -> Any:
    """Serve ``/metrics`` (``resource``, or the service engine's counters) on ``address``;
    :class:`NetError` if it cannot listen."""
    if resource is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(InstanceCollector(service))  # type: ignore[arg-type]
        resource = MetricsResource(registry)
    root = Resource()
    root.putChild(b"metrics", resource)
    site = Site(root)
    site.noisy = False
    site.log = lambda _request: None  # type: ignore[method-assign] # no access log of scrapes
    host, port = address
    try:
        return reactor.listenTCP(port, site, interface=host)
    except Exception as e:
        raise NetError(f"cannot serve metrics on {host}:{port}: {e}") from None
