"""``/metrics`` of a supervised instance: every worker's counters, summed when scraped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from zfw.metrics import families
from zfw.workers.control import SupervisorController

if TYPE_CHECKING:
    from zfw.workers.supervisor import Supervisor


class _Fixed:
    """A collector of families made already."""

    def __init__(self, made: list[Metric]):
        self.made = made

    def collect(self) -> Iterator[Metric]:
        return iter(self.made)


class SupervisorMetrics(Resource):
    """``GET /metrics``: asks the workers (as ``zfw status`` does), answers the sums and
    ``zfw_worker_sessions_running`` per worker."""

    isLeaf = True

    def __init__(self, sup: Supervisor):
        super().__init__()
        self.sup = sup
        self.controller = SupervisorController(sup)

    def render_GET(self, request: Any) -> Any:
        def answer(status: dict[str, Any]) -> None:
            per_worker = GaugeMetricFamily(
                "zfw_worker_sessions_running",
                "Sessions running in each worker",
                labels=["instance", "worker"],
            )
            for w in status["workers"]:
                if isinstance(w.get("sessions"), int):
                    per_worker.add_metric([self.sup.instance, str(w["worker"])], w["sessions"])
            registry = CollectorRegistry(auto_describe=False)
            made = [*families(self.sup, status["services"]), per_worker]
            registry.register(_Fixed(made))  # type: ignore[arg-type]
            request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
            request.write(generate_latest(registry))
            request.finish()

        def failed(reason: Failure) -> None:
            request.setResponseCode(503)
            request.write(f"workers did not answer: {reason.getErrorMessage()}\n".encode())
            request.finish()

        self.controller.do_status().addCallbacks(answer, failed)
        return NOT_DONE_YET
