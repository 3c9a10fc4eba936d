"""Prometheus metrics of one server instance (own registry, so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Request latency on CPU spans ~1 ms (rejected) to seconds (a full batch under load).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        model_labels = ("model_name", "model_version")
        self.request_latency = Histogram(
            "acgs_server_request_latency_seconds",
            "Time from request arrival to response, by endpoint and model.",
            ("endpoint", *model_labels),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "acgs_server_requests",
            "Requests answered, by endpoint, HTTP status code and model.",
            ("endpoint", "status_code", *model_labels),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "acgs_server_batch_size",
            "Requests generated together in one model call.",
            model_labels,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_latency = Histogram(
            "acgs_server_batch_generate_seconds",
            "Wall time of one batched generate call (tokenize + generate + decode).",
            model_labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "acgs_server_queue_depth", "Requests waiting for a batch slot.", registry=self.registry
        )
        self.model_info = Info(
            "acgs_server_model",
            "The model this server serves (version, digest, constitutional hash).",
            registry=self.registry,
        )
        self.ready = Gauge("acgs_server_ready", "1 when the model is verified and loaded.", registry=self.registry)
        self.load_seconds = Gauge(
            "acgs_server_model_load_seconds", "Time spent verifying, loading and warming the model.",
            registry=self.registry,
        )
        self.interactions_logged = Counter(
            "acgs_server_interactions_logged", "Interaction records written to disk.", registry=self.registry
        )
        self.interactions_dropped = Counter(
            "acgs_server_interactions_dropped",
            "Interaction records dropped because the writer queue was full.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
