"""Tracing: one OpenTelemetry trace per request, one span per stage, on a TracerProvider of Tether's own.

Tether never touches the global OpenTelemetry provider and never makes its spans the current span, so an
application that uses OpenTelemetry itself keeps its own traces as they were; a request started inside one of
its spans gets a link to that span. With tracing off every call is a no-op on shared objects (no SDK import).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tether.trace._attrs import DEFAULT_MAX_CHARS, bounded

if TYPE_CHECKING:
    from tether.config import Settings
    from tether.trace._export import ExportErrors

_OTLP_TIMEOUT_S = 5.0
_CLOSE_TIMEOUT_S = 5.0


class StageSpan:
    """The span of one stage: what the stage decided, scored and sent, as attributes."""

    __slots__ = ("_max", "_span")

    def __init__(self, span: Any, max_chars: int) -> None:
        self._span = span
        self._max = max_chars

    def set(self, key: str, value: object) -> None:
        """Record ``value`` under ``key`` on this span.

        ``str``, ``bool``, ``int``, ``float`` and short lists of one of them are stored as they are (a string is cut
        at ``tracing.max_attribute_chars``, 8192 by default, and then ends in ``…[N more chars cut]``). Any other
        value (a dict, a pydantic model, a long or mixed list) is stored as compact JSON text cut at the same
        bound. ``None`` records nothing.
        """
        v = bounded(value, self._max)
        if v is not None:
            self._span.set_attribute(key, v)


class _NoopStage(StageSpan):
    __slots__ = ()

    def set(self, key: str, value: object) -> None:
        pass


class _StageScope:
    """``with trace.stage(name) as s:``: a child span of the request that records an exception and re-raises it."""

    __slots__ = ("_ctx", "_max", "_name", "_span", "_tracer")

    def __init__(self, tracer: Any, ctx: Any, name: str, max_chars: int) -> None:
        self._tracer, self._ctx, self._name, self._max = tracer, ctx, name, max_chars
        self._span: Any = None

    def __enter__(self) -> StageSpan:
        self._span = self._tracer.start_span(
            f"stage.{self._name}", context=self._ctx, record_exception=False, set_status_on_exception=False
        )
        return StageSpan(self._span, self._max)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _end(self._span, exc)


def _end(span: Any, exc: BaseException | None) -> None:
    if exc is not None:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:1000]))
    span.end()


class _NoopScope:
    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __enter__(self) -> Any:
        return self._value

    def __exit__(self, *exc: object) -> None:
        return None


_NOOP_STAGE = _NoopStage(None, 0)
_NOOP_STAGE_SCOPE = _NoopScope(_NOOP_STAGE)


class RequestTrace:
    """The trace of one request. ``trace_id`` is 32 hex digits ("" when tracing is off)."""

    __slots__ = ("_ctx", "_max", "_span", "_tracer", "trace_id")

    def __init__(self, tracer: Any, span: Any, max_chars: int) -> None:
        from opentelemetry.trace import set_span_in_context

        self._tracer, self._span, self._max = tracer, span, max_chars
        self._ctx = set_span_in_context(span)
        ctx = span.get_span_context()
        self.trace_id: str = format(ctx.trace_id, "032x") if ctx.is_valid else ""  # "": OTEL_SDK_DISABLED=true

    def stage(self, name: str) -> _StageScope | _NoopScope:
        """``with trace.stage("retrieve") as s: s.set("hits", 5)``: a span ``stage.<name>`` under the request.

        An exception raised inside is recorded on the span (status ERROR, with the exception as an event) and
        re-raised. Safe to call from several threads at once.
        """
        return _StageScope(self._tracer, self._ctx, name, self._max)

    def set(self, key: str, value: object) -> None:
        """Record an attribute on the request's root span (e.g. ``abstained`` once it is known); see
        :meth:`StageSpan.set` for how values are stored."""
        v = bounded(value, self._max)
        if v is not None:
            self._span.set_attribute(key, v)


class _NoopRequest(RequestTrace):
    __slots__ = ()

    def __init__(self) -> None:
        self.trace_id = ""

    def stage(self, name: str) -> _StageScope | _NoopScope:
        return _NOOP_STAGE_SCOPE

    def set(self, key: str, value: object) -> None:
        pass


_NOOP_REQUEST = _NoopRequest()
_NOOP_REQUEST_SCOPE = _NoopScope(_NOOP_REQUEST)


class _RequestScope:
    __slots__ = ("_attributes", "_max", "_name", "_span", "_tracer")

    def __init__(self, tracer: Any, name: str, attributes: Mapping[str, object], max_chars: int) -> None:
        self._tracer, self._name, self._attributes, self._max = tracer, name, attributes, max_chars
        self._span: Any = None

    def __enter__(self) -> RequestTrace:
        from opentelemetry.context import Context
        from opentelemetry.trace import Link, get_current_span

        ambient = get_current_span().get_span_context()
        attrs = {k: v for k, v in ((k, bounded(v, self._max)) for k, v in self._attributes.items()) if v is not None}
        self._span = self._tracer.start_span(
            f"tether.{self._name}",
            context=Context(),  # always a new trace: one request, one trace id
            attributes=attrs,
            links=[Link(ambient)] if ambient.is_valid else None,
            record_exception=False,
            set_status_on_exception=False,
        )
        return RequestTrace(self._tracer, self._span, self._max)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _end(self._span, exc)


class Tracing:
    """Traces requests for one Tether instance, on its own TracerProvider (never the global one).

    Spans go to the local trace store (``store_path``) and, with ``otlp_endpoint``, also to an OpenTelemetry
    collector over OTLP/HTTP from a background thread. Export failures never reach a request: they are counted
    (:attr:`export_errors`) and the first of each destination is logged as one warning. The SDK is imported and
    the provider made at the first request, so an instance that never traces costs nothing.

    Example:
        >>> tracing = Tracing(store_path=None)
        >>> with tracing.request("ask", {"question": "why?"}) as t:
        ...     with t.stage("retrieve") as s:
        ...         s.set("hits", 3)
        >>> len(t.trace_id)
        32
        >>> tracing.close()
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        store_path: Path | None = None,
        otlp_endpoint: str | None = None,
        otlp_headers: Mapping[str, str] | None = None,
        max_attribute_chars: int = DEFAULT_MAX_CHARS,
        otlp_timeout_s: float = _OTLP_TIMEOUT_S,
        otlp_batch: Mapping[str, Any] | None = None,
        close_timeout_s: float = _CLOSE_TIMEOUT_S,
    ) -> None:
        self._enabled = enabled
        self.store_path = store_path
        self.otlp_endpoint = otlp_endpoint
        self._otlp_headers = dict(otlp_headers or {})
        self._max = max_attribute_chars
        self._otlp_timeout_s = otlp_timeout_s
        self._otlp_batch = dict(otlp_batch or {})
        self._close_timeout_s = close_timeout_s
        self._batcher: Any = None
        self._lock = threading.Lock()
        self._tracer: Any = None
        self._provider: Any = None
        self._errors: ExportErrors | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        """The tracing that ``tracing:`` of tether.yaml asks for (a no-op when ``tracing.enabled`` is false)."""
        from tether.config import resolve_path

        t = settings.tracing
        if not t.enabled:
            return cls.disabled()
        return cls(
            store_path=resolve_path(t.path, settings.root),
            otlp_endpoint=t.otlp_endpoint,
            otlp_headers=t.otlp_headers,
            max_attribute_chars=t.max_attribute_chars,
        )

    @classmethod
    def disabled(cls) -> Tracing:
        """A Tracing that records nothing: every request gets the shared no-op trace (trace id "")."""
        return cls(enabled=False)

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def export_errors(self) -> int:
        """Exports that failed so far, each counted once: requests not stored (a store that cannot be written, or
        a full queue), OTLP batches not sent, and spans dropped because the OTLP queue was full."""
        return 0 if self._errors is None else self._errors.count

    def request(self, name: str, attributes: Mapping[str, object]) -> _RequestScope | _NoopScope:
        """``with tracing.request("ask", {"question": q, "config_hash": h}) as trace:``: the root span
        ``tether.<name>`` of a new trace. An exception that leaves the block is recorded on it and re-raised.

        The root attributes ``question``, ``abstained`` (a bool) and ``config_hash`` are also kept in columns of
        the local store, for `tether trace list`; set ``abstained`` with :meth:`RequestTrace.set` once known.
        """
        if not self._enabled:
            return _NOOP_REQUEST_SCOPE
        tracer = self._tracer or self._start()
        if tracer is None:
            return _NOOP_REQUEST_SCOPE
        return _RequestScope(tracer, name, attributes, self._max)

    def _start(self) -> Any:
        with self._lock:
            if self._tracer is not None or self._closed:
                return self._tracer
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider

            from tether.trace._export import ExportErrors, LocalStoreProcessor, otlp_processor

            errors = ExportErrors()
            provider = TracerProvider(
                resource=Resource.create({"service.name": "tether"}),
                shutdown_on_exit=True,  # queued spans are written (and sent) at exit even when nobody closes us
            )
            if self.store_path is not None:
                provider.add_span_processor(LocalStoreProcessor(self.store_path, errors))
            if self.otlp_endpoint is not None:
                self._batcher = otlp_processor(
                    self.otlp_endpoint, self._otlp_headers, errors, timeout_s=self._otlp_timeout_s, **self._otlp_batch
                )
                provider.add_span_processor(self._batcher)
            self._errors, self._provider = errors, provider
            self._tracer = provider.get_tracer("tether")
            return self._tracer

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Write what is queued for the local store and send what is batched for OTLP now; False when that did not
        finish in ``timeout_s``. Requests are written in the background within ~50 ms; flush before reading the
        store in the same process."""
        provider = self._provider
        return True if provider is None else bool(provider.force_flush(int(timeout_s * 1000)))

    def close(self) -> None:
        """Flush and shut the provider down (idempotent). Requests after this are not traced.

        Spans still batched for OTLP get ``close_timeout_s`` (5 s) to reach the collector; an unreachable one
        delays the close by that much at most (the batch being sent is counted as an export error, any
        left after it are dropped).
        """
        with self._lock:
            self._closed = True
            provider, self._provider, self._tracer = self._provider, None, None
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            _shut_down_within(batcher, self._close_timeout_s)
        if provider is not None:
            provider.shutdown()


def _shut_down_within(batcher: Any, timeout_s: float) -> None:
    """Shut a BatchSpanProcessor down (a last export of what it holds), aborting that export after ``timeout_s``."""
    closing = threading.Thread(target=batcher.shutdown, name="tether-trace-close", daemon=True)
    closing.start()
    closing.join(timeout_s)
    if closing.is_alive():
        batcher.span_exporter.abort()  # the export in flight fails now, and so does any after it (counted)
        closing.join(timeout_s)
