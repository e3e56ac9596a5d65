"""The request pipeline's cost: `Tether.ask` / `search` through the stages, against the code before them.

Builds the demo index (pydoc_data topics) once, then times warm requests (a first pass over the questions
fills the sentence-vector cache, so the timed pass is the request path, not the embedding model) in separate
processes that take turns, round after round: the code BEFORE the pipeline (a checkout of --before, imported
from its own src/), this code with tracing off, and this code with tracing to the local trace store. Each
process opens its own copy of the index files and times --n asks and --n searches over the golden set's
questions. Prints per variant the median over rounds of each round's p50 and mean, and the difference to
the code before. Between processes the machine's load moves the figures by a few ms; the in-process paired
comparison in tests/pipeline/test_equivalence.py's old path is the finer instrument (see the README).

    git worktree add /tmp/tether-before <commit before the pipeline>
    python bench/pipeline_overhead.py --before /tmp/tether-before [--rounds 5] [--n 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, statistics, sys, time, yaml
from pathlib import Path
from tether import Tether
folder, n, tracing = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cfg = folder / "tether.yaml"
data = yaml.safe_load(cfg.read_text())
if tracing == "n/a":  # the code before knows neither section
    data.pop("tracing", None); data.pop("pipeline", None)
else:
    data["tracing"] = {"enabled": tracing == "on"}
cfg.write_text(yaml.safe_dump(data))
questions = json.loads((folder / "questions.json").read_text())[:n]
t = Tether.open(cfg)
for q in questions:  # a first pass fills the sentence-vector cache: the timed pass measures the request path,
    t.ask(q); t.search(q)  # not the embedding model (which the pipeline does not change)
def timed(fn):
    out = []
    for q in questions:
        t0 = time.perf_counter(); fn(q); out.append((time.perf_counter() - t0) * 1000)
    return out
ask, search = timed(t.ask), timed(lambda q: t.search(q))
t.close()
import tether
print(json.dumps({"src": tether.__file__, "ask_p50": statistics.median(ask), "ask_mean": statistics.fmean(ask),
                  "search_p50": statistics.median(search), "search_mean": statistics.fmean(search)}))
"""


def build_index(work: Path) -> Path:
    from tether import Tether
    from tether._demo import export_python_topics
    from tether.config import default_yaml
    from tether.evals import load_cases

    base = work / "base"
    export_python_topics(base / "corpus")
    (base / "tether.yaml").write_text(default_yaml(), encoding="utf-8")
    with Tether.open(base / "tether.yaml") as t:
        t.ingest([base / "corpus"])
    qs = [c.input.user for c in load_cases(ROOT / "evals" / "golden") if c.input.user]
    (base / "questions.json").write_text(json.dumps(qs))
    return base


def run_variant(base: Path, work: Path, name: str, src: Path, n: int, tracing: str) -> dict[str, float]:
    folder = work / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(base, folder, ignore=shutil.ignore_patterns("corpus", "traces.db*", "configs.db*"))
    env_path = str(src)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), str(n), tracing],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not str(out.pop("src")).startswith(str(src)):
        sys.exit(f"{name} imported Tether from elsewhere than {src}")
    return {k: float(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the commit before the pipeline")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (args.before / "src" / "tether" / "_api.py").exists():
        sys.exit(f"{args.before} is not a checkout of Tether (no src/tether/_api.py)")
    work = Path(tempfile.mkdtemp(prefix="tether-pipeline-bench-"))
    base = build_index(work)
    variants = {
        "before (one method)": (args.before / "src", "n/a"),
        "pipeline, tracing off": (ROOT / "src", "off"),
        "pipeline, tracing to the local store": (ROOT / "src", "on"),
    }
    results: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))  # taking turns
        for name in order:
            src, tracing = variants[name]
            slug = name.split(",")[0].split(" ")[0] + "-" + tracing
            results[name].append(run_variant(base, work, slug, src, args.n, tracing))
    summary = {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in results.items()
    }
    before = summary["before (one method)"]
    for s in summary.values():
        s["ask_p50_delta"] = s["ask_p50"] - before["ask_p50"]
        s["search_p50_delta"] = s["search_p50"] - before["search_p50"]
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"rounds": args.rounds, "n": args.n, "variants": summary}, indent=2))
        return
    print(f"{args.rounds} rounds x {args.n} questions (golden set), warm, medians over rounds")
    print(f"{'variant':40s} {'ask p50':>9s} {'Δ':>7s} {'ask mean':>9s} {'search p50':>11s} {'Δ':>7s}")
    for name, s in summary.items():
        print(
            f"{name:40s} {s['ask_p50']:8.2f}ms {s['ask_p50_delta']:+6.2f} {s['ask_mean']:8.2f}ms "
            f"{s['search_p50']:10.2f}ms {s['search_p50_delta']:+6.2f}"
        )


if __name__ == "__main__":
    main()
