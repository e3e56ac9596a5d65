"""Where finished spans go: the local trace store (a background thread writes many requests per transaction)
and, optionally, an OpenTelemetry collector over OTLP/HTTP. Neither ever raises into a request: failures are
counted and reported once.

Imports the OpenTelemetry SDK; :mod:`tether.trace._tracing` imports this module only when tracing is on.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
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
_LINGER_S = 0.05
"""How long the store's writer waits after the first queued request, so that a burst shares one commit."""
_MAX_QUEUED = 10_000
"""Requests waiting for the store's writer before new ones are dropped (and counted as export errors)."""
_OTLP_QUEUE = 20_000
"""Spans waiting to be sent by OTLP before new ones are dropped (and counted); the SDK's default is 2,048."""


class ExportErrors:
    """Counts failed exports; the first failure of each destination is logged as one warning line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._warned: set[str] = set()

    @property
    def count(self) -> int:
        return self._count

    def record(self, destination: str, reason: str, n: int = 1) -> None:
        """Count ``n`` failed exports (requests not stored, or OTLP batches not sent) to ``destination``."""
        with self._lock:
            self._count += n
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
    """Holds a request's spans until its root span ends, then hands the request to a background writer that stores
    what has queued up in one transaction.

    The request thread only appends finished spans to a list: turning them into rows, JSON and the SQLite commit
    happen in the writer thread (``tether-trace-store``), which waits up to ``linger_s`` after the first queued
    request so that a busy service writes many requests per commit. :meth:`force_flush` (``Tracing.flush``) and
    :meth:`shutdown` (``Tracing.close``, and the provider's exit hook) wait for the queue to be written; a process
    killed with SIGKILL loses the requests of its last ``linger_s`` at most. More than ``max_queued`` requests
    waiting (a store slower than the traffic) are dropped and counted as export errors, never queued without bound.
    A stage span that ends after its request (a stage left running in another thread) is queued on its own.
    """

    def __init__(
        self, path: Path, errors: ExportErrors, *, linger_s: float = _LINGER_S, max_queued: int = _MAX_QUEUED
    ) -> None:
        self._writer = TraceWriter(path)
        self._errors = errors
        self._linger_s = linger_s
        self._max_queued = max_queued
        self._lock = threading.Lock()
        self._open: dict[int, list[ReadableSpan]] = {}
        self._cond = threading.Condition(self._lock)
        self._queue: list[tuple[list[ReadableSpan], ReadableSpan | None]] = []
        self._queued = 0  # requests ever queued, and ever written (or failed): flush waits for them to meet
        self._done = 0
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False
        self._flushing = 0  # flushes waiting: the writer stops lingering for them
        os.register_at_fork(after_in_child=_weak_call(self._after_fork))

    def _after_fork(self) -> None:
        """In a forked child: fresh locks and an empty queue (the parent writes what it had queued)."""
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._open, self._queue, self._queued, self._done = {}, [], 0, 0
        self._thread, self._pid, self._flushing = None, 0, 0
        self._writer = TraceWriter(self._writer.path)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.parent is None:
            with self._lock:
                self._open[span.context.trace_id] = []

    def on_end(self, span: ReadableSpan) -> None:
        trace_id = span.context.trace_id if span.context is not None else 0
        with self._lock:
            if span.parent is None:
                spans = self._open.pop(trace_id, [])
                spans.append(span)
                root: ReadableSpan | None = span
            else:
                held = self._open.get(trace_id)
                if held is not None and len(held) < _MAX_BUFFERED:
                    held.append(span)
                    return
                spans, root = [span], None
            if self._stopping:
                return
            if len(self._queue) >= self._max_queued:
                dropped = True
            else:
                dropped = False
                self._ensure_thread()
                self._queue.append((spans, root))
                self._queued += 1
                if len(self._queue) == 1:
                    self._cond.notify_all()
        if dropped:
            self._errors.record(
                f"the trace store {self._writer.path}",
                f"more than {self._max_queued} requests waiting to be written; this one was dropped",
            )

    def _ensure_thread(self) -> None:  # holds self._lock
        pid = os.getpid()
        if self._thread is not None and self._pid == pid:
            return
        self._pid = pid
        self._thread = threading.Thread(target=self._run, name="tether-trace-store", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue and self._stopping:
                    return
                flushing = self._stopping
            if not flushing and self._linger_s > 0:
                with self._lock:  # let a burst of requests join this commit (a flush or shutdown cuts it short)
                    self._cond.wait_for(lambda: self._stopping or self._flushing > 0, self._linger_s)
            with self._lock:
                batch, self._queue = self._queue, []
            self._write(batch)
            with self._lock:
                self._done += len(batch)
                self._cond.notify_all()

    def _write(self, batch: Sequence[tuple[list[ReadableSpan], ReadableSpan | None]]) -> None:
        requests: list[tuple[list[SpanRow], SpanRow | None]] = []
        for spans, root in batch:
            try:
                requests.append(([span_row(s) for s in spans], span_row(root) if root is not None else None))
            except Exception as e:  # a span we cannot read is an export error, never a request's
                self._errors.record(f"the trace store {self._writer.path}", f"unreadable span: {e!r}")
        if not requests:
            return
        try:
            self._writer.write_many(requests)
        except Exception as e:  # sqlite3.Error, OSError, TraceError: each request counted, never raised
            self._errors.record(f"the trace store {self._writer.path}", f"{type(e).__name__}: {e}", len(requests))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every request queued so far is written (or its write failed); False on timeout."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                return True
            target = self._queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._done < target:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._thread.is_alive():
                        return self._done >= target
                    self._cond.wait(left)
                return True
            finally:
                self._flushing -= 1

    def shutdown(self) -> None:
        self.force_flush()
        with self._lock:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None:
            thread.join(5.0)
        self._writer.close()


def _weak_call(method: Any) -> Any:
    """A callable that calls ``method`` while its object lives (a fork hook must not keep a processor alive)."""
    ref = weakref.WeakMethod(method)

    def call() -> None:
        bound = ref()
        if bound is not None:
            bound()

    return call


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
        self.waiting = 0  # spans handed to the batcher and not yet given to export (its queue, as we count it)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self.waiting = max(0, self.waiting - len(spans))
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


class BoundedBatchProcessor(BatchSpanProcessor):
    """The SDK's batching processor, but a span that would not fit its queue (a collector slower than the
    traffic) is dropped here and counted as an export error, instead of being dropped by the SDK with a log line
    per span and no count."""

    def __init__(self, exporter: CountingExporter, errors: ExportErrors, destination: str, **batch: Any) -> None:
        batch.setdefault("max_queue_size", _OTLP_QUEUE)
        super().__init__(exporter, **batch)
        self._counting = exporter
        self._errors = errors
        self._destination = destination
        self._limit = int(batch["max_queue_size"])

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        c = self._counting
        with c._lock:
            full = c.waiting >= self._limit
            if not full:
                c.waiting += 1
        if full:
            self._errors.record(self._destination, f"more than {self._limit} spans waiting to be sent; dropped")
            return
        super().on_end(span)


def otlp_processor(
    endpoint: str, headers: dict[str, str], errors: ExportErrors, *, timeout_s: float, **batch: Any
) -> BatchSpanProcessor:
    """A batching processor that sends spans to ``endpoint`` by OTLP/HTTP (protobuf) from a background thread."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url = otlp_url(endpoint)
    # no headers configured: None, so that OTEL_EXPORTER_OTLP_TRACES_HEADERS (where secrets belong) applies
    inner = OTLPSpanExporter(endpoint=url, headers=headers or None, timeout=timeout_s)
    destination = f"the OTLP endpoint {redact(url)}"
    return BoundedBatchProcessor(CountingExporter(inner, destination, errors), errors, destination, **batch)


def redact(url: str) -> str:
    """``url`` without a user name or password in it (it goes into log lines)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
