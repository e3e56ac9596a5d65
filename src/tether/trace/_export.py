"""Where finished spans go: the local trace store (one transaction per request) and, optionally, an OpenTelemetry
collector over OTLP/HTTP. Neither ever raises into a request: failures are counted and reported once.

Imports the OpenTelemetry SDK; :mod:`tether.trace._tracing` imports this module only when tracing is on.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from tether.trace._store import SpanRow, TraceWriter, iso_utc

log = logging.getLogger("tether.trace")

_MAX_BUFFERED = 1000
"""Stage spans held per open request before they are written on their own (a runaway request stays bounded)."""


class ExportErrors:
    """Counts failed exports; the first failure of each destination is logged as one warning line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._warned: set[str] = set()

    @property
    def count(self) -> int:
        return self._count

    def record(self, destination: str, reason: str) -> None:
        with self._lock:
            self._count += 1
            first = destination not in self._warned
            self._warned.add(destination)
        if first:
            log.warning(
                "tracing: cannot export spans to %s (%s); requests go on, and further export errors are only "
                "counted (Tracing.export_errors)",
                destination,
                reason,
            )


def span_row(span: ReadableSpan) -> SpanRow:
    ctx = span.context
    start = span.start_time or 0
    end = span.end_time or start
    error = span.status.status_code is StatusCode.ERROR
    return SpanRow(
        trace_id=format(ctx.trace_id, "032x") if ctx is not None else "",
        span_id=format(ctx.span_id, "016x") if ctx is not None else "",
        parent=format(span.parent.span_id, "016x") if span.parent is not None else None,
        name=span.name,
        started=iso_utc(start),
        ms=(end - start) / 1e6,
        status="error" if error else "ok",
        error=span.status.description if error else None,
        attributes=dict(span.attributes or {}),
    )


class LocalStoreProcessor(SpanProcessor):
    """Holds a request's stage spans until its root span ends, then writes the request in one transaction.

    Runs in the thread that ends the span (a request pays for one SQLite commit). A stage span that ends after its
    request (a stage left running in another thread) is written on its own.
    """

    def __init__(self, path: Path, errors: ExportErrors) -> None:
        self._writer = TraceWriter(path)
        self._errors = errors
        self._lock = threading.Lock()
        self._open: dict[int, list[SpanRow]] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.parent is None:
            with self._lock:
                self._open[span.context.trace_id] = []

    def on_end(self, span: ReadableSpan) -> None:
        try:
            row = span_row(span)
        except Exception as e:  # a span we cannot read is an export error, never a request's
            self._errors.record(f"the trace store {self._writer.path}", f"unreadable span: {e!r}")
            return
        trace_id = span.context.trace_id if span.context is not None else 0
        with self._lock:
            if span.parent is None:
                spans = self._open.pop(trace_id, [])
                spans.append(row)
                root: SpanRow | None = row
            else:
                held = self._open.get(trace_id)
                if held is not None and len(held) < _MAX_BUFFERED:
                    held.append(row)
                    return
                spans, root = [row], None
        self._write(spans, root)

    def _write(self, spans: Sequence[SpanRow], root: SpanRow | None) -> None:
        try:
            self._writer.write(spans, root)
        except Exception as e:  # sqlite3.Error, OSError, TraceError: counted, never raised into a request
            self._errors.record(f"the trace store {self._writer.path}", f"{type(e).__name__}: {e}")

    def shutdown(self) -> None:
        self._writer.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is held but the spans of requests still running


# -- OTLP ------------------------------------------------------------------------------------------------------

_OTEL_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.common._internal",
    "opentelemetry.exporter.otlp.proto.common._internal.trace_encoder",
)


class _Quiet(logging.Filter):
    """While Tether's exporter runs in a thread, the OpenTelemetry exporter's own log lines (a warning per retry,
    an error per batch) are kept back and the last one becomes the reason in Tether's single warning. Other
    users of OpenTelemetry in the process still see theirs."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(self.local, "active", False):
            if getattr(self.local, "first", None) is None:
                self.local.first = record.getMessage()
            return False
        return True

    def start(self) -> None:
        self.local.active, self.local.first = True, None

    def reason(self) -> str | None:
        """Why the export that just ran failed, from the first line the exporter logged."""
        first: str | None = getattr(self.local, "first", None)
        if first is None:
            return None
        m = _TRANSIENT.match(first)
        return f"{m.group(1)}; retried until the timeout" if m else first


_TRANSIENT = re.compile(r"Transient error (.*) encountered while exporting", re.DOTALL)
_quiet = _Quiet()
for _name in _OTEL_LOGGERS:
    logging.getLogger(_name).addFilter(_quiet)


def otlp_url(endpoint: str) -> str:
    """The collector's traces URL: ``endpoint`` as given, or with ``/v1/traces`` when it names no path."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


class CountingExporter(SpanExporter):
    """An exporter that never raises and counts its failures (the wrapped one's log lines are kept back)."""

    def __init__(self, inner: SpanExporter, destination: str, errors: ExportErrors) -> None:
        self._inner = inner
        self._destination = destination
        self._errors = errors
        self._lock = threading.Lock()
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _quiet.start()
        error = None
        try:
            result = self._inner.export(spans)
        except Exception as e:
            result, error = SpanExportResult.FAILURE, f"{type(e).__name__}: {e}"
        finally:
            _quiet.local.active = False
        if result is not SpanExportResult.SUCCESS:
            reason = error or _quiet.reason() or "the collector did not accept the spans"
            self._errors.record(self._destination, reason[:500])
        return result

    def abort(self) -> None:
        """Stop now: an export in flight gives up its retries, later ones fail at once (both are counted)."""
        self.shutdown()

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
        _quiet.local.active = True
        try:
            self._inner.shutdown()
        except Exception as e:
            log.debug("tracing: the OTLP exporter failed to shut down: %r", e)
        finally:
            _quiet.local.active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def otlp_processor(
    endpoint: str, headers: dict[str, str], errors: ExportErrors, *, timeout_s: float, **batch: Any
) -> BatchSpanProcessor:
    """A batching processor that sends spans to ``endpoint`` by OTLP/HTTP (protobuf) from a background thread."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url = otlp_url(endpoint)
    # no headers configured: None, so that OTEL_EXPORTER_OTLP_TRACES_HEADERS (where secrets belong) applies
    inner = OTLPSpanExporter(endpoint=url, headers=headers or None, timeout=timeout_s)
    return BatchSpanProcessor(CountingExporter(inner, f"the OTLP endpoint {redact(url)}", errors), **batch)


def redact(url: str) -> str:
    """``url`` without a user name or password in it (it goes into log lines)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
