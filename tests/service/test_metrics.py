"""Routing is visible in the service's metrics: tiers tried by outcome, where the router or a rule started a
request, model cost per tenant, and asks a spent budget answered without model work."""

from __future__ import annotations

from tether.contracts import Answer, TraceEvent
from tether.service._metrics import Metrics


def _answer(*events: TraceEvent) -> Answer:
    return Answer(
        question="q", text="t", abstained=False, support=0.9, threshold=0.5, config_hash="h", trace=list(events)
    )


def test_route_events_become_counters() -> None:
    m = Metrics()
    route = TraceEvent(
        stage="route",
        detail={
            "tried": [
                {"tier": "extractive", "outcome": "abstained", "cost": 0.0},
                {"tier": "small", "outcome": "answered", "cost": 0.0025},
            ],
            "cost": 0.0025,
            "router": {"choice": "extractive", "rule": None},
        },
    )
    m.answer("acme", _answer(route))
    ruled = TraceEvent(stage="route", detail={"tried": [], "cost": 0.0, "router": {"choice": "refuse", "rule": 0}})
    m.answer("acme", _answer(ruled))
    m.answer("globex", _answer(TraceEvent(stage="budget", detail={"budget": "max_calls"})))
    text = m.text().decode()
    assert 'tether_route_tier_calls_total{outcome="abstained",tier="extractive"} 1.0' in text
    assert 'tether_route_tier_calls_total{outcome="answered",tier="small"} 1.0' in text
    assert 'tether_route_starts_total{by="router",start="extractive"} 1.0' in text
    assert 'tether_route_starts_total{by="rule",start="refuse"} 1.0' in text
    assert 'tether_model_cost_total{tenant="acme"} 0.0025' in text
    assert 'tether_budget_exhausted_total{tenant="globex"} 1.0' in text


def test_malformed_route_details_are_skipped_not_raised() -> None:
    m = Metrics()
    m.answer("acme", _answer(TraceEvent(stage="route", detail={"tried": "x", "router": 3, "cost": "lots"})))
    assert "tether_model_cost_total{" not in m.text().decode()
