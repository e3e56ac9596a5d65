"""The eval runner: cases -> answers -> scores, with bounded concurrency, timeouts, retries and a cache."""

from __future__ import annotations

import hashlib
import json
import queue
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from tether._api import Tether
from tether.config import ConfigHistory, Settings
from tether.contracts import Answer
from tether.errors import TetherError, TransientError
from tether.evals._cases import EvalCase
from tether.evals._llm_judge import LLMJudge, choose_judge
from tether.evals._results import CaseResult, RunReport, RunSummary, TurnResult
from tether.evals._scorers import Judge, ScoreContext, score_answer
from tether.evals._store import EvalStore
from tether.memory import Turn as MemoryTurn
from tether.memory import rewrite_followup

Progress = Callable[[int, int], None]
_TIMED_OUT = "timed out after"


def _blank(case: EvalCase, repeat: int, error: str | None = None) -> CaseResult:
    return CaseResult(case_id=case.id, repeat=repeat, tags=case.tags, source=case.source, flaky=case.flaky, error=error)


class DryRun(BaseModel):
    """What a run would cost, counted before anything is spent."""

    cases: int
    repeats: int
    questions: int
    llm_calls: int
    estimated_tokens: int
    embedding_calls: int
    cached_questions: int
    context_indexes: int
    note: str


@dataclass
class RunOptions:
    concurrency: int = 2
    timeout_s: float = 120.0
    retries: int = 2
    repeat: int = 1
    use_cache: bool = True
    memory: bool = True  # multi-turn cases: each follow-up is rewritten from the conversation, as the service does
    tenant: str | None = None  # ask as this tenant (tenants: in tether.yaml); context_docs cases use their own docs


def _slug(text: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", text)[:6]
    return "-".join(w.lower() for w in words) or "doc"


class _ContextIndexes:
    """One small real index per distinct set of context_docs (cases that bring their own documents)."""

    def __init__(self, base: Settings) -> None:
        self.base = base
        self._tmp = tempfile.TemporaryDirectory(prefix="tether-eval-")
        self._by_key: dict[str, Tether] = {}
        self._lock = threading.Lock()

    def key(self, docs: list[str]) -> str:
        return hashlib.sha256(json.dumps(docs).encode()).hexdigest()[:16]

    def get(self, docs: list[str], embedder_owner: Tether) -> Tether:
        k = self.key(docs)
        with self._lock:
            if k not in self._by_key:
                folder = Path(self._tmp.name) / k
                (folder / "docs").mkdir(parents=True)
                for i, text in enumerate(docs, 1):
                    (folder / "docs" / f"{i:02d}-{_slug(text)}.txt").write_text(text, encoding="utf-8")
                settings = self.base.model_copy(
                    update={
                        "index": self.base.index.model_copy(update={"path": str(folder / "index.db")}),
                        # the case's own documents: no tenant's allowlist applies to them
                        "tenants": {},
                        "policy": self.base.policy.model_copy(update={"tenant": None}),
                    }
                ).with_root(folder)
                t = Tether(settings)
                t._embedder = embedder_owner.embedder  # share the loaded model
                t.ingest([folder / "docs"])
                self._by_key[k] = t
            return self._by_key[k]

    def close(self) -> None:
        for t in self._by_key.values():
            t.close()
        self._tmp.cleanup()


class EvalRunner:
    """Runs eval cases against a :class:`Tether` and scores every answer.

    Example:
        >>> runner = EvalRunner(Tether.open("tether.yaml"))   # doctest: +SKIP
        >>> report = runner.run(load_cases("evals/"), "evals/")  # doctest: +SKIP
    """

    def __init__(
        self,
        tether: Tether,
        store: EvalStore | None = None,
        options: RunOptions | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.tether = tether
        self.store = store
        self.options = options or RunOptions()
        self.judge = judge or choose_judge(tether.settings)
        self._context_indexes: _ContextIndexes | None = None

    @property
    def _contexts(self) -> _ContextIndexes:
        if self._context_indexes is None:
            self._context_indexes = _ContextIndexes(self.tether.settings)
        return self._context_indexes

    def close(self) -> None:
        """Remove the temporary indexes of context_docs cases."""
        if self._context_indexes is not None:
            self._context_indexes.close()
            self._context_indexes = None

    # -- one question --------------------------------------------------------------
    def _target(self, case: EvalCase) -> Tether:
        return self._contexts.get(case.input.context_docs, self.tether) if case.input.context_docs else self.tether

    def _cache_key(self, case: EvalCase, question: str, repeat: int = 0) -> str:
        """Content hash of what decides the answer: settings, the documents, the question, the repeat.

        Each repeat is its own sample (so pass^N means something with a sampling model), and a re-run
        of an unchanged set finds every repeat cached.
        """
        if case.input.context_docs:
            source = ["context", self._contexts.key(case.input.context_docs)]
        else:
            store = self.tether.store()
            source = ["index", str(store.path.resolve()), str(store.generation)]
        tenant = None if case.input.context_docs else self.options.tenant
        blob = json.dumps([self.tether.settings.config_hash, *source, question, repeat, tenant])
        return hashlib.sha256(blob.encode()).hexdigest()

    def _ask(self, case: EvalCase, target: Tether, question: str, repeat: int) -> tuple[Answer, bool]:
        key = self._cache_key(case, question, repeat)
        if self.options.use_cache and self.store is not None:
            hit = self.store.cached(key)
            if hit is not None:
                return hit, True
        delay = 0.5
        for attempt in range(self.options.retries + 1):
            try:
                answer = target.ask(question, tenant=self.options.tenant if target is self.tether else None)
                break
            except TransientError:
                if attempt == self.options.retries:
                    raise
                time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not crypto
                delay *= 2
        if self.options.use_cache and self.store is not None:
            self.store.cache(key, answer)
        return answer, False

    def run_case(self, case: EvalCase, repeat: int = 0) -> CaseResult:
        """Ask and score one case (what a pytest test per case calls; see docs/evals.md)."""
        return self._run_case(case, repeat)

    def _run_case(self, case: EvalCase, repeat: int) -> CaseResult:
        t0 = time.perf_counter()
        result = _blank(case, repeat)
        try:
            target = self._target(case)
            store = target.store()
            ctx = ScoreContext(document_text=store.document_text, judge=self.judge)
            history: list[MemoryTurn] = []
            for step in case.steps():
                q0 = time.perf_counter()
                asked = step.user
                if self.options.memory and case.input.turns:
                    asked = rewrite_followup(history, step.user).question
                    history.append(MemoryTurn(role="user", text=asked))
                try:
                    answer, cached = self._ask(case, target, asked, repeat)
                except TetherError as e:
                    result.turns.append(TurnResult(question=step.user, standalone=asked, error=str(e)))
                    continue
                history.append(MemoryTurn(role="assistant", text=answer.text))
                scores = score_answer(step.expected, case.scoring, answer, ctx)
                result.turns.append(
                    TurnResult(
                        question=step.user,
                        standalone=asked,
                        answer=answer,
                        latency_ms=(time.perf_counter() - q0) * 1000,
                        cached=cached,
                        scores=scores,
                    )
                )
        except TetherError as e:
            result.error = str(e)
        result.latency_ms = (time.perf_counter() - t0) * 1000
        return result

    # -- a whole run ---------------------------------------------------------------
    def dry_run(self, cases: list[EvalCase]) -> DryRun:
        """Count what a run would cost; nothing is asked or embedded."""
        questions = sum(len(c.steps()) for c in cases) * self.options.repeat
        contexts = {self._contexts.key(c.input.context_docs) for c in cases if c.input.context_docs}
        cached = 0
        if self.store is not None and self.options.use_cache:
            for c in cases:
                for s in c.steps():
                    try:
                        hit = self.store.cached(self._cache_key(c, s.user))
                    except TetherError:  # no index yet: nothing can be cached
                        hit = None
                    cached += hit is not None
        judged = (
            sum(len(c.steps()) for c in cases if "llm_judge" in c.scoring.values()) * self.options.repeat
            if isinstance(self.judge, LLMJudge)
            else 0
        )
        return DryRun(
            cases=len(cases),
            repeats=self.options.repeat,
            questions=questions,
            llm_calls=judged,
            estimated_tokens=judged * 700,  # sources window + answer + instructions, measured order of magnitude
            embedding_calls=questions - cached * self.options.repeat,
            cached_questions=cached,
            context_indexes=len(contexts),
            note="answers are extractive (no LLM); "
            + (f"judge {self.judge.name}: one call per llm_judge metric" if judged else "judge runs offline"),
        )

    def run(self, cases: list[EvalCase], cases_path: str, progress: Progress | None = None) -> RunReport:
        """Run every case ``repeat`` times, ``concurrency`` at a time, and store the report.

        Each case has ``timeout_s`` from the moment a worker starts it. A case past its deadline is
        recorded as an error and abandoned: a Python thread cannot be killed, so its worker (a daemon
        thread, which never holds up the process's exit) is left to finish on its own, its result is
        ignored, and a fresh worker takes its place, so a stuck judge or model server costs one timeout
        per case instead of stalling the run.
        """
        ConfigHistory.for_settings(self.tether.settings).record(self.tether.settings)  # `tether config history`
        t0 = time.perf_counter()
        jobs = [(c, r) for r in range(self.options.repeat) for c in cases]
        results = _Pool(self, jobs).run(progress)
        order = {c.id: i for i, c in enumerate(cases)}
        results.sort(key=lambda r: (r.repeat, order[r.case_id]))
        if results and any(r.error and r.error.startswith(_TIMED_OUT) for r in results):
            self._context_indexes = None  # an abandoned case may still read them; their files go at exit
        self.close()
        report = RunReport(summary=self._summarise(results, cases_path, time.perf_counter() - t0), results=results)
        if self.store is not None:
            self.store.save(report)
        return report

    def _summarise(self, results: list[CaseResult], cases_path: str, seconds: float) -> RunSummary:
        by_case: dict[str, list[bool]] = {}
        for r in results:
            by_case.setdefault(r.case_id, []).append(r.passed)
        first = [r for r in results if r.repeat == 0]
        tags: dict[str, list[bool]] = {}
        metrics: dict[str, list[float]] = {}
        scorer_errors = 0
        lat: list[float] = []
        for r in results:
            for t in r.turns:
                if not t.cached and t.error is None:
                    lat.append(t.latency_ms)
                for s in t.scores:
                    if s.error:
                        scorer_errors += 1
                    if s.passed is not None:
                        metrics.setdefault(s.name, []).append(1.0 if s.passed else 0.0)
        for r in first:
            for tag in r.tags or ["(untagged)"]:
                tags.setdefault(tag, []).append(r.passed)
        n = max(len(by_case), 1)
        return RunSummary(
            run_id=datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
            created=datetime.now(UTC),
            cases_path=cases_path,
            config_hash=self.tether.settings.config_hash,
            models={"embedding": self.tether.embedder.model_id, "answerer": self.tether.settings.answer.mode},
            judge=self.judge.name,
            repeats=self.options.repeat,
            cases=len(by_case),
            passed=sum(1 for r in first if r.passed),
            errors=sum(1 for r in results if r.error or any(t.error for t in r.turns)),
            pass_rate=sum(1 for r in first if r.passed) / max(len(first), 1),
            pass_at_n=sum(1 for v in by_case.values() if any(v)) / n,
            pass_all_n=sum(1 for v in by_case.values() if all(v)) / n,
            per_tag={k: sum(v) / len(v) for k, v in sorted(tags.items())},
            per_metric={k: float(np.mean(v)) for k, v in sorted(metrics.items())},
            scorer_errors=scorer_errors,
            latency_p50_ms=float(np.percentile(lat, 50)) if lat else 0.0,
            latency_p95_ms=float(np.percentile(lat, 95)) if lat else 0.0,
            cached_turns=sum(1 for r in results for t in r.turns if t.cached),
            tokens=sum(sc.tokens for r in results for t in r.turns for sc in t.scores),
            model_calls=sum(1 for r in results for t in r.turns for sc in t.scores if sc.tokens),
            seconds=seconds,
        )


class _Pool:
    """Workers that take cases from a queue; the caller's thread watches each case's deadline.

    A worker whose case ran past its deadline is abandoned (never joined) and replaced.
    """

    def __init__(self, runner: EvalRunner, jobs: list[tuple[EvalCase, int]]) -> None:
        self.runner = runner
        self.jobs = jobs
        self.todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(jobs)):
            self.todo.put(i)
        self.finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.running: dict[int, float] = {}  # job -> monotonic start, while a worker runs it
        self.results: dict[int, CaseResult] = {}
        self.abandoned: set[int] = set()

    def _work(self) -> None:
        while True:
            try:
                i = self.todo.get_nowait()
            except queue.Empty:
                return
            case, repeat = self.jobs[i]
            with self.lock:
                self.running[i] = time.monotonic()
            try:
                result = self.runner._run_case(case, repeat)
            except Exception as e:  # a bug or an unexpected library error: an error of this case, not of the run
                result = _blank(case, repeat, f"unexpected {type(e).__name__}: {e}")
            with self.lock:
                if i in self.abandoned:
                    return  # past its deadline: the result is already recorded and a new worker took over
                del self.running[i]
                self.results[i] = result
            self.finished.put(i)

    def _start_worker(self) -> None:
        threading.Thread(target=self._work, name="tether-eval", daemon=True).start()

    def run(self, progress: Progress | None) -> list[CaseResult]:
        timeout = self.runner.options.timeout_s
        for _ in range(min(max(1, self.runner.options.concurrency), len(self.jobs))):
            self._start_worker()
        done = 0
        while done < len(self.jobs):
            finished = 0
            try:
                self.finished.get(timeout=0.05)
                finished += 1
                while True:
                    self.finished.get_nowait()
                    finished += 1
            except queue.Empty:
                pass
            now = time.monotonic()
            with self.lock:
                late = [i for i, started in self.running.items() if now - started > timeout]
                for i in late:
                    del self.running[i]
                    self.abandoned.add(i)
                    case, repeat = self.jobs[i]
                    self.results[i] = _blank(case, repeat, f"{_TIMED_OUT} {timeout:g}s (abandoned)")
            for _ in late:
                self._start_worker()
            if finished or late:
                done += finished + len(late)
                if progress is not None:
                    progress(done, len(self.jobs))
        return [self.results[i] for i in range(len(self.jobs))]
