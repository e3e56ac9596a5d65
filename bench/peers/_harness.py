"""Measured runs: build, quality on test, latency on one thread, throughput with worker processes, memory, disk."""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from peers._base import Config, System
from peers._data import Data, Split, scores

WARMUP = 5


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: on Linux that carries over the parent's peak
    across fork + exec, so a child started by a big driver would report the driver's figure."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pcts(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {f"p{p}": round(float(np.percentile(a, p)), 2) for p in (50, 95, 99)}


def _worker(system: System, texts: list[str], barrier: Any) -> None:  # runs in a forked child
    if system.kind != "lexical":
        system.encoder.reload()
    system.after_fork()
    system.encoder.live = True
    for q in texts[:2]:
        system.search(q)
    barrier.wait()
    for q in texts:
        system.search(q)


def throughput(system: System, texts: list[str], workers: int) -> float:
    """Queries per second with ``workers`` forked processes sharing the built index (copy-on-write)."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    parts = [texts[i::workers] for i in range(workers)]
    procs = [ctx.Process(target=_worker, args=(system, p, barrier), daemon=True) for p in parts]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a throughput worker failed (exit codes {[p.exitcode for p in procs]})")
    return len(texts) / wall


def measure(
    system: System, data: Data, split: Split, config: Config, *, workers: int, throughput_seconds: float
) -> dict[str, Any]:
    """Everything one row of the table reports, for one system at one configuration."""
    enc = system.encoder
    enc.live = False
    t0 = time.perf_counter()
    system.build(data, config)
    system.configure(config)
    build_s = time.perf_counter() - t0

    enc.live = True
    qids = sorted(split.queries)
    for q in qids[:WARMUP]:
        system.search(split.queries[q])
    total, search_only, rankings = [], [], {}
    for q in qids:
        e0 = enc.seconds
        s0 = time.perf_counter()
        rankings[q] = system.search(split.queries[q])
        dt = time.perf_counter() - s0
        total.append(dt * 1000)
        search_only.append((dt - (enc.seconds - e0)) * 1000)
    quality = scores(rankings, split)
    returned = float(np.mean([len(r) for r in rankings.values()]))
    peak_mb = peak_rss_mb()

    with tempfile.TemporaryDirectory(prefix="peer-index-") as tmp:
        size = system.index_bytes(Path(tmp))

    # enough queries for about throughput_seconds of work at the measured one-thread speed, 40..all
    mean_s = float(np.mean(total)) / 1000
    n = int(min(len(qids), max(40, throughput_seconds * workers / max(mean_s, 1e-4))))
    texts = [split.queries[q] for q in qids[:n]]
    qps = throughput(system, texts, workers) if workers > 0 else None
    return {
        "system": system.name,
        "kind": system.kind,
        "config": config,
        "queries": len(qids),
        "results_per_query": round(returned, 1),
        **{k: round(v, 4) for k, v in quality.items()},
        "build_s": round(build_s, 2),
        "latency_ms": _pcts(total),
        "latency_ms_excl_query_embedding": _pcts(search_only),
        "query_embedding_ms_p50": round(float(np.percentile(np.subtract(total, search_only), 50)), 2),
        "throughput_qps": round(qps, 1) if qps is not None else None,
        "throughput_workers": workers,
        "throughput_queries": n,
        "peak_rss_mb": round(peak_mb, 1),
        "index_mb": round(size / 1e6, 1) if size is not None else None,
        "note": system.note(),
        **({"tether_ingest": system.figures} if hasattr(system, "figures") else {}),
    }
