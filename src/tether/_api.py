from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.answer import ExtractiveAnswerer, load_support_model
from tether.config import Settings, load_settings
from tether.contracts import Answer, Hit, IngestSummary, SearchFilters, StoreStats, TraceEvent
from tether.errors import IndexMissingError
from tether.ingest import ingest_paths
from tether.ingest._pipeline import Progress
from tether.models import OnnxEmbedder, load_embedder
from tether.retrieve import Mode, Retriever
from tether.store import SQLiteStore

if TYPE_CHECKING:
    from tether.answer._grounded import GroundedAnswerer


class Tether:
    """The library's front door: ingest, search and ask over one index.

    Example:
        >>> t = Tether.open("tether.yaml")          # doctest: +SKIP
        >>> answer = t.ask("How do I write a for loop?")  # doctest: +SKIP
        >>> answer.abstained, answer.citations[0].quote  # doctest: +SKIP
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._embedder: OnnxEmbedder | None = None
        self._store: SQLiteStore | None = None
        self._answerer: ExtractiveAnswerer | None = None
        self._policy_obj: Any = None
        self._grounded_obj: GroundedAnswerer | None = None
        self._lock = threading.RLock()  # lazy parts are created once, even when asked from threads

    @classmethod
    def open(cls, config: str | Path | None = None) -> Tether:
        """Load tether.yaml (or the defaults when ``config`` is None and there is none here)."""
        return cls(load_settings(config))

    # -- parts, loaded lazily ----------------------------------------------------
    @property
    def embedder(self) -> OnnxEmbedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = load_embedder(self.settings.embedding, self.settings.root)
            return self._embedder

    def store(self, *, create: bool = False) -> SQLiteStore:
        with self._lock:
            if self._store is None:
                self._store = SQLiteStore.open(self.settings.index_path, create=create)
            return self._store

    def _searchable_store(self) -> SQLiteStore:
        store = self.store()
        if store.chunk_count() == 0:
            raise IndexMissingError(f"the index at {store.path} is empty; run `tether ingest PATH` first")
        return store

    def retriever(self) -> Retriever:
        return Retriever(self._searchable_store(), self.embedder, self.settings.retrieval)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Tether:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the user's day ----------------------------------------------------------
    def ingest(
        self,
        paths: list[str | Path],
        *,
        tags: list[str] | None = None,
        progress: Progress | None = None,
        batch_size: int = 128,
    ) -> IngestSummary:
        """Ingest files and folders incrementally (unchanged files are skipped by content hash).

        ``batch_size`` chunks are embedded together before their documents are written, one
        transaction per document.
        """
        return ingest_paths(
            [Path(p) for p in paths],
            self.store(create=True),
            self.embedder,
            self.settings.ingest,
            tags=tags,
            progress=progress,
            batch_size=batch_size,
        )

    def search(
        self, query: str, k: int | None = None, *, mode: Mode = "hybrid", filters: SearchFilters | None = None
    ) -> list[Hit]:
        """The top-k chunks for ``query``."""
        return self.retriever().search(query, k, mode=mode, filters=filters)

    def _policy(self) -> Any:
        from tether.tools import Policy

        with self._lock:
            if self._policy_obj is None and self.settings.policy.path:
                p = Path(self.settings.policy.path)
                self._policy_obj = Policy.load(p if p.is_absolute() else self.settings.root / p)
            return self._policy_obj

    def ask(
        self,
        question: str,
        *,
        filters: SearchFilters | None = None,
        role: str | None = None,
        classification: str | None = None,
    ) -> Answer:
        """Answer with cited spans, or abstain with "not in the documents".

        With ``policy.path`` set, the policy decides first; a deny or require_approval withholds the answer
        and names the rule.
        """
        t0 = time.perf_counter()
        policy = self._policy()
        if policy is not None:
            from tether.tools import PolicyContext

            d = policy.decide(
                PolicyContext(
                    on="answer",
                    text=question,
                    role=role or self.settings.policy.role,
                    classification=classification or self.settings.policy.classification,
                )
            )
            if d.action != "allow":
                withheld = Answer(
                    question=question,
                    text="Withheld by policy." if d.action == "deny" else "Withheld: this answer needs approval.",
                    abstained=True,
                    support=0.0,
                    threshold=self.answerer().threshold,
                    reason=f"policy {d.action}: {d.reason} (policy v{d.policy_version} {d.policy_hash})",
                    config_hash=self.settings.config_hash,
                    trace=[TraceEvent(stage="policy", detail=d.model_dump())],
                )
                if self.settings.audit.enabled:
                    self._audit_answer(withheld, kind="refusal")
                return withheld
        retriever = self.retriever()
        qvec = retriever.embed_query(question)
        hits = retriever.search(question, filters=filters, mode="hybrid", query_vector=qvec)
        trace: list[TraceEvent] = [
            TraceEvent(stage="config", detail={"config_hash": self.settings.config_hash}),
            *retriever.trace,
            TraceEvent(
                stage="hits",
                detail={"chunks": [{"path": h.path, "section": h.section, "score": h.score} for h in hits]},
            ),
        ]
        if self.settings.answer.mode == "llm":
            answer = self._grounded().answer(question, hits, config_hash=self.settings.config_hash, trace=trace)
        else:
            answer = self.answerer().answer(question, hits, qvec, config_hash=self.settings.config_hash, trace=trace)
        answer.trace.append(TraceEvent(stage="total", ms=(time.perf_counter() - t0) * 1000))
        if self.settings.audit.enabled:
            self._audit_answer(answer)
        return answer

    def _audit_answer(self, answer: Answer, kind: str = "answer") -> None:
        from tether.guard import AuditLog

        path = Path(self.settings.audit.path)
        with AuditLog.open(path if path.is_absolute() else self.settings.root / path) as log:
            log.append(
                kind,
                "tether",
                {
                    "question": answer.question,
                    "abstained": answer.abstained,
                    "support": round(answer.support, 4),
                    "citations": [{"path": c.path, "start": c.start, "end": c.end} for c in answer.citations],
                    "reason": answer.reason,
                },
                self.settings.config_hash,
            )

    def answerer(self) -> ExtractiveAnswerer:
        with self._lock:
            if self._answerer is None:
                self._answerer = ExtractiveAnswerer(
                    self._searchable_store(), self.embedder, self.settings.answer, load_support_model()
                )
            return self._answerer

    def _grounded(self) -> GroundedAnswerer:
        from tether.answer._grounded import GroundedAnswerer, generator_or_error
        from tether.models import generator_from_settings

        with self._lock:
            if self._grounded_obj is None:
                from tether.answer._verify import LLMClaimVerifier

                gen = generator_or_error(generator_from_settings(self.settings.llm))
                verifier = LLMClaimVerifier(gen) if self.settings.answer.verify else None
                self._grounded_obj = GroundedAnswerer(gen, self.settings.answer, verifier)
            return self._grounded_obj

    def stats(self) -> StoreStats:
        return self.store().stats()
