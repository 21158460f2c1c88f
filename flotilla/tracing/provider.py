"""One tracer provider per process: resource, propagators, sampler and exporter."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from flotilla.tracing.xray import XRayPropagator

if TYPE_CHECKING:
    from flotilla.config.settings import PlatformSettings

log = logging.getLogger(__name__)

# Downward-API variables the chart sets, mapped to OpenTelemetry's Kubernetes resource attributes.
KUBERNETES_ENV = {
    "K8S_POD_NAME": "k8s.pod.name",
    "K8S_NAMESPACE_NAME": "k8s.namespace.name",
    "K8S_NODE_NAME": "k8s.node.name",
}


@dataclass(frozen=True)
class TracingConfig:
    service: str
    version: str = "0.0.0-dev"
    environment: str = "local"
    sample_ratio: float = 1.0
    trace_file: Path = Path(".flotilla/traces.jsonl")
    extra_resource: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_platform(cls, service: str, platform: PlatformSettings) -> TracingConfig:
        return cls(
            service=service,
            version=platform.service_version,
            environment=platform.env,
            sample_ratio=platform.trace_sample_ratio,
            trace_file=platform.trace_file,
        )


_lock = threading.Lock()
_state: dict[str, object] = {}


def init_tracing(config: TracingConfig, exporter: SpanExporter | None = None) -> TracerProvider:
    """Create this process's provider once; a forked child (a gunicorn worker) gets its own.

    The provider is per process, not per app, because OpenTelemetry allows one global provider and
    its batch exporter thread doesn't survive ``fork``.
    """
    with _lock:
        existing = tracer_provider()
        if existing is not None:
            return existing
        sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
        set_propagators(sampler)
        attributes = {
            "service.name": config.service,
            "service.version": config.version,
            "deployment.environment.name": config.environment,
            "deployment.environment": config.environment,
        }
        attributes |= {attr: os.environ[var] for var, attr in KUBERNETES_ENV.items() if os.environ.get(var)}
        attributes |= config.extra_resource
        provider = TracerProvider(
            resource=Resource.create(attributes),
            sampler=sampler,
        )
        provider.add_span_processor(BatchSpanProcessor(exporter or _default_exporter(config)))
        _state["provider"] = provider
        _state["pid"] = os.getpid()
        _set_global(provider)
        return provider


def set_propagators(sampler: Sampler | None = None) -> None:
    """Make the API's global propagator the chassis' one: AWS X-Ray, W3C tracecontext and baggage.

    ``sampler`` decides for an X-Ray header without ``Sampled`` (the ALB's); without it, the global
    provider's sampler does (``flotilla.tracing.xray``).
    """
    propagate.set_global_textmap(
        CompositePropagator(
            # X-Ray first so a W3C traceparent, when present too, has the last word.
            [XRayPropagator(sampler), TraceContextTextMapPropagator(), W3CBaggagePropagator()]
        )
    )


def _this_process(key: str) -> object:
    """What ``init_tracing`` made in this process (not one inherited across a fork), or None."""
    return _state.get(key) if _state.get("pid") == os.getpid() else None


def add_span_processor(processor: SpanProcessor) -> None:
    """Send this process's spans to one more processor too (a test's, a second exporter)."""
    provider = tracer_provider()
    if provider is None:
        raise RuntimeError("init_tracing() has not run in this process")
    provider.add_span_processor(processor)


def tracer_provider() -> TracerProvider | None:
    provider = _this_process("provider")
    return provider if isinstance(provider, TracerProvider) else None


def _default_exporter(config: TracingConfig) -> SpanExporter:
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from flotilla.tracing.exporter import JsonLinesSpanExporter

    return JsonLinesSpanExporter(config.trace_file)


def _set_global(provider: TracerProvider) -> None:
    """Make ``provider`` the API's global unless one is already set (the API refuses a second).

    A forked child keeps its parent's global; the SDK restarts that provider's export thread
    after ``fork``, so its spans still leave the process.
    """
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
