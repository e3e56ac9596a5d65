"""A real OTLP/HTTP receiver on loopback: accepts POST /v1/traces and decodes the protobuf body with
opentelemetry-proto's ExportTraceServiceRequest, as a collector does. Used by the tests and bench/trace_overhead.py."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent: str
    name: str
    status: int  # 0 unset, 1 ok, 2 error
    status_message: str
    attributes: dict[str, Any]
    events: list[str]
    links: list[str]
    resource: dict[str, Any]


def value_of(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    return None if kind is None else getattr(v, kind)


@dataclass
class Receiver:
    url: str
    status: int = 200
    delay_s: float = 0.0  # a slow collector: each request waits this long before it is read
    bodies: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)
    spans: list[ReceivedSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    paths: list[str] = field(default_factory=list)

    def names(self) -> list[str]:
        with self.lock:
            return [s.name for s in self.spans]


def _decode(raw: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    return raw


def serve(status: int = 200) -> Iterator[Receiver]:
    """Run a receiver until the generator is closed (use with contextlib or as a pytest fixture body)."""
    receiver = Receiver(url="", status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            length = int(self.headers.get("Content-Length", 0))
            body = _decode(self.rfile.read(length), self.headers.get("Content-Encoding"))
            with receiver.lock:
                receiver.paths.append(self.path)
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
            if receiver.status != 200 or self.path != "/v1/traces":
                self.send_response(receiver.status if receiver.status != 200 else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            got = []
            for rs in request.resource_spans:
                resource = {kv.key: value_of(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        got.append(
                            ReceivedSpan(
                                trace_id=s.trace_id.hex(),
                                span_id=s.span_id.hex(),
                                parent=s.parent_span_id.hex(),
                                name=s.name,
                                status=s.status.code,
                                status_message=s.status.message,
                                attributes={kv.key: value_of(kv.value) for kv in s.attributes},
                                events=[e.name for e in s.events],
                                links=[link.trace_id.hex() for link in s.links],
                                resource=resource,
                            )
                        )
            with receiver.lock:
                receiver.bodies += 1
                receiver.spans.extend(got)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()
