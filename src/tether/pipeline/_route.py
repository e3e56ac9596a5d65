"""The cascade (``routing.cascade``): tiers tried in order, from the free extractive answerer to model endpoints
(``tiers:``), until one gives an answer worth keeping.

A tier's answer is kept when it does not abstain (the extractive support threshold, or the verifier for a model's
claims) and its support is at least ``routing.escalate_below`` when that is set. A tier whose server fails (down,
slow, 5xx, malformed) is skipped, and its breaker stops calling it for a while. When no tier's answer is kept, the
last answer given (an abstention with its nearest passage) is returned; when every tier failed, a refusal. The
trace's ``route`` event lists each tier tried with its outcome, time, tokens and cost.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tether.contracts import Answer, Hit, TraceEvent
from tether.errors import ModelError, TransientError
from tether.pipeline._refuse import refusal
from tether.pipeline._state import RequestState
from tether.router import REFUSE, Decision, by_rules, request_features, worth_escalating

if TYPE_CHECKING:
    from tether._api import Tether


def _cost(t: Tether, tier: str, events: list[TraceEvent]) -> tuple[int, int, float]:
    """(prompt tokens, completion tokens, cost) of the model calls recorded in ``events``."""
    p = sum(int(e.detail.get("prompt_tokens", 0) or 0) for e in events)  # type: ignore[call-overload]
    c = sum(int(e.detail.get("completion_tokens", 0) or 0) for e in events)  # type: ignore[call-overload]
    spec = t.settings.tiers.get(tier) if tier != "llm" else t.settings.llm
    cost = 0.0 if spec is None else p / 1000 * spec.price_in_per_1k + c / 1000 * spec.price_out_per_1k
    return p, c, cost


def _run_tier(t: Tether, tier: str, state: RequestState, hits: list[Hit], trace: list[TraceEvent]) -> Answer:
    assert state.query_vector is not None
    if tier == "extractive":
        return t.answerer().answer(state.question, hits, state.query_vector, config_hash=state.config_hash, trace=trace)
    if tier == "extractive-fast":
        return t.fast_answerer().answer(
            state.question, hits, state.query_vector, config_hash=state.config_hash, trace=trace
        )
    return t.tier_answerer(tier).answer(state.question, hits, config_hash=state.config_hash, trace=trace)


def _decide(
    t: Tether, state: RequestState, hits: list[Hit], trace: list[TraceEvent]
) -> tuple[Decision, Answer, float] | None:
    """The starting tier by ``routing.rules``, then the learned router; None when neither is configured. Also
    returns the probe (the features-only extractive answer the features come from) and its time."""
    r = t.settings.routing
    router = t.router()
    if router is None and not r.rules:
        return None
    assert state.query_vector is not None
    t0 = time.perf_counter()
    fast = t.fast_answerer()
    probe = fast.answer(state.question, hits, state.query_vector, config_hash=state.config_hash, trace=trace)
    probe_ms = (time.perf_counter() - t0) * 1000
    idf, max_idf = fast.question_idf(state.question)
    feats = request_features(state.question, hits, probe, idf, max_idf)
    decision = by_rules(r.rules, state.question, feats, state.caller.tenant, state.caller.role)
    if decision is None and router is not None:
        decision = router.decide(feats, state.query_vector, list(r.cascade), r.min_pass)
    if decision is None:
        decision = Decision(r.cascade[0], "no rule matched and there is no router: start at the first tier")
    return decision, probe, probe_ms


def cascade(t: Tether, state: RequestState, hits: list[Hit], trace: list[TraceEvent]) -> Answer:
    r = t.settings.routing
    tried: list[dict[str, Any]] = []
    last: Answer | None = None
    chosen = ""
    decided = _decide(t, state, hits, trace)
    tiers = list(r.cascade)
    router_detail: dict[str, object] | None = None
    probe: Answer | None = None
    if decided is not None:
        decision, probe, probe_ms = decided
        router_detail = {**decision.detail(), "probe_ms": round(probe_ms, 1)}
        if decision.choice == REFUSE:
            refused = {"cascade": tiers, "tried": [], "cost": 0.0, "router": router_detail, "chosen": None}
            if probe.abstained:  # the honest "not in the documents", with its nearest passage
                probe.trace = [*probe.trace, TraceEvent(stage="route", detail=refused)]
                probe.reason = f"{probe.reason}; router: {decision.reason}" if probe.reason else decision.reason
                return probe
            return refusal(
                state, t.settings.answer.not_found_text, f"router: {decision.reason}",
                [*trace, TraceEvent(stage="route", detail=refused)],
            )  # fmt: skip
        tiers = tiers[tiers.index(decision.choice) :]
    probabilities = decided[0].probabilities if decided is not None else {}
    for tier in tiers:
        if last is not None and not worth_escalating(probabilities, tier):
            tried.append(
                {
                    "tier": tier,
                    "outcome": "not_tried",
                    "reason": f"router: p({tier})={probabilities[tier]:.2f} < p(refuse)={probabilities[REFUSE]:.2f}",
                }
            )
            break
        t0 = time.perf_counter()
        before = len(trace)
        try:
            if tier == "extractive-fast" and probe is not None:
                answer = probe  # already answered: the probe is this tier's answer
            else:
                answer = _run_tier(t, tier, state, hits, trace)
        except (TransientError, ModelError) as e:
            tried.append({"tier": tier, "outcome": "failed", "error": f"{type(e).__name__}: {e}", **_spent(t0)})
            continue
        p, c, cost = _cost(t, tier, answer.trace[before:])
        trace = answer.trace  # the answerers work on their own copy and return it whole: the next tier goes on from it
        low = r.escalate_below is not None and answer.support < r.escalate_below
        keep = not answer.abstained and not low
        outcome = "answered" if keep else ("abstained" if answer.abstained else "low_support")
        tried.append(
            {
                "tier": tier,
                "outcome": outcome,
                "support": round(answer.support, 4),
                "prompt_tokens": p,
                "completion_tokens": c,
                "cost": round(cost, 6),
                **_spent(t0),
            }  # fmt: skip
        )
        last, chosen = answer, tier
        if keep:
            break
    route: dict[str, Any] = {
        "cascade": list(r.cascade),
        "tried": tried,
        "cost": round(sum(x.get("cost", 0.0) for x in tried), 6),
    }
    if router_detail is not None:
        route["router"] = router_detail
    if last is None:
        reasons = "; ".join(f"{x['tier']}: {x['error']}" for x in tried)
        return refusal(
            state,
            "Not answered: every tier of the cascade failed.",
            f"routing.cascade: every tier failed ({reasons})",
            [*trace, TraceEvent(stage="route", detail={**route, "chosen": None})],
        )
    last.trace = [*last.trace, TraceEvent(stage="route", detail={**route, "chosen": chosen})]
    if any(x["outcome"] == "failed" for x in tried):
        failed = ", ".join(x["tier"] for x in tried if x["outcome"] == "failed")
        last.warnings.append(f"tier(s) {failed} failed and were skipped (see the trace's route)")
    return last


def _spent(t0: float) -> dict[str, float]:
    return {"ms": round((time.perf_counter() - t0) * 1000, 1)}
