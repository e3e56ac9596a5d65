from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tether.answer import ExtractiveAnswerer, load_support_model
from tether.config import PACKAGED_READER, Settings, load_settings, resolve_path
from tether.contracts import Answer, Hit, IngestSummary, SearchFilters, StoreStats, TraceEvent
from tether.errors import ConfigError, IndexMissingError, RequestError
from tether.ingest import ingest_paths
from tether.ingest._pipeline import BATCH_CHUNKS, Progress
from tether.ingest._progress import Listener
from tether.models import OnnxEmbedder, load_embedder
from tether.pipeline import Caller, Pipeline, RequestKind, RequestState
from tether.pipeline._runner import StageListener
from tether.retrieve import Mode, Retriever
from tether.store import SQLiteStore, Store

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tether.answer._grounded import GroundedAnswerer
    from tether.answer._reader import ReaderBundle
    from tether.judge import Judge, StoreIdf
    from tether.pipeline._budget import SpendLedger
    from tether.pipeline._cache import AnswerCache
    from tether.rerank import Reranker
    from tether.router import Router
    from tether.safety import InjectionDetector, Redactor


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
        self._store: Store | None = None
        self._answerer: ExtractiveAnswerer | None = None
        self._policy_obj: Any = None
        self._grounded_obj: GroundedAnswerer | None = None
        self._reranker: Reranker | None = None
        self._judge: Judge | None = None
        self._packaged: ReaderBundle | None = None
        self._detector: InjectionDetector | Literal[False] | None = None  # False: none fits the embedder
        self._idf: StoreIdf | None = None
        self._redactor: Redactor | None = None
        self._pipelines: dict[RequestKind, Pipeline] = {}
        self._cache: AnswerCache | None = None
        self._tiers: dict[str, GroundedAnswerer] = {}
        self._ledger: SpendLedger | None = None
        self._fast: ExtractiveAnswerer | None = None
        self._router: Router | None = None
        self._tracing: Any = None
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

    def store(self, *, create: bool = False) -> Store:
        """The index (``index.backend``): the embedded SQLite file, or Milvus (milvus-lite or a server)."""
        with self._lock:
            if self._store is None:
                ix = self.settings.index
                if ix.backend == "milvus":
                    from tether.store._milvus import MilvusStore

                    token = os.environ.get(ix.token_env) or None
                    self._store = MilvusStore.open(
                        self.settings.index_uri, create=create, token=token, prefix=ix.prefix
                    )
                else:
                    self._store = SQLiteStore.open(self.settings.index_path, create=create)
            return self._store

    def _searchable_store(self) -> Store:
        store = self.store()
        if store.chunk_count() == 0:
            raise IndexMissingError(f"the index at {self.settings.index_uri} is empty; run `tether ingest PATH` first")
        return store

    def retriever(self) -> Retriever:
        return Retriever(self._searchable_store(), self.embedder, self.settings.retrieval)

    def _store_idf(self) -> StoreIdf:
        from tether.judge import StoreIdf

        with self._lock:
            if self._idf is None or self._idf.store is not self.store():
                self._idf = StoreIdf(self.store())
            return self._idf

    def reranker(self) -> Reranker | None:
        """The configured reranker (``rerank:`` in tether.yaml), or None when reranking is off."""
        from tether.rerank import reranker_from_settings

        with self._lock:
            if self._reranker is None and self.settings.rerank.enabled:
                self._reranker = reranker_from_settings(self.settings.rerank, self.settings.root, self._store_idf())
            return self._reranker

    def judge(self) -> Judge:
        """The configured support judge (``judge:`` in tether.yaml)."""
        from tether.answer._grounded import generator_or_error
        from tether.judge import judge_from_settings
        from tether.models import generator_from_settings

        s = self.settings
        with self._lock:
            if self._judge is None:
                self._judge = judge_from_settings(
                    s.judge,
                    s.root,
                    embedder=lambda: self.embedder,
                    generator=lambda: generator_or_error(generator_from_settings(s.llm, s.root)),
                    idf=self._store_idf(),
                    reader=lambda: self._packaged_reader().reader,
                )
            return self._judge

    def injection_detector(self) -> InjectionDetector | None:
        """The prompt-injection detector at ``safety.injection.threshold`` (None when the configured embedder is not
        the one it was fitted on: it cannot score that embedder's vectors)."""
        from tether.safety import detector_for

        with self._lock:
            if self._detector is None:
                self._detector = detector_for(self.embedder.model_id, self.settings.safety.injection.threshold) or False
            return self._detector or None

    def redactor(self) -> Redactor:
        """The PII redactor of ``safety.pii.engine`` (answers and ingest; logs and traces always use the patterns).

        Raises:
            ConfigError: engine presidio without the ``pii`` extra installed.
        """
        with self._lock:
            if self._redactor is None:
                from tether.safety import PatternRedactor, presidio_redactor

                engine = self.settings.safety.pii.engine
                self._redactor = PatternRedactor() if engine == "patterns" else presidio_redactor()
            return self._redactor

    def _packaged_reader(self) -> ReaderBundle:
        """The packaged reading model, loaded once for the answerer and the judge (call under ``self._lock``)."""
        if self._packaged is None:
            from tether.answer._reader import load_packaged_reader

            self._packaged = load_packaged_reader()
        return self._packaged

    def close(self) -> None:
        if self._tracing is not None:
            self._tracing.close()
            self._tracing = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

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
        batch_size: int = BATCH_CHUNKS,
        on_progress: Listener | None = None,
        tenant: str = "",
    ) -> IngestSummary:
        """Ingest files and folders incrementally (unchanged files are skipped by content hash).

        ``batch_size`` chunks are embedded together, then their documents are written in one
        transaction, each document all or nothing. A path that does not exist is an
        :class:`~tether.errors.IngestError` before anything is ingested; a second ingest into the same
        index waits for the first. ``progress(done, total, path)`` is called as each file is queued;
        ``on_progress`` receives an :class:`~tether.ingest.IngestProgress` (chunks embedded, ETA) after
        each step. ``tenant``: the owner of the documents (the service's uploads); '' = the shared corpus.
        """
        if tenant and tenant not in self.settings.tenants:
            raise RequestError(f"unknown tenant {tenant!r} (tenants: {', '.join(sorted(self.settings.tenants))})")
        return ingest_paths(
            [Path(p) for p in paths],
            self.store(create=True),
            self.embedder,
            self.settings.ingest,
            tags=tags,
            progress=progress,
            batch_size=batch_size,
            on_progress=on_progress,
            tenant=tenant,
        )

    def search(
        self,
        query: str,
        k: int | None = None,
        *,
        mode: Mode = "hybrid",
        filters: SearchFilters | None = None,
        query_vector: npt.NDArray[np.float32] | None = None,
        tenant: str | None = None,
    ) -> list[Hit]:
        """The top-k chunks for ``query`` (hybrid hits are reranked when ``rerank.enabled``).

        Runs the ``search`` chain of the request pipeline (``pipeline.search``, default retrieve -> rerank).
        ``query_vector``: the query's embedding, when the caller has it already (it is not computed again).

        Raises:
            RequestError: ``query`` is empty or blank, or ``k`` is below 1.
        """
        _check_text("query", query)
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise RequestError(f"k must be a whole number of hits, 1 or more, not {k!r}")
        state = RequestState(
            kind="search",
            question=query,
            caller=self._caller(None, None, tenant),
            k=k,
            mode=mode,
            filters=filters,
            query_vector=query_vector,
        )
        return self.pipeline("search").run(state, self, self.tracing()).hits

    def answer_cache(self) -> AnswerCache | None:
        """The answer cache (``cache:`` in tether.yaml), or None when it is off."""
        c = self.settings.cache
        if not c.enabled:
            return None
        with self._lock:
            if self._cache is None:
                from tether.pipeline._cache import AnswerCache

                self._cache = AnswerCache(c.max_entries, c.ttl_s, c.semantic_threshold)
            return self._cache

    def pipeline(self, kind: RequestKind) -> Pipeline:
        """The chain of stages that ``kind`` requests run through (``pipeline:`` in tether.yaml), built once.
        With ``cache.enabled`` and the default ask chain, the cache stage runs just before the answer."""
        with self._lock:
            got = self._pipelines.get(kind)
            if got is None:
                names = getattr(self.settings.pipeline, kind)
                if names is None and kind == "ask" and self.settings.cache.enabled:
                    names = ["policy", "retrieve", "rerank", "cache", "answer", "audit"]
                got = self._pipelines[kind] = Pipeline.from_names(kind, names)
            return got

    def tracing(self) -> Any:
        """This Tether's tracing (``tracing:`` in tether.yaml): spans to the local trace store and OTLP, or none."""
        with self._lock:
            if self._tracing is None:
                self._tracing = _tracing_for(self.settings)
            return self._tracing

    def _caller(self, role: str | None, classification: str | None, tenant: str | None = None) -> Caller:
        tenant = tenant or self.settings.policy.tenant
        tenants = self.settings.tenants
        if tenant is not None and tenant not in tenants:
            known = ", ".join(sorted(tenants)) or "none are configured"
            raise RequestError(f"unknown tenant {tenant!r} (tenants: {known})")
        if tenant is None and tenants:
            raise RequestError(
                "tenants are configured, so every request names one (--tenant NAME, or policy.tenant in tether.yaml)"
            )
        return Caller(
            role=role or self.settings.policy.role,
            classification=classification or self.settings.policy.classification,
            tenant=tenant,
        )

    def _policy(self) -> Any:
        from tether.tools import Policy

        with self._lock:
            if self._policy_obj is None and self.settings.policy.path:
                self._policy_obj = Policy.load(resolve_path(self.settings.policy.path, self.settings.root))
            return self._policy_obj

    def ask(
        self,
        question: str,
        *,
        filters: SearchFilters | None = None,
        role: str | None = None,
        classification: str | None = None,
        tenant: str | None = None,
        user: str | None = None,
        conversation_id: str | None = None,
        original_question: str | None = None,
        rewrite_reason: str = "",
        on_stage: StageListener | None = None,
    ) -> Answer:
        """Answer with cited spans, or abstain with "not in the documents".

        With ``policy.path`` set, the policy decides first; a deny or require_approval withholds the answer
        and names the rule. ``original_question``: the follow-up as the user wrote it, when ``question`` is its
        standalone rewrite (kept in the trace with ``rewrite_reason``). ``on_stage(name, state)`` hears of each
        stage as it ends.

        Raises:
            RequestError: ``question`` is empty or blank.
        """
        _check_text("question", question)
        caller = self._caller(role, classification, tenant)
        caller.user = user
        state = RequestState(
            kind="ask",
            question=question,
            caller=caller,
            filters=filters,
            conversation_id=conversation_id,
            original_question=original_question,
            rewrite_reason=rewrite_reason,
        )
        if original_question is not None:
            state.events.append(
                TraceEvent(stage="rewrite", detail={"original": original_question, "reason": rewrite_reason})
            )
        state = self.pipeline("ask").run(state, self, self.tracing(), on_stage)
        assert state.answer is not None  # build_chain checked that the ask chain provides one
        if state.trace_id:
            state.answer.trace_id = state.trace_id
        return state.answer

    def _audit_answer(self, answer: Answer, kind: str = "answer", caller: Caller | None = None) -> None:
        from tether.guard import open_audit_log

        who: dict[str, str] = {}
        if caller is not None and caller.tenant is not None:  # the service's requests: whose entry this is
            who = {"tenant": caller.tenant, **({"user": caller.user} if caller.user else {})}
        with open_audit_log(self.settings) as log:  # with audit.key_file / checkpoint_path when configured
            log.append(
                kind,
                "tether",
                {
                    **who,
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
                a = self.settings.answer
                model, reader = load_support_model(), None
                if a.reader is not None:
                    from tether.answer._reader import load_reader

                    bundle = (
                        self._packaged_reader()
                        if a.reader == PACKAGED_READER
                        else load_reader(resolve_path(a.reader, self.settings.root))
                    )
                    model, reader = bundle.support, bundle.reader
                detector = self.injection_detector() if self.settings.safety.injection.action != "off" else None
                self._answerer = ExtractiveAnswerer(
                    self._searchable_store(),
                    self.embedder,
                    a,
                    model,
                    reader,
                    detector=detector,
                    screen_orders=self.settings.safety.injection.action != "off",
                )
            return self._answerer

    def fast_answerer(self) -> ExtractiveAnswerer:
        """The features-only extractive answerer (no reader, its own calibrated threshold): the cascade's
        ``extractive-fast`` tier and the router's probe. The configured answerer when that already reads none."""
        if self.settings.answer.reader is None:
            return self.answerer()
        with self._lock:
            if self._fast is None:
                detector = self.injection_detector() if self.settings.safety.injection.action != "off" else None
                self._fast = ExtractiveAnswerer(
                    self._searchable_store(),
                    self.embedder,
                    self.settings.answer.model_copy(update={"threshold": None, "reader": None}),
                    load_support_model(),
                    None,
                    detector=detector,
                    screen_orders=self.settings.safety.injection.action != "off",
                    shares_with=self.answerer(),
                )
            return self._fast

    def router(self) -> Router | None:
        """The learned router of ``routing.router``, loaded once; None when there is none."""
        path = self.settings.routing.router
        if path is None:
            return None
        with self._lock:
            if self._router is None:
                from tether.router import load_router

                self._router = load_router(resolve_path(path, self.settings.root))
                cascade = self.settings.routing.cascade
                foreign = [t for t in self._router.model.tiers if t not in cascade]
                if foreign:
                    raise ConfigError(
                        f"routing.router: {path} was trained for tier(s) {', '.join(foreign)} that routing.cascade "
                        f"({', '.join(cascade)}) does not name; train it again for this cascade"
                    )
            return self._router

    def _grounded(self) -> GroundedAnswerer:
        from tether.answer._grounded import GroundedAnswerer, generator_or_error
        from tether.models import generator_from_settings

        with self._lock:
            if self._grounded_obj is None:
                from tether.models._breaker import BreakerGenerator, CircuitBreaker

                llm = self.settings.llm
                gen = BreakerGenerator(
                    generator_or_error(generator_from_settings(llm, self.settings.root)),
                    CircuitBreaker(llm.breaker_failures, llm.breaker_reset_s),
                )
                verifier = self.judge() if self.settings.answer.verify else None
                self._grounded_obj = GroundedAnswerer(
                    gen,
                    self.settings.answer,
                    verifier,
                    spotlight=self.settings.safety.spotlight,
                    prices=(llm.price_in_per_1k, llm.price_out_per_1k),
                )
            return self._grounded_obj

    def spend_ledger(self) -> SpendLedger:
        """The per-tenant spend ledger of ``budgets:`` (model calls, tokens, cost), opened once."""
        with self._lock:
            if self._ledger is None:
                from tether.pipeline._budget import SpendLedger

                self._ledger = SpendLedger(resolve_path(self.settings.budgets.path, self.settings.root))
            return self._ledger

    def tier_answerer(self, name: str) -> GroundedAnswerer:
        """The grounded answerer of the tier ``name`` (``tiers:``), behind its own circuit breaker, built once."""
        from tether.answer._grounded import GroundedAnswerer, generator_or_error
        from tether.models import generator_from_settings
        from tether.models._breaker import BreakerGenerator, CircuitBreaker

        with self._lock:
            got = self._tiers.get(name)
            if got is None:
                spec = self.settings.tiers[name]
                gen = BreakerGenerator(
                    generator_or_error(generator_from_settings(spec, self.settings.root)),
                    CircuitBreaker(spec.breaker_failures, spec.breaker_reset_s),
                )
                verifier = self.judge() if self.settings.answer.verify else None
                got = self._tiers[name] = GroundedAnswerer(
                    gen,
                    self.settings.answer,
                    verifier,
                    spotlight=self.settings.safety.spotlight,
                    prices=(spec.price_in_per_1k, spec.price_out_per_1k),
                )
            return got

    def stats(self) -> StoreStats:
        s = self.store().stats()
        detector = self.injection_detector()
        if detector is not None:
            flagged, unscanned = self.store().injection_counts(detector.threshold)
            s = s.model_copy(
                update={
                    "injection_threshold": detector.threshold,
                    "injection_flagged": flagged,
                    "injection_unscanned": unscanned,
                }
            )
        return s

    def flagged(self, limit: int = 100) -> list[Hit]:
        """Chunks the prompt-injection detector flagged at ingest, most suspect first (``Hit.injection``)."""
        detector = self.injection_detector()
        return [] if detector is None else self.store().flagged_chunks(detector.threshold, limit)


def _check_text(name: str, value: object) -> None:
    """A question or query must be a string with something to look for."""
    if not isinstance(value, str):
        raise RequestError(f"the {name} must be text, not {type(value).__name__}")
    if not value.strip():
        raise RequestError(f"the {name} is empty: say what to look for")


def _tracing_for(settings: Settings) -> Any:
    """Tracing as tether.yaml sets it up (``tether.trace``), or a no-op where it is off."""
    tracing_settings = getattr(settings, "tracing", None)
    if tracing_settings is None or not getattr(tracing_settings, "enabled", False):
        from tether.pipeline._notrace import NoTracing

        return NoTracing()
    from tether.trace import Tracing

    return Tracing.from_settings(settings)
