"""Fit a router from eval outcomes: which tier passed which case (``tether route train``).

Each case's question gets the features a live request would (retrieval, the extractive probe, the neighbours:
here leave-one-out, so a question never counts its own outcome). One logistic model per tier and one for not
answering; ``min_pass`` is chosen on 5-fold cross-validated probabilities as the cheapest setting whose pass rate
stays within ``tolerance`` of the best single tier, so the figures in the file are not the training fit's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tether.errors import DataError
from tether.evals._results import RunReport
from tether.models._linear import Logistic, fit_logistic
from tether.router._features import request_features
from tether.router._model import REFUSE, Neighbours, Router, RouterModel, choose, past_rates, worth_escalating

if TYPE_CHECKING:
    from tether._api import Tether
    from tether.config import Settings

GRID = [round(0.05 * i, 2) for i in range(2, 20)]


@dataclass
class Example:
    """One question with each tier's outcome on it (from the eval runs)."""

    key: str
    question: str
    passed: dict[str, bool]
    abstained: dict[str, bool]
    ms: dict[str, float]
    cost: dict[str, float]
    features: dict[str, float] = field(default_factory=dict)
    probe_ms: float = 0.0

    def refuse_passes(self) -> bool:
        """Not answering would have passed: some tier abstained and passed (the case wanted an abstention)."""
        return any(self.abstained[t] and self.passed[t] for t in self.passed)


def examples_from_runs(runs: dict[str, RunReport], prices: dict[str, tuple[float, float]]) -> list[Example]:
    """Questions every run answered (first repeat; each turn of a multi-turn case), with each tier's outcome.
    ``prices``: per model tier, (per 1k prompt tokens, per 1k completion tokens)."""
    if not runs:
        raise DataError("route train: no eval runs to learn from")
    per_tier = {tier: {r.case_id: r for r in run.results if r.repeat == 0} for tier, run in runs.items()}
    common = sorted(set.intersection(*(set(v) for v in per_tier.values())))
    if not common:
        raise DataError("route train: the runs share no case id (were they runs of the same cases?)")
    out: list[Example] = []
    for cid in common:
        first = per_tier[next(iter(runs))][cid]
        for i, turn in enumerate(first.turns):
            ex = Example(f"{cid}#{i}", turn.standalone or turn.question, {}, {}, {}, {})
            for tier, results in per_tier.items():
                turns = results[cid].turns
                if i >= len(turns):
                    break
                tr = turns[i]
                ex.passed[tier] = tr.passed and tr.error is None
                ex.abstained[tier] = tr.answer is None or tr.answer.abstained
                ex.ms[tier] = _answer_ms(tr.answer.trace if tr.answer else [], tr.latency_ms)
                ex.cost[tier] = _money(tr.answer.trace if tr.answer else [], prices.get(tier))
            if len(ex.passed) == len(runs):
                out.append(ex)
    return out


def _answer_ms(trace: Sequence[object], whole: float) -> float:
    """The time the tier itself took (its ``route`` entry), not retrieval's: that is paid once whatever the tier;
    the whole request's time when the run has no route event."""
    for e in trace:
        if getattr(e, "stage", "") == "route":
            tried = getattr(e, "detail", {}).get("tried", [])
            return float(sum(float(x.get("ms", 0.0)) for x in tried))
    return whole


def _money(trace: Sequence[object], price: tuple[float, float] | None) -> float:
    if price is None:
        return 0.0
    p = c = 0
    for e in trace:
        d = getattr(e, "detail", {})
        p += int(d.get("prompt_tokens", 0) or 0)
        c += int(d.get("completion_tokens", 0) or 0)
    return p / 1000 * price[0] + c / 1000 * price[1]


def add_features(t: Tether, examples: list[Example], tenant: str | None = None) -> npt.NDArray[np.float32]:
    """Fill each example's features as a live request would get them; returns the questions' embeddings."""
    fast = t.fast_answerer()
    retriever = t.retriever()
    vectors = []
    for ex in examples:
        vec = retriever.embed_query(ex.question)
        hits = t.search(ex.question, query_vector=vec, tenant=tenant)
        t0 = time.perf_counter()
        probe = fast.answer(ex.question, hits, vec, config_hash=t.settings.config_hash)
        ex.probe_ms = (time.perf_counter() - t0) * 1000
        idf, max_idf = fast.question_idf(ex.question)
        ex.features = request_features(ex.question, hits, probe, idf, max_idf)
        vectors.append(vec)
    return np.asarray(vectors, dtype=np.float32).reshape(len(examples), -1)


def simulate(
    choice: str, ex: Example, tiers: list[str], p: dict[str, float] | None = None
) -> tuple[bool, float, float]:
    """(passed, ms, money) of a request that starts at ``choice`` and escalates as the cascade does (on an
    abstention; with the router's probabilities ``p``, only to tiers worth it), the probe's time included."""
    if choice == REFUSE:
        return ex.refuse_passes(), ex.probe_ms, 0.0
    ms, money, passed = ex.probe_ms, 0.0, False
    for i, tier in enumerate(tiers[tiers.index(choice) :]):
        if i > 0 and p is not None and not worth_escalating(p, tier):
            break
        if tier != "extractive-fast":  # the probe is that tier's answer
            ms += ex.ms[tier]
        money += ex.cost[tier]
        passed = ex.passed[tier]
        if not ex.abstained[tier]:
            break
    return passed, ms, money


def _rows(model: RouterModel, examples: list[Example], matrix: npt.NDArray[np.float32]) -> list[list[float]]:
    names = model.features()
    rows = []
    for i, ex in enumerate(examples):
        past = past_rates(matrix, model.neighbours.passed, matrix[i], model.neighbours.k, exclude=i)
        row = {**ex.features, **{f"past_{o}": past[o] for o in model.options()}}
        rows.append([row[n] for n in names])
    return rows


def _labels(ex: Example, option: str) -> bool:
    return ex.refuse_passes() if option == REFUSE else ex.passed[option]


def _fit(names: list[str], rows: list[list[float]], examples: list[Example], options: list[str]) -> dict[str, Logistic]:
    return {o: fit_logistic(rows, [_labels(ex, o) for ex in examples], names) for o in options}


def _policy(
    examples: list[Example], probs: list[dict[str, float]], tiers: list[str], min_pass: float
) -> dict[str, float]:
    outcomes = [
        simulate(choose(p, tiers, min_pass).choice, ex, tiers, p) for ex, p in zip(examples, probs, strict=True)
    ]
    return {
        "pass_rate": float(np.mean([o[0] for o in outcomes])),
        "ms": float(np.mean([o[1] for o in outcomes])),
        "cost": float(np.mean([o[2] for o in outcomes])),
    }


def train_router(
    t: Tether,
    runs: dict[str, RunReport],
    *,
    tolerance: float = 0.02,
    k: int = 5,
    folds: int = 5,
    tenant: str | None = None,
    trained_on: str = "",
) -> RouterModel:
    """A router for ``routing.cascade`` from one eval run per tier (each run with the cascade pinned to the tier)."""
    tiers = [x for x in t.settings.routing.cascade if x in runs]
    missing = [x for x in t.settings.routing.cascade if x not in runs]
    if missing or len(tiers) != len(runs):
        extra = [x for x in runs if x not in t.settings.routing.cascade]
        raise DataError(
            "route train: give one run per tier of routing.cascade "
            f"({', '.join(t.settings.routing.cascade) or 'empty'}); "
            + (f"missing: {', '.join(missing)}" if missing else f"not in the cascade: {', '.join(extra)}")
        )
    prices = {n: (s.price_in_per_1k, s.price_out_per_1k) for n, s in t.settings.tiers.items()}
    examples = examples_from_runs(runs, prices)
    ids = ", ".join(r.summary.run_id for r in runs.values())
    return fit_router(
        t,
        examples,
        tiers,
        tolerance=tolerance,
        k=k,
        folds=folds,
        tenant=tenant,
        trained_on=trained_on or f"{len(examples)} questions of eval runs {ids}",
    )


def fit_router(
    t: Tether,
    examples: list[Example],
    tiers: list[str],
    *,
    tolerance: float = 0.02,
    k: int = 5,
    folds: int = 5,
    tenant: str | None = None,
    trained_on: str = "",
) -> RouterModel:
    """A router from questions with each tier's outcome (their features are computed here, as a request's are)."""
    if len(examples) < 10:
        raise DataError(f"route train: {len(examples)} questions in common; at least 10 are needed")
    matrix = add_features(t, examples, tenant)
    options = [*tiers, REFUSE]
    neighbours = Neighbours(
        k=k,
        dim=matrix.shape[1],
        vectors=Neighbours.pack(matrix),
        passed={o: [_labels(ex, o) for ex in examples] for o in options},
    )
    model = RouterModel(tiers=tiers, models={}, min_pass=0.5, neighbours=neighbours)
    names = model.features()
    rows = _rows(model, examples, neighbours.matrix())
    # cross-validated probabilities: the threshold and the reported figures come from questions the fit did not see
    order = np.random.default_rng(0).permutation(len(examples))
    cv: list[dict[str, float]] = [{} for _ in examples]
    for f in range(folds):
        test = set(order[f::folds].tolist())
        train = [i for i in range(len(examples)) if i not in test]
        fitted = _fit(names, [rows[i] for i in train], [examples[i] for i in train], options)
        for i in test:
            cv[i] = {o: lg.probability(rows[i]) for o, lg in fitted.items()}
    alone = {
        x: {
            "pass_rate": float(np.mean([ex.passed[x] for ex in examples])),
            "ms": float(np.mean([ex.ms[x] for ex in examples])),
            "cost": float(np.mean([ex.cost[x] for ex in examples])),
        }
        for x in tiers
    }
    best = max(v["pass_rate"] for v in alone.values())
    curve = {m: _policy(examples, cv, tiers, m) for m in GRID}
    ok = [m for m in GRID if curve[m]["pass_rate"] >= best - tolerance]
    min_pass = (
        min(ok, key=lambda m: (curve[m]["cost"], curve[m]["ms"]))
        if ok
        else max(GRID, key=lambda m: curve[m]["pass_rate"])
    )
    model.models = _fit(names, rows, examples, options)
    model.min_pass = min_pass
    model.cost_ms = {x: round(v["ms"], 2) for x, v in alone.items()}
    model.cost = {x: round(v["cost"], 6) for x, v in alone.items()}
    chosen = curve[min_pass]
    model.metrics = {
        "questions": float(len(examples)),
        "tolerance": tolerance,
        "cv_pass_rate": round(chosen["pass_rate"], 4),
        "cv_ms": round(chosen["ms"], 2),
        "cv_cost": round(chosen["cost"], 6),
        **{f"alone_{x}_pass_rate": round(v["pass_rate"], 4) for x, v in alone.items()},
        **{f"alone_{x}_ms": round(v["ms"], 2) for x, v in alone.items()},
        **{f"cv_share_{o}": round(s, 4) for o, s in _shares(examples, cv, tiers, min_pass).items()},
    }
    model.trained_on = trained_on
    Router(model)  # the file must load as it is written
    return model


def _shares(examples: list[Example], probs: list[dict[str, float]], tiers: list[str], m: float) -> dict[str, float]:
    picks = [choose(p, tiers, m).choice for p in probs]
    return {o: picks.count(o) / len(picks) for o in [*tiers, REFUSE]}


def pinned(settings: Settings, tier: str) -> Settings:
    """``settings`` with the cascade pinned to ``tier`` alone (no router, no rules): how a tier's eval run is made."""
    if tier not in settings.routing.cascade:
        raise DataError(f"{tier!r} is not a tier of routing.cascade ({', '.join(settings.routing.cascade) or 'empty'})")
    routing = settings.routing.model_copy(update={"cascade": [tier], "router": None, "rules": []})
    return settings.model_copy(update={"routing": routing}).with_root(settings.root)
