"""The built-in stages: policy -> retrieve -> rerank -> answer -> audit (and retrieve -> rerank for search).

Each reproduces one step of what ``Tether.ask`` / ``Tether.search`` did in one method before the pipeline, with
the same trace events in the same order, so the default chain answers exactly as before.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tether.config._settings import BUILTIN_TIERS
from tether.contracts import Answer, Hit, SearchFilters, TraceEvent
from tether.errors import ModelError, TetherError, TransientError
from tether.models._breaker import BreakerGenerator
from tether.pipeline._budget import exhausted, model_spend
from tether.pipeline._cache import store_answer
from tether.pipeline._refuse import refusal
from tether.pipeline._state import RequestState
from tether.safety._pii import replace

if TYPE_CHECKING:
    from tether._api import Tether
    from tether.pipeline._stage import StageContext
    from tether.tools import Decision, PolicyContext


class _Base:
    name = ""
    requires: frozenset[str] = frozenset()
    provides: frozenset[str] = frozenset()
    always = False

    def warm_up(self, tether: Tether) -> None:
        return None


class PolicyStage(_Base):
    """The policy decides first (``policy.path``): a deny or require_approval withholds the answer, naming the rule."""

    name = "policy"
    requires = frozenset({"question"})
    provides = frozenset({"decision"})

    def warm_up(self, tether: Tether) -> None:
        tether._policy()

    def __call__(self, state: RequestState, ctx: StageContext) -> None:
        t = ctx.tether
        policy = t._policy()
        if policy is None:
            ctx.span.set("policy", "none")
            return
        _apply_decision(t, state, ctx, policy.decide(_answer_context(state)), [])


def _answer_context(state: RequestState, **draft: object) -> PolicyContext:
    """What an answer rule sees: the question and the caller, and once drafted (``draft=True``) the answer and the
    passages it cites."""
    from tether.tools import PolicyContext

    return PolicyContext.model_validate(
        {
            "on": "answer",
            "text": state.question,
            "role": state.caller.role,
            "classification": state.caller.classification,
            **draft,
        }
    )


def _apply_decision(
    t: Tether, state: RequestState, ctx: StageContext, d: Decision, trace: list[TraceEvent], prefix: str = "policy"
) -> None:
    """Record a policy decision; a deny or require_approval replaces the answer with a refusal naming the rule."""
    state.decisions.append(d.model_dump(mode="json"))
    ctx.span.set(f"{prefix}.action", d.action)
    ctx.span.set(f"{prefix}.rule", d.rule or "(default)")
    ctx.span.set(f"{prefix}.reason", d.reason)
    if d.action == "allow":
        return
    state.withheld = True
    state.answer = Answer(
        question=state.question,
        text="Withheld by policy." if d.action == "deny" else "Withheld: this answer needs approval.",
        abstained=True,
        support=0.0,
        threshold=t.answerer().threshold if t.settings.answer.mode == "extractive" else 0.0,
        reason=f"policy {d.action}: {d.reason} (policy v{d.policy_version} {d.policy_hash})",
        config_hash=state.config_hash,
        trace=[*trace, TraceEvent(stage="policy", detail=d.model_dump())],
    )
    state.done = True


def _rerank_follows(state: RequestState, ctx: StageContext) -> bool:
    return "rerank" in ctx.chain and state.mode == "hybrid" and ctx.tether.reranker() is not None


class RetrieveStage(_Base):
    """Hybrid (or lexical, dense) candidates; as deep as the reranker wants when one follows in the chain."""

    name = "retrieve"
    requires = frozenset({"question"})
    provides = frozenset({"hits", "query_vector"})

    def warm_up(self, tether: Tether) -> None:
        tether.embedder.embed(["warm up"])

    def __call__(self, state: RequestState, ctx: StageContext) -> None:
        from tether.rerank._factory import rerank_depth

        t = ctx.tether
        k = state.k or t.settings.retrieval.top_k
        retriever = t.retriever()
        reranker = t.reranker() if _rerank_follows(state, ctx) else None
        depth = max(rerank_depth(t.settings.rerank, reranker), k) if reranker is not None else k
        if state.query_vector is None and (state.kind == "ask" or "answer" in ctx.chain):
            state.query_vector = retriever.embed_query(state.question)  # the answerer reuses it
        if state.kind == "ask":
            state.events.append(TraceEvent(stage="config", detail={"config_hash": state.config_hash}))
        if state.caller.tenant is not None:  # the tenant's allowlist, applied inside the store's queries
            allow = t.settings.tenants[state.caller.tenant].allowlist(state.caller.tenant)
            state.filters = (state.filters or SearchFilters()).model_copy(update={"allow": allow})
            ctx.span.set("tenant", state.caller.tenant)
        state.hits = retriever.search(
            state.question, depth, mode=state.mode, filters=state.filters, query_vector=state.query_vector
        )
        state.candidates = len(state.hits)
        state.events.extend(retriever.trace)
        ctx.span.set("mode", state.mode)
        ctx.span.set("k", k)
        ctx.span.set("depth", depth)
        ctx.span.set("hits", len(state.hits))
        ctx.span.set("top_scores", [round(h.score, 4) for h in state.hits[:5]])


class RerankStage(_Base):
    """Reorders the head of the hybrid list with the configured reranker and keeps the top k."""

    name = "rerank"
    requires = frozenset({"hits"})
    provides = frozenset({"hits"})

    def warm_up(self, tether: Tether) -> None:
        tether.reranker()

    def __call__(self, state: RequestState, ctx: StageContext) -> None:
        t = ctx.tether
        k = state.k or t.settings.retrieval.top_k
        reranker = t.reranker() if _rerank_follows(state, ctx) else None
        if reranker is None:
            state.hits = state.hits[:k]
            ctx.span.set("model", "none")
            return
        from tether.rerank._factory import rerank_depth

        t0 = time.perf_counter()
        state.hits = reranker.rerank(state.question, state.hits)[:k]
        depth = max(rerank_depth(t.settings.rerank, reranker), k)
        state.events.append(
            TraceEvent(
                stage="rerank",
                detail={"model": reranker.name, "depth": depth, "candidates": state.candidates},
                ms=(time.perf_counter() - t0) * 1000,
            )
        )
        ctx.span.set("model", reranker.name)
        ctx.span.set("depth", depth)
        ctx.span.set("top_scores", [round(float(h.rerank_score or 0.0), 4) for h in state.hits[:5]])


class AnswerStage(_Base):
    """Extractive (quotes sentences, abstains below the threshold) or LLM (quotes enforced, claims verified)."""

    name = "answer"
    requires = frozenset({"hits", "query_vector"})
    provides = frozenset({"answer"})

    def warm_up(self, tether: Tether) -> None:
        if tether.settings.answer.mode == "extractive":
            tether.answerer()

    def __call__(self, state: RequestState, ctx: StageContext) -> None:
        t = ctx.tether
        trace = [
            *state.events,
            TraceEvent(
                stage="hits",
                detail={"chunks": [{"path": h.path, "section": h.section, "score": h.score} for h in state.hits]},
            ),
        ]
        hits, flagged = _screen(t, state.hits, trace)
        cascade_models = any(n not in BUILTIN_TIERS for n in t.settings.routing.cascade)
        uses_models = cascade_models or (not t.settings.routing.cascade and t.settings.answer.mode == "llm")
        spent = exhausted(t, state.caller.tenant or "") if uses_models else None
        if spent is not None:  # the tenant's budget is spent: no model work, and the answer says so
            answer = _over_budget(t, state, hits, trace, spent)
            ctx.span.set("budget", spent)
        elif t.settings.routing.cascade:
            from tether.pipeline._route import cascade

            answer = cascade(t, state, hits, trace)
            route = next((e for e in answer.trace if e.stage == "route"), None)
            if route is not None:
                ctx.span.set("route", route.detail)
        elif t.settings.answer.mode == "llm":
            try:
                answer = t._grounded().answer(state.question, hits, config_hash=state.config_hash, trace=trace)
            except (TransientError, ModelError) as e:  # the model server failed: degrade visibly, never silently
                answer = _fallback(t, state, hits, trace, e)
                ctx.span.set("fallback", f"{t.settings.llm.fallback}: {e}")
        else:
            assert state.query_vector is not None
            answer = t.answerer().answer(
                state.question, hits, state.query_vector, config_hash=state.config_hash, trace=trace
            )
        if uses_models and spent is None:
            t.spend_ledger().charge(state.caller.tenant or "", *model_spend(t, answer.trace))
        answer.warnings.extend(_injection_warnings(answer, flagged))
        if flagged:
            ctx.span.set("injection.flagged", [f"{h.path}:{h.start}-{h.end}" for h in flagged])
        state.answer = answer
        policy = t._policy()
        if policy is not None and not answer.abstained:
            # the policy is asked again with the draft and the passages it cites (rules with answer_matches or
            # evidence_matches decide here); a deny withholds the drafted answer
            cited = [
                h.text
                for h in hits
                if any(c.doc_id == h.doc_id and h.start <= c.start < h.end for c in answer.citations)
            ]
            d = policy.decide(_answer_context(state, draft=True, answer=answer.text, evidence=cited))
            _apply_decision(t, state, ctx, d, answer.trace, prefix="policy.draft")
        if not state.withheld:
            try:
                _redact_answer(t, state, answer)
            except Exception as e:  # fail closed: an answer that may hold PII is not shown
                state.withheld = True
                answer = state.answer = Answer(
                    question=state.question,
                    text="Withheld: PII redaction failed.",
                    abstained=True,
                    support=0.0,
                    threshold=answer.threshold,
                    reason=f"safety.pii.answers: redaction failed ({type(e).__name__}: {e}); the answer was withheld",
                    config_hash=state.config_hash,
                    trace=[*answer.trace, TraceEvent(stage="safety", detail={"pii_redaction_failed": str(e)})],
                )
        store_answer(state, ctx, answer)  # when the cache stage ran and nothing withheld or degraded it
        ctx.span.set("mode", t.settings.answer.mode)
        ctx.span.set("abstained", answer.abstained)
        ctx.span.set("support", round(answer.support, 4))
        ctx.span.set("threshold", round(answer.threshold, 4))
        if answer.abstained:
            ctx.span.set("abstention_reason", answer.reason)
        ctx.span.set("citations", [f"{c.path}:{c.start}-{c.end}" for c in answer.citations])
        if t.settings.answer.mode == "extractive":
            top = next((ev.detail.get("top") for ev in answer.trace if ev.stage == "extractive"), None) or []
            ctx.span.set("candidates", [f"{c['path']}:{c['start']}-{c['end']} p={c['p']}" for c in top])  # type: ignore[attr-defined]
            return
        for ev in answer.trace:  # the model's steps: the exact prompts sent, tokens, drafts, verdicts
            if ev.stage not in ("config", "hits", "retrieve", "lexical", "dense", "fusion", "collapse", "rerank"):
                ctx.span.set(f"step.{ev.stage}", ev.detail)


def _over_budget(t: Tether, state: RequestState, hits: list[Hit], trace: list[TraceEvent], why: str) -> Answer:
    how = t.settings.budgets.on_exhausted
    trace.append(TraceEvent(stage="budget", detail={"exhausted": why, "to": how}))
    if how == "extractive":
        assert state.query_vector is not None
        q, v = state.question, state.query_vector
        answer = t.answerer().answer(q, hits, v, config_hash=state.config_hash, trace=trace)
        answer.warnings.append(f"budget spent ({why}): answered by the extractive answerer, without a model")
        return answer
    return refusal(
        state, "Not answered: the budget for model answers is spent.", f"budgets.on_exhausted is refuse: {why}", trace
    )


def _fallback(t: Tether, state: RequestState, hits: list[Hit], trace: list[TraceEvent], e: TetherError) -> Answer:
    """The answer when the model server failed: quoted by the extractive answerer (with a warning), or a refusal
    (``llm.fallback``); the trace names the error and the breaker's state."""
    how = t.settings.llm.fallback
    gen = t._grounded().generator
    breaker = gen.breaker.snapshot() if isinstance(gen, BreakerGenerator) else {}
    why = f"{type(e).__name__}: {e}"
    trace.append(TraceEvent(stage="fallback", detail={"from": "llm", "to": how, "error": why, "breaker": breaker}))
    if how == "extractive":
        assert state.query_vector is not None
        answer = t.answerer().answer(
            state.question, hits, state.query_vector, config_hash=state.config_hash, trace=trace
        )
        answer.warnings.append(f"the model server failed ({e}); the extractive answerer quoted this answer instead")
        return answer
    reason = f"llm.fallback is refuse and the model server failed ({why})"
    return refusal(state, "Not answered: the model server is unavailable.", reason, trace)


def _screen(t: Tether, hits: list[Hit], trace: list[TraceEvent]) -> tuple[list[Hit], list[Hit]]:
    """The hits the answer may cite, and those the injection detector flagged at ingest (``safety.injection``):
    quarantine drops the flagged, warn keeps them (the answer then says so), off ignores the scores."""
    inj = t.settings.safety.injection
    detector = t.injection_detector() if inj.action != "off" else None
    if detector is None:
        return hits, []
    flagged = [h for h in hits if h.injection is not None and h.injection >= detector.threshold]
    if not flagged:
        return hits, []
    trace.append(
        TraceEvent(
            stage="safety",
            detail={
                "action": inj.action,
                "threshold": detector.threshold,
                "flagged": [
                    {"path": h.path, "start": h.start, "end": h.end, "p": round(h.injection or 0, 4)} for h in flagged
                ],
            },
        )
    )
    if inj.action == "quarantine":
        ids = {h.chunk_id for h in flagged}
        return [h for h in hits if h.chunk_id not in ids], []
    return hits, flagged


def _redact_answer(t: Tether, state: RequestState, answer: Answer) -> None:
    """PII and secrets out of the answer for the roles in ``safety.pii.answers`` (the text, each quote, the nearest
    passage); a redacted quote keeps its span and is marked, and the answer says what kinds were removed."""
    roles = t.settings.safety.pii.answers
    if not roles or ("*" not in roles and state.caller.role not in roles):
        return
    r = t.redactor()
    kinds: set[str] = set()
    spans = r.find(answer.text)
    if spans:
        kinds.update(s.kind for s in spans)
        answer.text = replace(answer.text, spans)
    for c in [*answer.citations, *([answer.nearest] if answer.nearest else [])]:
        found = r.find(c.quote)
        if found:
            kinds.update(s.kind for s in found)
            c.quote, c.redacted = replace(c.quote, found), True
    if kinds:
        answer.warnings.append(f"redacted for role {state.caller.role}: {', '.join(sorted(kinds))}")
        answer.trace.append(TraceEvent(stage="safety", detail={"pii_redacted": sorted(kinds)}))


def _injection_warnings(answer: Answer, flagged: list[Hit]) -> list[str]:
    out = []
    for c in answer.citations:
        for h in flagged:
            if h.doc_id == c.doc_id and h.start <= c.start and c.end <= h.end:
                out.append(
                    f"[{c.n}] quotes {c.path}, a passage flagged as a possible prompt injection "
                    f"(p={h.injection or 0:.2f}): read it as data, not as instructions"
                )
                break
    return out


class AuditStage(_Base):
    """Appends the answer (or the refusal) to the audit log when ``audit.enabled``; runs after a refusal too."""

    name = "audit"
    requires = frozenset({"answer"})
    provides = frozenset({"audited"})
    always = True

    def __call__(self, state: RequestState, ctx: StageContext) -> None:
        t = ctx.tether
        if not t.settings.audit.enabled or state.answer is None:
            ctx.span.set("audited", False)
            return
        t._audit_answer(state.answer, kind="refusal" if state.withheld else "answer", caller=state.caller)
        ctx.span.set("audited", True)
