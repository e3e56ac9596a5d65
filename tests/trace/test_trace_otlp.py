"""OTLP/HTTP export against a real receiver on loopback that decodes the protobuf, and against endpoints that fail:
a closed port and a collector that answers 500. Requests are never failed or slowed by a bad endpoint."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from otlp_receiver import Receiver, serve

from tether.trace import TraceReader, Tracing


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture
def failing_receiver() -> Iterator[Receiver]:
    yield from serve(status=500)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ask(tracing: Tracing, question: str, *, fail: bool = False) -> str:
    try:
        with tracing.request("ask", {"question": question, "config_hash": "c0ffee"}) as trace:
            with trace.stage("retrieve") as s:
                s.set("hits", 3)
                s.set("scores", [0.9, 0.5, 0.25])
                s.set("evidence", {"chunk": 7, "text": "Tomatoes need sun."})
            with trace.stage("answer") as s:
                s.set("prompt", "system: cite\nuser: " + question)
                if fail:
                    raise RuntimeError("model server gone")
            trace.set("abstained", False)
    except RuntimeError:
        pass
    return trace.trace_id


def tether_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tether.trace" and r.levelno >= logging.WARNING]


def test_spans_arrive_at_the_collector_decoded_with_ids_and_attributes(receiver: Receiver, tmp_path: Path) -> None:
    tracing = Tracing(store_path=tmp_path / "traces.db", otlp_endpoint=receiver.url)
    ok = ask(tracing, "Do tomatoes need sun?")
    failed = ask(tracing, "And water?", fail=True)
    tracing.close()  # flushes the batch

    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}  # a bare endpoint gets the traces path
    by_trace: dict[str, dict[str, object]] = {}
    for s in receiver.spans:
        by_trace.setdefault(s.trace_id, {})[s.name] = s
    assert set(by_trace) == {ok, failed}
    spans = by_trace[ok]
    assert set(spans) == {"tether.ask", "stage.retrieve", "stage.answer"}
    root, retrieve = spans["tether.ask"], spans["stage.retrieve"]
    assert root.parent == ""  # type: ignore[attr-defined]
    assert retrieve.parent == root.span_id  # type: ignore[attr-defined]
    assert root.attributes == {  # type: ignore[attr-defined]
        "question": "Do tomatoes need sun?",
        "config_hash": "c0ffee",
        "abstained": False,
    }
    assert retrieve.attributes["hits"] == 3  # type: ignore[attr-defined]
    assert retrieve.attributes["scores"] == [0.9, 0.5, 0.25]  # type: ignore[attr-defined]
    assert retrieve.attributes["evidence"] == '{"chunk":7,"text":"Tomatoes need sun."}'  # type: ignore[attr-defined]
    assert root.resource["service.name"] == "tether"  # type: ignore[attr-defined]

    answer = by_trace[failed]["stage.answer"]
    assert answer.status == 2  # type: ignore[attr-defined]  # STATUS_CODE_ERROR
    assert "model server gone" in answer.status_message  # type: ignore[attr-defined]
    assert "exception" in answer.events  # type: ignore[attr-defined]
    assert tracing.export_errors == 0

    with TraceReader(tmp_path / "traces.db") as reader:  # the local store got the same requests
        assert {t.trace_id for t in reader.traces()} == {ok, failed}


def test_configured_headers_are_sent_to_the_collector(receiver: Receiver) -> None:
    tracing = Tracing(otlp_endpoint=receiver.url + "/v1/traces", otlp_headers={"x-tenant": "acme"})
    ask(tracing, "q")
    tracing.close()
    assert receiver.headers and all(h.get("x-tenant") == "acme" for h in receiver.headers)
    assert receiver.headers[0]["content-type"] == "application/x-protobuf"


def test_a_request_inside_an_application_span_links_to_it(receiver: Receiver) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    app_tracer = TracerProvider(shutdown_on_exit=False).get_tracer("app")
    tracing = Tracing(otlp_endpoint=receiver.url)
    with app_tracer.start_as_current_span("http.request") as app_span:
        tid = ask(tracing, "q")
    tracing.close()
    root = next(s for s in receiver.spans if s.name == "tether.ask")
    assert root.trace_id == tid and root.parent == ""
    assert root.links == [format(app_span.get_span_context().trace_id, "032x")]


def test_a_closed_port_never_fails_a_request_and_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = closed_port()
    endpoint = f"http://tracer:s3cret@127.0.0.1:{port}"
    tracing = Tracing(
        store_path=tmp_path / "traces.db",
        otlp_endpoint=endpoint,
        otlp_timeout_s=0.5,
        otlp_batch={"schedule_delay_millis": 50, "max_export_batch_size": 4},
    )
    start = time.perf_counter()
    ids = [ask(tracing, f"question {i}") for i in range(20)]
    elapsed = time.perf_counter() - start
    assert all(len(i) == 32 for i in ids)
    assert elapsed < 2.0, f"20 requests took {elapsed:.2f}s: a dead collector slowed requests down"
    time.sleep(0.3)
    tracing.close()

    assert tracing.export_errors >= 2  # batches of 4 spans: several failed exports, each counted
    warnings = tether_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert f"http://***@127.0.0.1:{port}/v1/traces" in message and "Tracing.export_errors" in message
    assert "s3cret" not in message  # a password in the URL never reaches a log line
    otel = [r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING]
    assert otel == [], [r.getMessage() for r in otel]  # the exporter's own per-retry lines are kept back
    with TraceReader(tmp_path / "traces.db") as reader:  # the local store is unaffected
        assert len(reader.traces(limit=0)) == 20


def test_a_collector_slower_than_the_traffic_drops_spans_counted_not_silently(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.delay_s = 0.4
    tracing = Tracing(
        otlp_endpoint=receiver.url,
        otlp_batch={"max_queue_size": 10, "max_export_batch_size": 5, "schedule_delay_millis": 10},
    )
    start = time.perf_counter()
    for i in range(20):
        ask(tracing, f"q{i}")  # 3 spans each
    assert time.perf_counter() - start < 2.0  # the slow collector never slowed a request
    tracing.close()
    with receiver.lock:
        received = len(receiver.spans)
    assert tracing.export_errors >= 30  # far more than the 10 the queue holds were dropped ...
    assert received + tracing.export_errors == 60  # ... and every span is either received or counted
    sdk_drops = [r for r in caplog.records if "Queue full" in r.getMessage()]
    assert sdk_drops == []  # none was dropped by the SDK behind our back
    assert len(tether_warnings(caplog)) == 1


def test_closing_with_a_dead_collector_waits_no_longer_than_the_close_timeout() -> None:
    tracing = Tracing(otlp_endpoint=f"http://127.0.0.1:{closed_port()}", close_timeout_s=1.0)  # export timeout 5 s
    for i in range(5):
        ask(tracing, f"q{i}")
    start = time.perf_counter()
    tracing.close()
    assert time.perf_counter() - start < 2.5
    assert tracing.export_errors >= 1


def test_a_collector_that_rejects_spans_is_counted_with_its_reason(
    failing_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    tracing = Tracing(otlp_endpoint=failing_receiver.url)
    ask(tracing, "q")
    tracing.flush(timeout_s=10)  # a failed batch ends the flush all the same
    ask(tracing, "q2")
    tracing.close()
    assert tracing.export_errors == 2
    warnings = tether_warnings(caplog)
    assert len(warnings) == 1
    assert "500" in warnings[0].getMessage()


def test_exporter_log_lines_of_other_threads_are_not_hidden(caplog: pytest.LogCaptureFixture) -> None:
    """Tether keeps back only what the OpenTelemetry exporter logs while Tether's own export runs."""
    import tether.trace._export  # noqa: F401  (installs the filter)

    logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").warning("the application's own line")
    assert any(r.getMessage() == "the application's own line" for r in caplog.records)
