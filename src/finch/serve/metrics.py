"""What `finch serve` reports at /metrics, in the Prometheus text format (prometheus-client).

Histograms, so a scraper derives p50/p90/p99 (histogram_quantile) and requests/s and tokens/s (rate) itself; each
app has its own registry, so two servers in one process (the tests) never share counts. The process collector adds
process_resident_memory_bytes and CPU seconds.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServeMetrics:
    def __init__(self, queued: Callable[[], float], active: Callable[[], float]):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "finch_requests", "Requests answered, by route and HTTP status.", ["route", "status"], registry=r
        )
        self.first_token = Histogram(
            "finch_time_to_first_token_seconds",
            "From a request's arrival to its first generated token.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "finch_request_duration_seconds",
            "From a generation request's arrival to its last token.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.completion_tokens = Counter("finch_completion_tokens", "Tokens generated.", registry=r)
        self.prompt_tokens = Counter("finch_prompt_tokens", "Prompt tokens read.", registry=r)
        self.cancelled = Counter("finch_cancelled_requests", "Generations stopped by a client going away.", registry=r)
        Gauge("finch_queue_depth", "Requests waiting for a slot.", registry=r).set_function(queued)
        Gauge("finch_active_slots", "Requests being decoded now.", registry=r).set_function(active)

    def render(self) -> bytes:
        return generate_latest(self.registry)
