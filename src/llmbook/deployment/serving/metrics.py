"""Prometheus metrics of the sentiment service (chapter 15)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


# ----------------------------------------------------------------------------- batching
class Metrics:
    """The server's Prometheus metrics, in their own registry (one per app)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("llmbook_requests_total", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram(
            "llmbook_request_latency_seconds", "Latency of /v1/sentiment requests",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.batch_size = Histogram("llmbook_batch_size", "Texts per model call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.queue_depth = Gauge("llmbook_queue_depth", "Requests waiting for the model",
                                 registry=self.registry)
        self.queue_capacity = Gauge("llmbook_queue_capacity", "Queue size limit",
                                    registry=self.registry)
        self.model = Info("llmbook_model", "The served model", registry=self.registry)
