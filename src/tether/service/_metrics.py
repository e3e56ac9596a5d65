"""Prometheus metrics of one service: requests, latency, answers (abstained, withheld), verifier rejections,
injection flags, ingest jobs, feedback, and routing: tiers tried by outcome, where requests started, model cost,
spent budgets. Each service has its own registry (tests run several in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tether.contracts import Answer

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tether_http_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram(
            "tether_http_request_seconds", "HTTP request latency", ["route"], buckets=_BUCKETS, registry=r
        )
        self.in_flight = Gauge("tether_http_in_flight", "requests being served", registry=r)
        self.answers = Counter("tether_answers", "answers given", ["tenant", "outcome"], registry=r)
        self.rejected_claims = Counter(
            "tether_verifier_rejected_claims", "claims the verifier rejected", ["tenant"], registry=r
        )
        self.jobs = Counter("tether_ingest_jobs", "ingest jobs finished", ["status"], registry=r)
        self.feedback = Counter("tether_feedback", "feedback records stored", ["rating"], registry=r)
        self.cache = Counter("tether_answer_cache", "asks served from the answer cache, or not", ["result"], registry=r)
        self.fallbacks = Counter(
            "tether_llm_fallbacks", "answers that fell back because the model server failed", ["to"], registry=r
        )
        self.tiers = Counter(
            "tether_route_tier_calls", "cascade tiers tried, by outcome", ["tier", "outcome"], registry=r
        )
        self.route_starts = Counter(
            "tether_route_starts", "where the router or a rule started a request", ["start", "by"], registry=r
        )
        self.cost = Counter("tether_model_cost", "money spent on model tiers (price tables)", ["tenant"], registry=r)
        self.budget = Counter(
            "tether_budget_exhausted", "asks answered without model work: the tenant's budget is spent", ["tenant"],
            registry=r,
        )  # fmt: skip

    def answer(self, tenant: str, a: Answer) -> None:
        outcome = "withheld" if a.reason.startswith("policy") else "abstained" if a.abstained else "answered"
        self.answers.labels(tenant, outcome).inc()
        rejected = 0
        for e in a.trace:
            if e.stage == "fallback":
                self.fallbacks.labels(str(e.detail.get("to", ""))).inc()
            elif e.stage == "cache":
                self.cache.labels(str(e.detail.get("kind", ""))).inc()
            elif e.stage == "budget":
                self.budget.labels(tenant).inc()
            elif e.stage == "route":
                self._route(tenant, e.detail)
            verdicts = e.detail.get("verdicts") if e.stage.startswith("verify") else None
            if isinstance(verdicts, list):
                rejected += sum(1 for v in verdicts if isinstance(v, dict) and v.get("label") != "SUPPORTED")
        if rejected:
            self.rejected_claims.labels(tenant).inc(rejected)

    def _route(self, tenant: str, detail: dict[str, object]) -> None:
        tried = detail.get("tried")
        for x in tried if isinstance(tried, list) else []:
            if isinstance(x, dict):
                self.tiers.labels(str(x.get("tier", "")), str(x.get("outcome", ""))).inc()
        router = detail.get("router")
        if isinstance(router, dict):
            self.route_starts.labels(
                str(router.get("choice", "")), "rule" if router.get("rule") is not None else "router"
            ).inc()
        cost = detail.get("cost")
        if isinstance(cost, (int, float)) and cost > 0:
            self.cost.labels(tenant).inc(float(cost))

    def text(self) -> bytes:
        return generate_latest(self.registry)
