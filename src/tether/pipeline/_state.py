"""The request state every stage reads and writes: what was asked, by whom, and what the stages found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tether.contracts import Answer, Hit, SearchFilters, TraceEvent
from tether.retrieve import Mode

RequestKind = Literal["ask", "search"]


@dataclass
class Caller:
    """Who asks: the policy's role and data classification today; tenant and user for the service."""

    role: str
    classification: str
    tenant: str | None = None
    user: str | None = None


@dataclass
class RequestState:
    """One request as it passes through the stages (a small mutable record, like Inspect AI's task state).

    A stage reads the fields earlier stages filled and fills its own; ``done`` ends the chain early (a policy
    refusal), after which only stages that run ``always`` (the audit) still run.
    """

    kind: RequestKind
    question: str
    caller: Caller
    k: int | None = None  # search: hits wanted (None: retrieval.top_k)
    mode: Mode = "hybrid"
    filters: SearchFilters | None = None
    conversation_id: str | None = None
    cache_scope: str | None = None  # set by the cache stage: the answer stage stores its answer under it
    cache_evidence: tuple[int, ...] = ()
    original_question: str | None = None  # the follow-up as the user wrote it, when ``question`` is its rewrite
    rewrite_reason: str = ""
    budget: dict[str, float] = field(default_factory=dict)  # reserved for the routing issue's budgets
    query_vector: npt.NDArray[np.float32] | None = None
    candidates: int = 0  # how many hits retrieval handed on (before reranking cut them to k)
    hits: list[Hit] = field(default_factory=list)
    answer: Answer | None = None
    withheld: bool = False  # the policy withheld the answer
    decisions: list[dict[str, Any]] = field(default_factory=list)  # policy rules and other decisions, in order
    events: list[TraceEvent] = field(default_factory=list)  # the answer's trace (as `ask --trace` shows it)
    config_hash: str = ""  # of the settings the request runs with (set once by the runner)
    trace_id: str = ""
    done: bool = False
    provided: set[str] = field(default_factory=set)  # what the stages run so far have produced
