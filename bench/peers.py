"""Tether against its peers on the same corpus, the same machine and the same embedding model, in one run.

SciFact (BEIR format, 5,183 abstracts). Every dense side uses the same vectors: Tether's embedder
(all-MiniLM-L6-v2 int8 ONNX) embeds the corpus and the queries once (cached under .tether/bench/peers/),
and each peer is handed those vectors (a custom embedding class or precomputed embeddings); at query time
every system embeds the query with that same embedder, on one onnxruntime thread. Metrics use Tether's
metric code for every system. Peers are tuned on TRAIN (a small grid); TEST is scored once per row.

Each system runs in its own subprocess (so its peak RSS is its own): tune on train, then one measured
subprocess per row (build the index, 300 test queries one at a time, throughput with worker processes,
index size after persisting to a temporary folder). A tuning result is cached (.tether/bench/peers/
tuning-*.json) and reused while the library version, grid, train queries and vectors are unchanged
(--retune forces it); every measured row is run afresh.

    bash bench/setup_peers.sh                          # once: .venv-bench with Tether and the peers
    .venv-bench/bin/python bench/peers.py              # everything; a table with ratios vs Tether
    .venv-bench/bin/python bench/peers.py --quick      # smoke run: few queries, tiny grids
    .venv-bench/bin/python bench/peers.py --systems tether,bm25s --json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from _common import SHARED, need

SYSTEMS: dict[str, tuple[str, str]] = {
    "tether": ("peers._tether", "TetherSystem"),
    "bm25s": ("peers._bm25s", "Bm25sSystem"),
    "rank_bm25": ("peers._rank_bm25", "RankBm25System"),
    "llamaindex": ("peers._llamaindex", "LlamaIndexSystem"),
    "haystack": ("peers._haystack", "HaystackSystem"),
    "txtai": ("peers._txtai", "TxtaiSystem"),
}
TETHER_MODES = ("lexical", "dense", "hybrid", "hybrid+rerank")  # the last only where Tether has a reranker on
PACKAGES = {
    "tether": "tether",
    "bm25s": "bm25s",
    "rank_bm25": "rank-bm25",
    "llamaindex": "llama-index-core",
    "haystack": "haystack-ai",
    "txtai": "txtai",
}
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_MAX_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HAYSTACK_TELEMETRY_ENABLED": "False",
}
REFERENCE = {"lexical": "tether lexical", "dense": "tether dense", "hybrid": "tether hybrid"}  # fusion only
RESULTS = Path(__file__).resolve().parent.parent / ".tether" / "bench" / "peers"


def _version(system: str) -> str:
    try:
        return version(PACKAGES[system])
    except PackageNotFoundError:
        return "not installed"


def _tether_source() -> dict[str, str]:
    """Which Tether ran: its import path, and the repository commit (with '+dirty' for uncommitted src/ edits)."""
    import tether

    src = Path(tether.__file__).resolve().parent
    info = {"source": str(src)}
    try:
        root = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=src, capture_output=True, text=True, check=True
        ).stdout.strip()
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", str(src)], cwd=root, capture_output=True, text=True
        )
        info["source"] += f" (git {head.stdout.strip()}{'+dirty' if dirty.stdout.strip() else ''})"
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


# -- the worker: one task in its own process ------------------------------------------------------
def _make_system(system: str, encoder: Any, mode: str | None) -> Any:
    module, cls = SYSTEMS[system]
    klass = getattr(importlib.import_module(module), cls)
    return klass(encoder, mode) if system == "tether" else klass(encoder)


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    from peers._data import QueryEncoder, load_data
    from peers._harness import measure, peak_rss_mb

    data = load_data(Path(spec["beir"]), log=False)
    encoder = QueryEncoder(data.query_vectors)
    system = _make_system(spec["system"], encoder, spec.get("mode"))
    if system.kind != "lexical":
        encoder.embedder.embed(["warm up"])  # loads the ONNX session; lexical systems never embed
    base_mb = peak_rss_mb()
    if spec["task"] == "tune":
        split = data.train.limited(spec["queries"])
        grid = system.grid(spec["quick"])
        key = json.dumps([_version(spec["system"]), grid, sorted(split.queries), data.corpus.embed_seconds])
        cache = RESULTS / f"tuning-{spec['system']}{'-quick' if spec['quick'] else ''}.json"
        if not spec["retune"] and cache.is_file():
            cached = json.loads(cache.read_text())
            if cached.get("key") == key:
                return {**cached["result"], "reused_from": str(cache)}
        t0 = time.perf_counter()
        rows = system.tune(data, split, grid)
        best = max(rows, key=lambda r: (r[1]["ndcg@10"], r[1]["recall@100"]))
        result = {
            "defaults": system.defaults(),
            "chosen": best[0],
            "train": {"queries": len(split.queries), **best[1]},
            "grid": [{"config": c, **s} for c, s in sorted(rows, key=lambda r: -r[1]["ndcg@10"])],
            "seconds": round(time.perf_counter() - t0, 1),
            "made": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        cache.write_text(json.dumps({"key": key, "result": result}))
        return result
    config = spec["config"] if spec["config"] is not None else system.defaults()
    split = data.test.limited(spec["queries"])
    row = measure(system, data, split, config, workers=spec["workers"], throughput_seconds=spec["tput_seconds"])
    row["rss_before_build_mb"] = round(base_mb, 1)
    return row


def _run_worker(spec: dict[str, Any], label: str, timeout: float) -> dict[str, Any]:
    out = RESULTS / f"task-{os.getpid()}.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, **ONE_THREAD}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps({**spec, "out": str(out)})]
    t0 = time.perf_counter()
    print(f"  {label} ...", end="", flush=True, file=sys.stderr)
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(" timed out", file=sys.stderr)
        return {"error": f"timed out after {timeout:.0f} s"}
    print(f" {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


# -- the driver -----------------------------------------------------------------------------------
def _prepare(beir: Path, with_tether: bool) -> dict[str, Any]:
    from peers._data import load_data

    data = load_data(beir)
    info: dict[str, Any] = {
        "documents": len(data.corpus.ids),
        "doc_embed_seconds": round(data.corpus.embed_seconds, 1),
        "train_queries": len(data.train.queries),
        "test_queries": len(data.test.queries),
    }
    if with_tether:
        from peers._tether import ensure_chunk_cache

        meta = ensure_chunk_cache(beir)
        info["tether_chunks"] = meta["chunks"]
        info["tether_chunk_embed_seconds"] = round(float(meta["embed_seconds"]), 1)
    return info


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    beir = need(args.beir).resolve()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        sys.exit(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report: dict[str, Any] = {
        "dataset": str(beir),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "quick": args.quick,
        "prepare": _prepare(beir, "tether" in systems),
        "versions": {s: _version(s) for s in systems},
        "tether": _tether_source(),
        "tuning": {},
        "rows": [],
    }
    n_test = 40 if args.quick else 0
    n_train = 40 if args.quick else args.tune_queries
    common = {
        "beir": str(beir),
        "quick": args.quick,
        "retune": args.retune,
        "workers": args.workers,
        "tput_seconds": args.tput_seconds,
    }
    for system in systems:
        print(f"{system} {report['versions'][system]}", file=sys.stderr)
        if system == "tether":
            from peers._tether import has_reranker

            for mode in TETHER_MODES if has_reranker() else TETHER_MODES[:3]:
                spec = {**common, "task": "measure", "system": system, "mode": mode, "config": None}
                row = _run_worker({**spec, "queries": n_test}, f"measure {mode}", args.timeout)
                report["rows"].append({"system": f"tether {mode}", "setting": "default", **row})
            continue
        spec = {**common, "system": system, "mode": None}
        tuned = _run_worker({**spec, "task": "tune", "queries": n_train}, "tune on train", args.timeout)
        report["tuning"][system] = tuned
        for setting, config in (("default", None), ("tuned", tuned.get("chosen"))):
            if setting == "tuned" and config is None:
                report["rows"].append({"system": system, "setting": setting, "error": tuned.get("error", "no tuning")})
                continue
            row = _run_worker({**spec, "task": "measure", "config": config, "queries": n_test}, setting, args.timeout)
            report["rows"].append({"system": system, "setting": setting, **row})
    report["seconds"] = round(time.perf_counter() - t0, 1)
    _add_ratios(report["rows"])
    return report


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each peer row against the Tether row of its kind (lexical peers vs Tether lexical, hybrid peers vs Tether
    hybrid without the reranker: none of the peers' pipelines has one)."""
    ref = {r["kind"]: r for r in rows if r["system"] in REFERENCE.values() and "error" not in r}
    for r in rows:
        base = ref.get(r.get("kind", ""))
        if r["system"].startswith("tether") or base is None or "error" in r:
            continue
        ratios = {}
        for key, get in (
            ("ndcg@10", lambda x: x["ndcg@10"]),
            ("recall@100", lambda x: x["recall@100"]),
            ("p50_ms", lambda x: x["latency_ms"]["p50"]),
            ("p50_ms_excl_query_embedding", lambda x: x["latency_ms_excl_query_embedding"]["p50"]),
            ("throughput_qps", lambda x: x["throughput_qps"]),
            ("build_s", lambda x: x["build_s"]),
            ("peak_rss_mb", lambda x: x["peak_rss_mb"]),
            ("index_mb", lambda x: x["index_mb"]),
        ):
            a, b = get(r), get(base)
            ratios[key] = round(a / b, 2) if a is not None and b else None
        r["vs_tether"] = {"reference": base["system"], **ratios}


def _fmt(v: Any, spec: str = ".1f") -> str:
    if v is None:
        return "-"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def print_report(report: dict[str, Any]) -> None:
    p = report["prepare"]
    print(
        f"\nSciFact test split ({p['test_queries']} queries), {p['documents']} documents; "
        f"{report['machine']['cpus']} CPUs; latency on one thread, query embedding included (Tether's "
        "embedder, 1 thread, for every system); throughput with "
        f"{report['rows'][0].get('throughput_workers', '?') if report['rows'] else '?'} worker processes\n"
        "k: documents returned per query; p50 -emb: p50 without the query embedding; RSS0: peak RSS before the\n"
        "index build (interpreter, library imports, shared data, the ONNX embedder where the system embeds);\n"
        f"Tether from {report['tether']['source']}\n"
    )
    head = (
        f"{'system':<21}{'setting':<9}{'k':>5}{'nDCG@10':>9}{'R@100':>8}{'build s':>9}{'p50':>8}{'p95':>8}"
        f"{'p99':>8}{'p50 -emb':>9}{'QPS':>8}{'RSS0':>6}{'RSS MB':>8}{'disk MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        if "error" in r:
            print(f"{r['system']:<21}{r['setting']:<9}  could not run: {r['error'][:160]}")
            continue
        lat, ex = r["latency_ms"], r["latency_ms_excl_query_embedding"]
        print(
            f"{r['system']:<21}{r['setting']:<9}{_fmt(r['results_per_query'], '.0f'):>5}"
            f"{r['ndcg@10']:>9.4f}{r['recall@100']:>8.4f}{_fmt(r['build_s'], '.2f'):>9}"
            f"{lat['p50']:>8.1f}{lat['p95']:>8.1f}{lat['p99']:>8.1f}{ex['p50']:>9.1f}"
            f"{_fmt(r['throughput_qps']):>8}{_fmt(r.get('rss_before_build_mb'), '.0f'):>6}"
            f"{_fmt(r['peak_rss_mb'], '.0f'):>8}{_fmt(r['index_mb']):>8}"
        )
    print("\nratios vs the Tether row of the same kind (peer / Tether; nDCG < 1: peer worse; p50 > 1: peer slower)")
    head = (
        f"{'system':<21}{'setting':<9}{'vs':<16}{'nDCG@10':>8}{'R@100':>7}{'p50':>7}{'p50-emb':>8}{'QPS':>7}"
        f"{'build':>7}{'RSS':>7}{'disk':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in report["rows"]:
        v = r.get("vs_tether")
        if not v:
            continue
        print(
            f"{r['system']:<21}{r['setting']:<9}{v['reference']:<16}{_fmt(v['ndcg@10'], '.2f'):>8}"
            f"{_fmt(v['recall@100'], '.2f'):>7}{_fmt(v['p50_ms'], '.2f'):>7}"
            f"{_fmt(v['p50_ms_excl_query_embedding'], '.2f'):>8}{_fmt(v['throughput_qps'], '.2f'):>7}"
            f"{_fmt(v['build_s'], '.2f'):>7}{_fmt(v['peak_rss_mb'], '.2f'):>7}{_fmt(v['index_mb'], '.2f'):>7}"
        )
    print("\nsettings (defaults = the library's own; tuned = best nDCG@10 on train):")
    for name, t in report["tuning"].items():
        if "error" in t:
            print(f"  {name}: tuning failed: {t['error'][:200]}")
            continue
        print(f"  {name} {report['versions'][name]}: defaults {json.dumps(t['defaults'])}")
        print(
            f"  {' ' * len(name)} tuned    {json.dumps(t['chosen'])}  (train nDCG@10 {t['train']['ndcg@10']:.4f}, "
            f"{len(t['grid'])} grid points, {t['train']['queries']} train queries"
            + (f"; tuning reused from the cache made {t['made']})" if "reused_from" in t else ")")
        )
    for r in report["rows"]:
        if "tether_ingest" in r:
            f = r["tether_ingest"]
            print(
                f"\n{r['system']} ingest without embedding {f['ingest_excl_embedding_s']:.1f} s (parse+chunk "
                f"{f['parse_chunk_s']:.1f}, dedupe {f['dedupe_s']:.1f}, index writes {f['index_write_s']:.1f}) "
                f"for {f['chunks']} chunks; embedding the chunks took {f['embed_s_when_cached']:.0f} s when cached"
            )
            break
    line = (
        f"corpus embedding (Tether's embedder, all cores): whole documents for the peers {p['doc_embed_seconds']:.0f} s"
    )
    if "tether_chunks" in p:
        line += f"; Tether's {p['tether_chunks']} chunks {p['tether_chunk_embed_seconds']:.0f} s"
    print(line)
    print(f"total {report['seconds']:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beir", type=Path, default=SHARED / "scifact")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma list from: {', '.join(SYSTEMS)}")
    ap.add_argument("--quick", action="store_true", help="smoke run: 40 train and 40 test queries, tiny grids")
    ap.add_argument("--json", action="store_true", help="print the whole report as JSON")
    ap.add_argument("--workers", type=int, default=2, help="processes for the throughput figure (0: skip)")
    ap.add_argument("--tput-seconds", type=float, default=8.0, help="about this much work per throughput run")
    ap.add_argument("--tune-queries", type=int, default=0, help="train queries for tuning (0: all 809)")
    ap.add_argument("--retune", action="store_true", help="tune again even if this exact tuning is cached")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per subprocess")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        Path(spec["out"]).write_text(json.dumps(worker(spec)))
        return
    report = run_all(args)
    (RESULTS / "last_run.json").write_text(json.dumps(report, indent=2))
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_report(report)


if __name__ == "__main__":
    main()
