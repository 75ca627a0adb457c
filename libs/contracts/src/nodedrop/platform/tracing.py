"""OpenTelemetry, off unless configured: one trace from the API request to each node's run.

The trace context travels *inside* the events (``ExecutionRequested.trace_context``, copied by
the scheduler into every ``NodeReady``), not only in message headers: it is then part of the
record and survives a scheduler's rebuild from the stream.

``NODEDROP_OTEL_EXPORTER`` chooses the exporter: unset or ``none`` (off: the API's no-op tracer,
nothing is recorded), ``console`` (spans on stdout), ``otlp`` (OTLP over HTTP, needs the
``opentelemetry-exporter-otlp-proto-http`` package and its usual ``OTEL_EXPORTER_OTLP_*``
settings), or ``jsonl:PATH`` (one JSON object per span appended to PATH; for local debugging
and the tests).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

TraceContext = dict[str, str]


class JsonLinesExporter(SpanExporter):
    """Appends each finished span to a file as one line of JSON."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(json.loads(span.to_json())) + "\n" for span in spans)
        with self._lock, self._path.open("a") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS


def setup_tracing(service: str, exporter: str | None) -> None:
    """Install a tracer provider for ``service`` if an exporter is configured."""
    if not exporter or exporter == "none":
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"nodedrop-{service}"}))
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter.startswith("jsonl:"):
        path = Path(exporter.removeprefix("jsonl:"))
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,  # optional: only imported when asked for
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise ValueError(f"unknown NODEDROP_OTEL_EXPORTER {exporter!r}")
    trace.set_tracer_provider(provider)


def current_context() -> TraceContext | None:
    """The active span's context as a carrier (``traceparent``...), or None when tracing is off."""
    carrier: TraceContext = {}
    propagate.inject(carrier)
    return carrier or None


def attach(carrier: TraceContext | None) -> context.Context:
    """The context a carrier describes, to start child spans in."""
    return propagate.extract(carrier or {})


def shutdown() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
