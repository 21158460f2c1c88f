"""An X-Ray propagator that accepts trace headers the way AWS sends them.

The stock ``AwsXRayPropagator`` only continues a trace when ``X-Amzn-Trace-Id`` carries a
``Parent``, and reads a missing ``Sampled`` as "not sampled". The ALB sends neither: it adds
``Root=1-5759e988-bd862e3fe1be46a994272793`` (and may put ``Self=1-...;`` in front), so every
request through it started a new trace, and ALB access logs never joined the traces. This
propagator extracts:

* ``Root`` (required), as the OTel trace id: the 8 hex digits of the epoch then the 24 of the id.
* ``Parent`` when present. Without one, the context is a remote "root" of the ALB's trace (below).
* ``Sampled=1`` as sampled and ``Sampled=0`` as not sampled. A missing ``Sampled`` (or X-Ray's
  ``Sampled=?``) means the caller made no decision, so ours is taken: see below.
* Anything else (``Self``, ``Lineage``, empty pairs) is ignored.

Inject is the stock one: ``Root``, ``Parent`` (the current span) and ``Sampled``, so outgoing calls
carry the same ``Root``.

**No Parent: a synthetic remote parent.** The SDK continues a trace only from a *valid* parent
``SpanContext`` (``Tracer.start_span`` makes a new trace id otherwise), and a span id of 0 is
invalid, so a context with the trace id and no span id would be dropped. The extracted context is
therefore a remote ``SpanContext`` with the Root's trace id and a stand-in span id: the trace id's
low 64 bits (the last 16 hex digits of the Root), or 1 if those are zero. It is deterministic, so
anyone can tell a stand-in from a real parent (``parent.span_id == trace_id & (2**64 - 1)``), and
distinct per trace. The server span's exported parent is that stand-in; no span with that id is
ever exported, so trace views show the server span at the top of the ALB's trace.

**No Sampled: our sampler decides, in the propagator.** ``ParentBased`` follows a valid remote
parent's sampled flag and never asks its root sampler, and any parent we extract has a flag. So
the flag is set to what the sampler would decide for a new trace with that trace id: the one
given to the propagator (the chassis passes its provider's), else the SDK global provider's, else
"sampled" (the SDK's default). With no parent, ``ParentBased`` asks its root, and
``TraceIdRatioBased`` decides from the trace id alone, so the answer is the one a new trace with
this id would get and ``FLOTILLA_TRACE_SAMPLE_RATIO`` applies to ALB traffic as to any other. A
root sampler that looks at the span's name or attributes is asked with neither here.
"""

from __future__ import annotations

import logging
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.aws.aws_xray_propagator import TRACE_HEADER_KEY
from opentelemetry.propagators.textmap import CarrierT, Getter, default_getter
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.trace import SpanKind

__all__ = ["XRayPropagator", "stand_in_span_id"]

log = logging.getLogger(__name__)

_LOW_64: Final = (1 << 64) - 1
_ROOT_LENGTH: Final = 35  # 1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy
_HEX: Final = frozenset("0123456789abcdefABCDEF")


def stand_in_span_id(trace_id: int) -> int:
    """The parent span id extracted for a header with a ``Root`` and no ``Parent``."""
    return (trace_id & _LOW_64) or 1


def _root_trace_id(value: str) -> int | None:
    if len(value) != _ROOT_LENGTH or value[:2] != "1-" or value[10] != "-":
        return None
    digits = value[2:10] + value[11:]
    if not _HEX.issuperset(digits):
        return None
    return int(digits, 16) or None


def _parent_span_id(value: str) -> int | None:
    if len(value) != 16 or not _HEX.issuperset(value):
        return None
    return int(value, 16) or None


class XRayPropagator(AwsXRayPropagator):
    """``X-Amzn-Trace-Id`` as the ALB and other AWS services send it; the stock inject."""

    def __init__(self, sampler: Sampler | None = None) -> None:
        self._sampler = sampler

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        values = getter.get(carrier, TRACE_HEADER_KEY)
        if not values or len(values) != 1 or not values[0]:
            return context
        header = values[0]
        fields: dict[str, str] = {}
        for pair in header.split(";"):
            key, sep, value = pair.partition("=")
            if sep:
                fields.setdefault(key.strip(), value.strip())
        trace_id = _root_trace_id(fields.get("Root", ""))
        if trace_id is None:
            log.debug("X-Ray trace header without a valid Root: %r", header)
            return context
        parent = fields.get("Parent")
        if parent is None:
            span_id = stand_in_span_id(trace_id)
        else:
            parsed = _parent_span_id(parent)
            if parsed is None:
                log.debug("X-Ray trace header with an invalid Parent: %r", header)
                return context
            span_id = parsed
        sampled_flag = fields.get("Sampled")
        if sampled_flag == "1":
            sampled = True
        elif sampled_flag == "0":
            sampled = False
        else:  # absent or "?": the caller left the decision to us
            sampled = self._decide(trace_id)
        span_context = trace.SpanContext(
            trace_id=trace_id,
            span_id=span_id,
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED if sampled else trace.TraceFlags.DEFAULT),
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)

    def _decide(self, trace_id: int) -> bool:
        """What the sampler would decide for a new trace with this id."""
        sampler = self._sampler
        if sampler is None:
            provided = getattr(trace.get_tracer_provider(), "sampler", None)
            sampler = provided if isinstance(provided, Sampler) else None
        if sampler is None:
            return True
        result = sampler.should_sample(Context(), trace_id, TRACE_HEADER_KEY, SpanKind.SERVER)
        return bool(result.decision.is_sampled())
