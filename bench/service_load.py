"""Load on loopback: `tether serve` over the demo corpus, locust users asking and searching (3:1) for a bounded
time, one ingest job running through the upload API at the start, feedback sent on every 3rd ask of each user.

Reports p50/p95/p99 latency per route and overall, throughput, failures, feedback records sent vs stored, and the
server's peak RSS. Locust runs from its own environment (it brings gevent): give its python with --locust-python.

    python bench/service_load.py --locust-python /tmp/lvenv/bin/python [--users 50] [--seconds 60] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _service import start_ready
from tether import Tether
from tether._demo import DEMO_QUESTIONS, export_python_topics
from tether.config import default_yaml
from tether.service import open_key_store

QUESTIONS = [
    *DEMO_QUESTIONS,
    "What does the with statement do?",
    "How are default parameter values evaluated?",
    "What does the global statement do?",
    "What does the nonlocal statement do?",
    "What happens when a pass statement is executed?",
    "What do lambda expressions create?",
]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locust-python", required=True, help="a python with locust installed")
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tether-load-"))
    export_python_topics(root / "docs")
    (root / "tether.yaml").write_text(
        default_yaml()
        .replace("\ntenants: {}", "\ntenants:\n  demo: {sources: ['*']}\n")
        .replace("requests_per_minute: 120", "requests_per_minute: 100000"),  # one key for every user
        encoding="utf-8",
    )
    t = Tether.open(root / "tether.yaml")
    t.ingest([root / "docs"])
    data_path = t.settings.root / ".tether" / "service.db"
    t.close()
    keys = open_key_store(Tether.open(root / "tether.yaml").settings)
    token = keys.create("load", "demo", "editor")[0]
    keys.close()
    server, base = start_ready(root)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set() and server.poll() is None:
            peak[0] = max(peak[0], _rss_kb(server.pid))
            time.sleep(0.5)

    try:
        threading.Thread(target=sample, daemon=True).start()
        h = {"Authorization": f"Bearer {token}"}
        # an ingest job during the load: 20 documents uploaded through the API under new names
        files = [("files", (f"extra{i}.txt", (root / "docs" / p.name).read_bytes()))
                 for i, p in enumerate(sorted((root / "docs").glob("*.txt"))[:20])]  # fmt: skip
        job = httpx.post(base + "/v1/documents", headers=h, files=files, timeout=60).json()
        out_csv = root / "locust"
        env = {
            **os.environ,
            "TETHER_BENCH_KEY": token,
            "TETHER_BENCH_QUESTIONS": json.dumps(QUESTIONS),
        }
        subprocess.run(
            [
                args.locust_python,
                "-m",
                "locust",
                "-f",
                str(Path(__file__).with_name("locustfile.py")),
                "--headless",
                "-u",
                str(args.users),
                "-r",
                str(max(1, args.users // 5)),
                "-t",
                f"{args.seconds}s",
                "--host",
                base,
                "--csv",
                str(out_csv),
                "--only-summary",
            ],  # fmt: skip
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=args.seconds + 120,
        )
        job_done = httpx.get(f"{base}/v1/jobs/{job['id']}", headers=h, timeout=30).json()
        stored = httpx.get(base + "/v1/feedback", headers=h, params={"limit": 1000}, timeout=30).json()
    finally:
        stop.set()
        server.terminate()
        server.wait(60)
    rows = list(csv.DictReader((root / "locust_stats.csv").open()))
    routes = {}
    for r in rows:
        routes[r["Name"]] = {
            "requests": int(r["Request Count"]),
            "failures": int(r["Failure Count"]),
            "p50_ms": float(r["50%"]),
            "p95_ms": float(r["95%"]),
            "p99_ms": float(r["99%"]),
            "rps": round(float(r["Requests/s"]), 2),
        }
    sent_feedback = routes.get("/v1/feedback", {}).get("requests", 0)
    out = {
        "users": args.users,
        "seconds": args.seconds,
        "routes": routes,
        "ingest_job": {"status": job_done["status"], "summary": job_done.get("summary")},
        "feedback_sent": sent_feedback,
        "feedback_stored": len(stored),
        "server_peak_rss_mb": round(peak[0] / 1024, 1),
        "data": str(data_path),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{'route':<16}{'requests':>9}{'fail':>6}{'p50':>8}{'p95':>8}{'p99':>8}{'req/s':>8}")
    for name, m in routes.items():
        print(
            f"{name:<16}{m['requests']:>9}{m['failures']:>6}{m['p50_ms']:>8.0f}{m['p95_ms']:>8.0f}"
            f"{m['p99_ms']:>8.0f}{m['rps']:>8.1f}"
        )
    print(f"ingest job: {out['ingest_job']['status']}; feedback sent {sent_feedback}, stored {len(stored)}")
    print(f"server peak RSS: {out['server_peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
