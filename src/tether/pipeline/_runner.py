"""Running a request through its chain of stages, one trace per request and one span per stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tether.config import ConfigHistory
from tether.contracts import TraceEvent
from tether.pipeline._chain import build_chain
from tether.pipeline._stage import Stage, StageContext
from tether.pipeline._state import RequestKind, RequestState

StageListener = Callable[[str, RequestState], None]

if TYPE_CHECKING:
    from tether._api import Tether
    from tether.trace import Tracing


class Pipeline:
    """The chain of stages for one kind of request (``ask`` or ``search``), built once per Tether."""

    def __init__(self, kind: RequestKind, stages: list[Stage]) -> None:
        self.kind = kind
        self.stages = stages
        self.names = tuple(s.name for s in stages)

    @classmethod
    def from_names(cls, kind: RequestKind, names: list[str] | tuple[str, ...] | None = None) -> Pipeline:
        return cls(kind, build_chain(kind, names))

    def warm_up(self, tether: Tether) -> None:
        for s in self.stages:
            s.warm_up(tether)

    def run(
        self, state: RequestState, tether: Tether, tracing: Tracing, on_stage: StageListener | None = None
    ) -> RequestState:
        """Run every stage in order (after ``state.done`` only those that run ``always``); ``on_stage(name, state)``
        hears of each stage as it ends (the service streams these as progress events)."""
        t0 = time.perf_counter()
        state.config_hash = tether.settings.config_hash  # once a request: hashing the settings costs ~0.3 ms
        # the settings that produce this answer are kept with their hash (`tether config history`)
        ConfigHistory.for_settings(tether.settings).record(tether.settings)
        attrs: dict[str, str | bool | int | float | list[str]] = {
            "kind": state.kind,
            "question": state.question,
            "config_hash": state.config_hash,
            "stages": list(self.names),
            "caller.role": state.caller.role,
            "caller.tenant": state.caller.tenant or "",
        }
        if state.conversation_id:
            attrs["conversation_id"] = state.conversation_id
        if state.original_question is not None:  # a follow-up rewritten into this standalone question
            attrs["question.original"] = state.original_question
            attrs["question.rewrite"] = state.rewrite_reason
        with tracing.request(state.kind, attrs) as req:
            state.trace_id = req.trace_id
            for stage in self.stages:
                if state.done and not stage.always:
                    continue
                with req.stage(stage.name) as span:
                    stage(state, StageContext(tether=tether, chain=self.names, span=span))
                state.provided |= stage.provides
                if on_stage is not None:
                    on_stage(stage.name, state)
            if state.answer is not None and not state.withheld:
                state.answer.trace.append(TraceEvent(stage="total", ms=(time.perf_counter() - t0) * 1000))
            req.set("abstained", bool(state.answer.abstained) if state.answer is not None else False)
            req.set("hits", len(state.hits))
        return state
