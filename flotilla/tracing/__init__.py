"""OpenTelemetry tracing set up the way X-Ray on EKS wants it, plus a Flask extension for server spans.

Exports over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (an ADOT collector or the CloudWatch
agent forwards to X-Ray); otherwise spans land in a local JSON-lines file that ``flotilla traces``
prints as a waterfall.
"""

from flotilla.tracing.provider import (
    TracingConfig,
    add_span_processor,
    init_tracing,
    tracer_provider,
)
from flotilla.tracing.server import Tracing

__all__ = [
    "Tracing",
    "TracingConfig",
    "add_span_processor",
    "init_tracing",
    "tracer_provider",
]
