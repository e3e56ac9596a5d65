"""Asking, searching, conversations with memory, remembered facts, feedback, traces and stats."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from tether.contracts import Answer, Feedback, SearchFilters
from tether.pipeline import RequestState
from tether.service._app import Caller, Svc
from tether.service._auth import Principal, ServiceError
from tether.service._data import Turn
from tether.service._schemas import (
    AskRequest,
    Fact,
    FactList,
    FeedbackRequest,
    FeedbackResponse,
    MessageRequest,
    SearchRequest,
    SearchResponse,
    TurnResponse,
)
from tether.trace import TraceDetail, TraceError, TraceReader, TraceSummary

router = APIRouter(prefix="/v1")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def check_question(svc: Svc, text: str, name: str = "question") -> None:
    limit = svc.tether.settings.service.max_question_chars
    if len(text) > limit:
        raise ServiceError(422, "invalid_request", f"{name}: {len(text)} characters, more than the {limit} allowed")
    if not text.strip():
        raise ServiceError(422, "invalid_request", f"{name}: empty; say what to look for")


def filters_of(tags: list[str], path_glob: str | None) -> SearchFilters | None:
    return SearchFilters(tags=tags, path_glob=path_glob) if tags or path_glob else None


def rewrite(svc: Svc, history: list[Any], question: str) -> Any:
    """The standalone question for a follow-up: by the configured model in llm mode (guarded: a rewrite that adds
    words from nowhere falls back to the rules), else by the rules (offline, deterministic)."""
    from tether.memory import llm_rewrite, rewrite_followup

    if svc.tether.settings.answer.mode == "llm" and history:
        return llm_rewrite(svc.tether._grounded().generator, history, question)
    return rewrite_followup(history, question)


def ask_as(svc: Svc, who: Principal, question: str, **kw: Any) -> Answer:
    """``Tether.ask`` as the key's tenant and role, counted in the metrics."""
    with svc.model_slots:
        answer = svc.tether.ask(question, tenant=who.tenant, role=who.role, user=who.user, **kw)
    svc.metrics.answer(who.tenant, answer)
    return answer


def stream_answer(run: Callable[[Callable[[str, RequestState], None]], Any]) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events of one answer: a ``stage`` event as each stage of the pipeline ends, then ``answer``
    (or ``error``), then ``done``. ``run(on_stage)`` computes the result in a worker thread."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[ServerSentEvent | None] = asyncio.Queue()

    def on_stage(name: str, state: RequestState) -> None:
        detail: dict[str, Any] = {"stage": name, "hits": len(state.hits)}
        if state.original_question is not None:
            detail["rewritten"] = state.question
        loop.call_soon_threadsafe(events.put_nowait, ServerSentEvent(event="stage", data=detail))

    def work() -> None:
        try:
            result = run(on_stage)
            data = result.model_dump(mode="json") if hasattr(result, "model_dump") else result
            loop.call_soon_threadsafe(events.put_nowait, ServerSentEvent(event="answer", data=data))
        except ServiceError as e:
            err = {"code": e.code, "message": str(e.detail)}
            loop.call_soon_threadsafe(events.put_nowait, ServerSentEvent(event="error", data=err))
        except Exception as e:  # the stream is open: the error goes to the client as an event, not a traceback
            err = {"code": type(e).__name__, "message": str(e)}
            loop.call_soon_threadsafe(events.put_nowait, ServerSentEvent(event="error", data=err))
        finally:
            loop.call_soon_threadsafe(events.put_nowait, None)

    async def gen() -> AsyncIterator[ServerSentEvent]:
        threading.Thread(target=work, name="tether-stream", daemon=True).start()
        while (event := await events.get()) is not None:
            yield event
        yield ServerSentEvent(event="done", data={})

    return gen()


@router.post("/ask", tags=["ask"])
def ask(body: AskRequest, who: Caller, svc: Svc) -> Answer:
    """Answer with cited spans of the tenant's documents, or abstain ("Not in the documents.") with the nearest
    passage. The key's role is the policy's role."""
    check_question(svc, body.question)
    return ask_as(svc, who, body.question, filters=filters_of(body.tags, body.path_glob))


@router.post("/ask/stream", tags=["ask"], response_class=EventSourceResponse)
async def ask_stream(body: AskRequest, who: Caller, svc: Svc) -> AsyncIterator[ServerSentEvent]:
    """As ``/v1/ask``, streamed as server-sent events: ``stage`` (each pipeline stage as it ends), ``answer``,
    ``done`` (or ``error`` then ``done``)."""
    check_question(svc, body.question)
    f = filters_of(body.tags, body.path_glob)
    async for event in stream_answer(lambda on: ask_as(svc, who, body.question, filters=f, on_stage=on)):
        yield event


@router.post("/search", tags=["ask"])
def search(body: SearchRequest, who: Caller, svc: Svc) -> SearchResponse:
    """The top-k passages of the tenant's documents for a query (no answer)."""
    check_question(svc, body.query, "query")
    with svc.model_slots:
        hits = svc.tether.search(
            body.query, body.k, mode=body.mode, filters=filters_of(body.tags, body.path_glob), tenant=who.tenant
        )
    return SearchResponse(hits=hits)


# -- conversations -------------------------------------------------------------------------------------------------
@router.post("/conversations", tags=["conversations"], status_code=201)
def new_conversation(who: Caller, svc: Svc) -> dict[str, str]:
    """Start a conversation: its turns are remembered, and follow-ups are rewritten from them."""
    return {"id": svc.data.new_conversation(who.tenant, who.user).id}


@router.get("/conversations/{conversation_id}", tags=["conversations"])
def get_conversation(conversation_id: str, who: Caller, svc: Svc) -> dict[str, Any]:
    conv = svc.data.conversation(who.tenant, who.user, conversation_id)
    if conv is None:
        raise ServiceError(404, "not_found", f"no conversation {conversation_id!r}")
    return conv.model_dump(mode="json")


@router.delete("/conversations/{conversation_id}", tags=["conversations"], status_code=204)
def delete_conversation(conversation_id: str, who: Caller, svc: Svc) -> None:
    if not svc.data.delete_conversation(who.tenant, who.user, conversation_id):
        raise ServiceError(404, "not_found", f"no conversation {conversation_id!r}")


def converse(svc: Svc, who: Principal, conversation_id: str, question: str, on_stage: Any = None) -> TurnResponse:
    """One turn: rewrite a follow-up from the conversation, remember what the user says of themselves, recall
    what is relevant, answer the standalone question, keep the turn."""
    from tether.memory import Turn as MemoryTurn

    conv = svc.data.conversation(who.tenant, who.user, conversation_id)
    if conv is None:
        raise ServiceError(404, "not_found", f"no conversation {conversation_id!r}")
    history: list[MemoryTurn] = []
    for t in conv.turns:
        history.append(MemoryTurn(role="user", text=t.standalone))
        history.append(MemoryTurn(role="assistant", text=str(t.answer.get("text", ""))))
    rw = rewrite(svc, history, question)
    remembered: list[str] = []
    recalled: list[str] = []
    if svc.facts is not None:
        from tether.memory import extract_facts

        said = extract_facts(question)
        if said:
            vectors = svc.tether.embedder.embed(said)
            remembered = [svc.facts.add(who.tenant, who.user, f, v).text for f, v in zip(said, vectors, strict=True)]
        if remembered or svc.facts.list(who.tenant, who.user):  # no facts, no embedding to compare them with
            qv = svc.tether.embedder.embed([rw.question])[0]
            recalled = [f.text for f, _ in svc.facts.recall(who.tenant, who.user, qv)]
    answer = ask_as(
        svc,
        who,
        rw.question,
        conversation_id=conversation_id,
        original_question=question if rw.rewritten else None,
        rewrite_reason=rw.reason,
        on_stage=on_stage,
    )
    svc.data.add_turn(
        conversation_id,
        Turn(
            question=question,
            standalone=rw.question,
            rewrite_reason=rw.reason,
            answer=answer.model_dump(mode="json", include={"text", "abstained", "citations", "support"}),
            trace_id=answer.trace_id,
            created=datetime.now(UTC),
        ),
    )
    return TurnResponse(
        conversation_id=conversation_id,
        question=question,
        standalone=rw.question,
        rewrite_reason=rw.reason,
        rewrite_method=rw.method,
        remembered=remembered,
        recalled=recalled,
        answer=answer,
    )


@router.post("/conversations/{conversation_id}/messages", tags=["conversations"])
def message(conversation_id: str, body: MessageRequest, who: Caller, svc: Svc) -> TurnResponse:
    """Ask the next question of a conversation ("and in Porto?" is rewritten into a standalone question first;
    the rewrite is in the response and the trace)."""
    check_question(svc, body.question)
    return converse(svc, who, conversation_id, body.question)


@router.post(
    "/conversations/{conversation_id}/messages/stream", tags=["conversations"], response_class=EventSourceResponse
)
async def message_stream(
    conversation_id: str, body: MessageRequest, who: Caller, svc: Svc
) -> AsyncIterator[ServerSentEvent]:
    """As ``messages``, streamed as server-sent events (``stage``, ``answer`` carrying the turn, ``done``)."""
    check_question(svc, body.question)
    if svc.data.conversation(who.tenant, who.user, conversation_id) is None:
        raise ServiceError(404, "not_found", f"no conversation {conversation_id!r}")
    async for event in stream_answer(lambda on: converse(svc, who, conversation_id, body.question, on)):
        yield event


# -- remembered facts ----------------------------------------------------------------------------------------------
def _facts(svc: Svc) -> Any:
    if svc.facts is None:
        raise ServiceError(404, "not_found", "memory is off (service.memory: false)")
    return svc.facts


@router.get("/memory/facts", tags=["memory"])
def list_facts(who: Caller, svc: Svc) -> FactList:
    """What the service remembers about the calling user (facts they stated), oldest first."""
    return FactList(
        facts=[Fact(id=f.id, text=f.text, created=f.created) for f in _facts(svc).list(who.tenant, who.user)]
    )


@router.delete("/memory/facts/{fact_id}", tags=["memory"], status_code=204)
def delete_fact(fact_id: int, who: Caller, svc: Svc) -> None:
    if not _facts(svc).delete(who.tenant, who.user, fact_id):
        raise ServiceError(404, "not_found", f"no fact {fact_id}")


@router.delete("/memory/facts", tags=["memory"])
def forget_all(who: Caller, svc: Svc) -> dict[str, int]:
    """Forget everything remembered about the calling user."""
    return {"deleted": _facts(svc).delete_all(who.tenant, who.user)}


# -- feedback ------------------------------------------------------------------------------------------------------
@router.post("/feedback", tags=["feedback"], status_code=201)
def feedback(body: FeedbackRequest, who: Caller, svc: Svc) -> FeedbackResponse:
    """A verdict on an answer: thumbs-down with a reason category and an optional correction becomes a draft eval
    case (`tether eval from-feedback --service`)."""
    check_question(svc, body.question)
    record = Feedback(
        question=body.question,
        answer=body.answer,
        rating=body.rating,
        reason=body.reason or body.category,
        correction=body.correction,
        expected_abstain=True if body.category == "should_abstain" else None,
        config_hash=svc.tether.settings.config_hash,
        cited_paths=body.cited_paths,
        created_at=datetime.now(UTC),
    )
    fid = svc.data.add_feedback(who.tenant, who.user, body.category, body.trace_id, record)
    svc.metrics.feedback.labels(body.rating).inc()
    return FeedbackResponse(id=fid)


@router.get("/feedback", tags=["feedback"])
def list_feedback(who: Caller, svc: Svc, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The tenant's feedback, newest first."""
    return [r.model_dump(mode="json") for r in svc.data.feedback(who.tenant, limit)]


# -- traces and stats ----------------------------------------------------------------------------------------------
def _reader(svc: Svc) -> TraceReader | None:
    t = svc.tether.settings.tracing
    if not t.enabled:
        return None
    from tether.config import resolve_path

    path = resolve_path(t.path, svc.tether.settings.root)
    return TraceReader(path) if path.exists() else None


@router.get("/traces", tags=["traces"])
def traces(who: Caller, svc: Svc, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[TraceSummary]:
    """The tenant's latest requests."""
    svc.tether.tracing().flush(5.0)  # spans are exported in batches: the latest requests are written first
    reader = _reader(svc)
    if reader is None:
        return []
    with reader:
        return reader.traces(limit=limit, tenant=who.tenant)


@router.get("/traces/{trace_id}", tags=["traces"])
def trace(trace_id: str, who: Caller, svc: Svc) -> TraceDetail:
    """One request of the tenant's: what was retrieved, scores, what the verifier and the policy decided."""
    if not _TRACE_ID.fullmatch(trace_id):
        raise ServiceError(404, "not_found", f"no trace {trace_id!r}")
    svc.tether.tracing().flush(5.0)  # spans are exported in batches: a request just answered is written first
    reader = _reader(svc)
    if reader is not None:
        with reader:
            try:
                detail = reader.get(trace_id)
            except TraceError:
                detail = None
        # a trace without its request's root (cut short) has no tenant on record: not shown to anyone
        if detail is not None and detail.complete and detail.attributes.get("caller.tenant") == who.tenant:
            return detail
    raise ServiceError(404, "not_found", f"no trace {trace_id!r}")


@router.get("/stats", tags=["documents"])
def stats(who: Caller, svc: Svc) -> dict[str, Any]:
    """How many documents and chunks the tenant can be answered from."""
    from tether.service._documents import allowlist

    docs = svc.tether.store(create=True).documents(allowlist(svc, who), limit=1_000_000)
    return {
        "tenant": who.tenant,
        "documents": len(docs),
        "own_documents": sum(1 for d in docs if d.tenant == who.tenant),
        "chunks": sum(d.n_chunks for d in docs),
    }


@router.get("/feedback/drafts", tags=["feedback"])
def feedback_drafts(who: Caller, svc: Svc) -> dict[str, Any]:
    """Draft eval cases from the tenant's thumbs-down feedback, to review and accept into the golden set (the same
    drafts `tether eval from-feedback --service --tenant T` writes); ``yaml`` is the file to save."""
    import yaml

    from tether.evals._feedback import draft_cases

    drafts = draft_cases([r.feedback for r in svc.data.feedback(who.tenant, limit=10_000)])
    header = "# Draft eval cases from thumbs-down feedback: review each, then delete its review_note.\n"
    return {"drafts": drafts, "yaml": header + yaml.safe_dump(drafts, sort_keys=False, allow_unicode=True)}


def _eval_store(svc: Svc, who: Principal) -> Any:
    if who.role != "admin":
        raise ServiceError(403, "forbidden", "eval runs are the operator's: they need a key with role admin")
    from tether.evals import EvalStore

    path = svc.tether.settings.root / ".tether" / "evals.db"
    if not path.exists():
        return None
    return EvalStore(path)


class EvalRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field("evals/golden", description="a YAML file or folder of cases, inside the project (tether.yaml's)")


_eval_lock = threading.Lock()


@router.post("/evals/runs", tags=["evals"], status_code=202)
def start_eval_run(body: EvalRunRequest, who: Caller, svc: Svc) -> dict[str, Any]:
    """Run eval cases in the background as the key's tenant (an admin key); the run appears in ``GET /v1/evals/runs``
    when it ends. One run at a time (409 while one runs)."""
    from tether.evals import EvalRunner, EvalStore, RunOptions, load_cases

    if who.role != "admin":
        raise ServiceError(403, "forbidden", "eval runs are the operator's: they need a key with role admin")
    root = svc.tether.settings.root.resolve()
    target = (root / body.path).resolve()
    if not target.is_relative_to(root) or not target.exists():
        raise ServiceError(400, "bad_path", f"path: {body.path!r} is not a file or folder of cases inside the project")
    cases = load_cases(target)  # a malformed case is a 400 here, naming the file and case
    if not _eval_lock.acquire(blocking=False):
        raise ServiceError(409, "busy", "an eval run is already running; try again when it ends")

    def run() -> None:
        store = EvalStore(root / ".tether" / "evals.db")
        try:
            with svc.model_slots:
                EvalRunner(svc.tether, store, RunOptions(tenant=who.tenant, concurrency=1)).run(cases, str(target))
        except Exception:  # the run's own errors are in its results; anything else is logged, not raised here
            logging.getLogger("tether.service").exception("eval run of %s failed", target)
        finally:
            store.close()
            _eval_lock.release()

    threading.Thread(target=run, name="tether-eval-run", daemon=True).start()
    return {"status": "started", "path": str(target.relative_to(root)), "cases": len(cases)}


@router.get("/evals/runs", tags=["evals"])
def eval_runs(who: Caller, svc: Svc, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[dict[str, Any]]:
    """Stored eval runs (`tether eval run`), newest first (an admin key)."""
    store = _eval_store(svc, who)
    if store is None:
        return []
    try:
        return [r.model_dump(mode="json") for r in store.runs(limit)]
    finally:
        store.close()


@router.get("/evals/runs/{run_id}/report", tags=["evals"], response_class=HTMLResponse)
def eval_report(run_id: str, who: Caller, svc: Svc) -> HTMLResponse:
    """A run's HTML report (self-contained; an admin key)."""
    from tether.errors import TetherError
    from tether.evals._report import render_html

    store = _eval_store(svc, who)
    if store is None:
        raise ServiceError(404, "not_found", f"no eval run {run_id!r}")
    try:
        report = store.load(run_id)
    except (TetherError, KeyError):
        raise ServiceError(404, "not_found", f"no eval run {run_id!r}") from None
    finally:
        store.close()
    return HTMLResponse(
        render_html(report),
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"},
    )
