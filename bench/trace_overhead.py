"""What tracing adds to a request: 10,000 requests of 6 empty stages, timed one by one.

Modes: ``off`` (tracing.enabled: false, the shared no-op), ``store`` (the local SQLite trace store, the default),
``store+otlp`` (also exported by OTLP/HTTP to a receiver on loopback that decodes every batch). A bare loop
without any tracing calls is the baseline. Prints p50/p95 per request in microseconds.

    python bench/trace_overhead.py [--requests 10000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tether.trace import Tracing

STAGES = ("policy", "retrieve", "rerank", "answer", "verify", "audit")


class Receiver:
    """OTLP/HTTP on loopback: decodes each ExportTraceServiceRequest and counts its spans."""

    def __init__(self) -> None:
        self.spans = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                receiver.spans += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def bare() -> None:
    for _ in STAGES:
        pass


def traced(tracing: Tracing) -> Callable[[], None]:
    def one() -> None:
        with tracing.request("ask", {"question": "How much sun do tomatoes need?", "config_hash": "0123abcd"}) as t:
            for name in STAGES:
                with t.stage(name):
                    pass

    return one


def timings(fn: Callable[[], None], n: int) -> list[float]:
    for _ in range(min(200, n)):  # warm up (imports, the store's schema, connections)
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def summary(us: list[float]) -> dict[str, float]:
    q = statistics.quantiles(us, n=100)
    return {"p50_us": round(q[49], 1), "p95_us": round(q[94], 1), "mean_us": round(statistics.fmean(us), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.requests
    out: dict[str, object] = {"requests": n, "stages": len(STAGES)}
    with tempfile.TemporaryDirectory() as d:
        out["bare loop"] = summary(timings(bare, n))
        off = Tracing.disabled()
        out["off"] = summary(timings(traced(off), n))
        store = Tracing(store_path=Path(d) / "store.db")
        out["store"] = summary(timings(traced(store), n))
        store.close()
        receiver = Receiver()
        both = Tracing(store_path=Path(d) / "both.db", otlp_endpoint=receiver.url)
        out["store+otlp"] = summary(timings(traced(both), n))
        t0 = time.perf_counter()
        both.close()
        out["store+otlp close_s"] = round(time.perf_counter() - t0, 3)
        out["otlp spans received"] = receiver.spans
        out["otlp spans expected"] = (n + min(200, n)) * (len(STAGES) + 1)
        out["export_errors"] = both.export_errors + store.export_errors
        receiver.close()
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            print(f"{k:24s} {v}")


if __name__ == "__main__":
    main()
