"""A refusal: the answer a request gets when Tether decides not to answer (a spent budget, every tier failing, a
model server down with ``llm.fallback: refuse``), with the reason a reader and the trace can see."""

from __future__ import annotations

from tether.contracts import Answer, TraceEvent
from tether.pipeline._state import RequestState


def refusal(state: RequestState, text: str, reason: str, trace: list[TraceEvent]) -> Answer:
    return Answer(
        question=state.question,
        text=text,
        abstained=True,
        support=0.0,
        threshold=0.0,
        reason=reason,
        config_hash=state.config_hash,
        trace=trace,
    )
