"""Request tracing with OpenTelemetry: one trace per request, one span per stage, kept in a local SQLite trace
store (`tether trace list/show`) and, when configured, exported to a collector over OTLP/HTTP.

Importing this package does not import OpenTelemetry; the SDK is loaded at the first traced request.

Example:
    >>> from tether.trace import Tracing
    >>> tracing = Tracing(store_path=None)
    >>> with tracing.request("ask", {"question": "Is it in the documents?"}) as trace:
    ...     with trace.stage("retrieve") as span:
    ...         span.set("hits", 5)
    >>> tracing.close()
"""

from tether.trace._attrs import AttrValue
from tether.trace._store import (
    ABSTAINED,
    CONFIG_HASH,
    QUESTION,
    SpanRecord,
    TraceDetail,
    TraceError,
    TraceReader,
    TraceSummary,
)
from tether.trace._tracing import RequestTrace, StageSpan, Tracing

__all__ = [
    "ABSTAINED",
    "CONFIG_HASH",
    "QUESTION",
    "AttrValue",
    "RequestTrace",
    "SpanRecord",
    "StageSpan",
    "TraceDetail",
    "TraceError",
    "TraceReader",
    "TraceSummary",
    "Tracing",
]
