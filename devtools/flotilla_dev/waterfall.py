"""Reads the local span file and draws recent traces as indented waterfalls (``flotilla traces``)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BAR_WIDTH = 32


def read_spans(path: Path, tail_bytes: int = 8 * 1024 * 1024) -> list[dict[str, Any]]:
    """The spans in the last ``tail_bytes`` of the file (and its rolled-over ``.1``, if that's all there is)."""
    spans: list[dict[str, Any]] = []
    for candidate in (path.with_suffix(path.suffix + ".1"), path):
        if not candidate.exists():
            continue
        with candidate.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - tail_bytes))
            chunk = fh.read()
        lines = chunk.splitlines()
        if size > tail_bytes and lines:
            lines = lines[1:]  # the first line is probably cut in half
        for line in lines:
            try:
                spans.append(json.loads(line))
            except ValueError:
                continue
    return spans


def group_traces(spans: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Spans grouped by trace, oldest trace first."""
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        traces[span["trace_id"]].append(span)
    return sorted(traces.values(), key=lambda t: min(s["start_ns"] for s in t))


def render_trace(spans: list[dict[str, Any]]) -> str:
    """One trace as a tree, each span with its service, duration and a bar placed on the timeline."""
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        parent = span.get("parent_id")
        children[parent if parent in by_id else None].append(span)
    for kids in children.values():
        kids.sort(key=lambda s: s["start_ns"])
    start = min(s["start_ns"] for s in spans)
    end = max(s["start_ns"] + s["duration_ms"] * 1e6 for s in spans)
    total_ms = (end - start) / 1e6
    services = sorted({s.get("service", "?") for s in spans})
    lines = [f"trace {spans[0]['trace_id']}  {total_ms:.1f} ms  {len(spans)} spans  {', '.join(services)}"]
    label_width = 0
    rows: list[tuple[str, dict[str, Any]]] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        rows.append(("  " * depth + span["name"], span))
        for child in children.get(span["span_id"], []):
            walk(child, depth + 1)

    for root in children[None]:
        walk(root, 0)
    label_width = max(len(f"{label} [{span.get('service', '?')}]") for label, span in rows)
    scale = BAR_WIDTH / max(end - start, 1)
    for label, span in rows:
        offset = int((span["start_ns"] - start) * scale)
        width = max(1, int(span["duration_ms"] * 1e6 * scale))
        bar = " " * offset + "█" * min(width, BAR_WIDTH - offset)
        flag = " !" if span.get("status") == "error" else ""
        name = f"{label} [{span.get('service', '?')}]"
        lines.append(f"  {name:<{label_width}}  {span['duration_ms']:>9.2f} ms  |{bar:<{BAR_WIDTH}}|{flag}")
    return "\n".join(lines)


def render_recent(path: Path, limit: int = 5, trace_id: str | None = None) -> str:
    spans = read_spans(path)
    traces = group_traces(spans)
    if trace_id:
        traces = [t for t in traces if t[0]["trace_id"] == trace_id]
    if not traces:
        return f"no traces in {path}" + (f" with id {trace_id}" if trace_id else "")
    return "\n\n".join(render_trace(t) for t in traces[-limit:])
