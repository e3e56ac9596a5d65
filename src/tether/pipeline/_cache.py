"""The answer cache: exact (the same normalised question) and semantic (a question whose embedding is close enough,
whose evidence is the same: the same best chunk, and what the answer cited still retrieved; AND whose names and
numbers are the same), per tenant, bounded, with a TTL.

An entry is only ever served in its scope: the same tenant, role, data classification, filters, configuration
hash and corpus generation. A new ingest (a new generation) or a changed tether.yaml (a new hash) makes every
older entry unreachable, and such entries are dropped as they are met. Answers that were withheld, degraded (the
model server failed) or redacted for another role are never shared across those scopes.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tether.contracts import Answer, TraceEvent
from tether.pipeline._state import RequestState

if TYPE_CHECKING:
    from tether.pipeline._stage import StageContext

_SPACE = re.compile(r"\s+")
_TRAIL = re.compile(r"[\s?!.]+$")


_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


def anchors(question: str) -> frozenset[str]:
    """The words a paraphrase must keep: names (capitalised past the first word) and anything with a digit.
    "...allowance in Porto?" and "...allowance in Lisbon?" embed close together and may share a passage; their
    anchors differ, so one is never served the other's answer."""
    words = _WORD.findall(question)
    return frozenset(
        w.lower() for i, w in enumerate(words) if any(ch.isdigit() for ch in w) or (i > 0 and w[:1].isupper())
    )


def normalise(question: str) -> str:
    """What the exact cache compares: case, spacing and trailing punctuation do not make a new question."""
    return _TRAIL.sub("", _SPACE.sub(" ", question.strip().lower()))


@dataclass
class _Entry:
    question: str
    vector: npt.NDArray[np.float32] | None
    evidence: tuple[int, ...]
    answer: Answer
    stored: float
    anchors: frozenset[str]
    needed: frozenset[int]  # the chunks the answer stands on: those it cites (an abstention: the top three hits)


class AnswerCache:
    """Bounded per tenant (least recently used out), entries expire after ``ttl_s``; thread-safe."""

    def __init__(
        self,
        max_entries: int = 1000,
        ttl_s: float = 3600.0,
        semantic_threshold: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.semantic_threshold = semantic_threshold
        self._clock = clock
        self._lock = threading.Lock()
        self._by_tenant: dict[str, OrderedDict[tuple[str, str], _Entry]] = {}
        self.hits = {"exact": 0, "semantic": 0}
        self.misses = 0

    def _live(self, tenant: str) -> OrderedDict[tuple[str, str], _Entry]:
        entries = self._by_tenant.setdefault(tenant, OrderedDict())
        now = self._clock()
        for k in [k for k, e in entries.items() if now - e.stored > self.ttl_s]:
            del entries[k]
        return entries

    def lookup(
        self,
        tenant: str,
        scope: str,
        question: str,
        vector: npt.NDArray[np.float32] | None,
        evidence: tuple[int, ...],
    ) -> tuple[Answer, str, float] | None:
        """(the cached answer, "exact" or "semantic", similarity) or None.

        An exact hit needs the same retrieved chunks in the same order. A semantic hit needs the same best chunk and
        every chunk the cached answer cites (an abstention: its top three) among those retrieved now: a paraphrase
        ranks the tail of its hits differently, but the answer stands on the same passages."""
        q = normalise(question)
        with self._lock:
            entries = self._live(tenant)
            hit = entries.get((scope, q))
            if hit is not None and hit.evidence == evidence:
                entries.move_to_end((scope, q))
                self.hits["exact"] += 1
                return hit.answer.model_copy(deep=True), "exact", 1.0
            if self.semantic_threshold is not None and vector is not None:
                best: tuple[float, tuple[str, str]] | None = None
                names = anchors(question)
                have = set(evidence)
                for key, e in entries.items():
                    if key[0] != scope or e.vector is None or e.anchors != names:
                        continue
                    if e.evidence[:1] != evidence[:1] or not e.needed <= have:
                        continue  # not the same evidence: another best passage, or what it cited is not retrieved
                    sim = float(np.dot(e.vector, vector))
                    if sim >= self.semantic_threshold and (best is None or sim > best[0]):
                        best = (sim, key)
                if best is not None:
                    entries.move_to_end(best[1])
                    self.hits["semantic"] += 1
                    return entries[best[1]].answer.model_copy(deep=True), "semantic", best[0]
            self.misses += 1
            return None

    def put(
        self,
        tenant: str,
        scope: str,
        question: str,
        vector: npt.NDArray[np.float32] | None,
        evidence: tuple[int, ...],
        answer: Answer,
        cited: frozenset[int] | None = None,
    ) -> None:
        """Keep ``answer``; ``cited``: the chunk ids it cites (None: the top three of ``evidence`` stand in)."""
        needed = cited if cited else frozenset(evidence[:3])
        with self._lock:
            entries = self._live(tenant)
            key = (scope, normalise(question))
            entries[key] = _Entry(
                question, vector, evidence, answer.model_copy(deep=True), self._clock(), anchors(question), needed
            )
            entries.move_to_end(key)
            while len(entries) > self.max_entries:
                entries.popitem(last=False)

    def size(self, tenant: str) -> int:
        with self._lock:
            return len(self._live(tenant))


def scope_of(state: RequestState, generation: int) -> str:
    """Everything besides the question that decides an answer: who asks, what they filtered, the config, the
    corpus generation."""
    c = state.caller
    filters = state.filters.model_dump(mode="json", exclude={"allow"}) if state.filters is not None else None
    blob = json.dumps(
        [c.tenant, c.role, c.classification, filters, state.config_hash, generation], sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class CacheStage:
    """Serves a cached answer when one fits (exact or semantic, same evidence), ending the request early; otherwise
    notes the scope so that the answer stage stores what it answers. Placed after retrieval and reranking."""

    name = "cache"
    requires = frozenset({"hits", "query_vector"})
    provides = frozenset({"answer"})
    always = False

    def warm_up(self, tether: object) -> None:
        return None

    def __call__(self, state: RequestState, ctx: StageContext) -> None:
        t = ctx.tether
        cache = t.answer_cache()
        if cache is None:
            return
        state.cache_scope = scope_of(state, t.store().generation)
        state.cache_evidence = tuple(h.chunk_id for h in state.hits)
        got = cache.lookup(
            state.caller.tenant or "", state.cache_scope, state.question, state.query_vector, state.cache_evidence
        )
        ctx.span.set("cache", got[1] if got else "miss")
        if got is None:
            return
        answer, kind, sim = got
        cached_question = answer.question
        answer.question = state.question
        answer.trace = [
            *state.events,
            TraceEvent(stage="cache", detail={"kind": kind, "similarity": round(sim, 4), "of": cached_question}),
        ]
        state.answer = answer
        state.done = True


def store_answer(state: RequestState, ctx: StageContext, answer: Answer) -> None:
    """Keep a fresh answer for later requests of the same scope (called by the answer stage)."""
    cache = ctx.tether.answer_cache()
    if cache is None or state.cache_scope is None or state.withheld:
        return
    if any(e.stage in ("fallback", "budget") for e in answer.trace):
        return  # a degraded answer is not what a working model server (or an unspent budget) would give
    cited = frozenset(
        h.chunk_id
        for h in state.hits
        if any(c.doc_id == h.doc_id and h.start <= c.start < h.end for c in answer.citations)
    )
    cache.put(
        state.caller.tenant or "",
        state.cache_scope,
        state.question,
        state.query_vector,
        state.cache_evidence,
        answer,
        cited or None,
    )
