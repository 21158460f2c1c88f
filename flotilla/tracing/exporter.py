"""A span exporter that appends JSON lines to a local file: the trace sink when there is no collector."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

log = logging.getLogger(__name__)

KIND_NAMES = {kind: kind.name.lower() for kind in SpanKind}


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """The fields ``flotilla traces`` needs to draw a waterfall, and little more."""
    ctx = span.get_span_context()
    parent = span.parent
    assert ctx is not None
    start = span.start_time or 0
    end = span.end_time or start
    doc: dict[str, Any] = {
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "kind": KIND_NAMES.get(span.kind, "internal"),
        "service": span.resource.attributes.get("service.name", "?"),
        "start_ns": start,
        "duration_ms": round((end - start) / 1e6, 3),
        "status": "error" if span.status.status_code is StatusCode.ERROR else "ok",
    }
    if span.attributes:
        doc["attributes"] = dict(span.attributes)
    return doc


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per span; several processes may share the file.

    Each batch goes out in a single ``write`` on an ``O_APPEND`` descriptor, so workers of several
    services can share one file without interleaving lines. The file rolls over to ``.1`` past
    ``max_bytes`` so a long-running local stack doesn't fill the disk.
    """

    def __init__(self, path: Path | str, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._broken = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = b"".join(orjson.dumps(span_to_dict(s), default=str) + b"\n" for s in spans)
        with self._lock:
            try:
                fd = self._open()
                os.write(fd, data)
                if os.fstat(fd).st_size > self.max_bytes:
                    os.replace(self.path, self.path.with_suffix(self.path.suffix + ".1"))
                    self._close()
            except OSError as err:
                if not self._broken:  # say it once, not per batch
                    log.warning("cannot write spans to %s: %s", self.path, err)
                    self._broken = True
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
