"""OpenAI-compatible chat completions: existing clients and SDKs use Tether as a grounded "model".

The last user message is the question; earlier user and assistant messages are the conversation a follow-up is
rewritten from. A client's system message is not obeyed (Tether's instructions are its own, and a system message
is a place prompt injections come from); it is ignored. The reply's content is the answer with its sources listed;
the ``tether`` field carries the citations (exact spans), support, abstention and the trace id.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tether.contracts import Answer
from tether.service._app import Caller, Svc
from tether.service._auth import ServiceError
from tether.service._routes import ask_as, check_question, rewrite

router = APIRouter(prefix="/v1", tags=["openai"])
MODEL = "tether"


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ...: accepted, not used (answers are quotes)
    model: str = MODEL
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


def _content(a: Answer) -> str:
    if a.abstained:
        text = a.text or "Not in the documents."
        if a.nearest is not None:
            text += f"\n\nNearest passage (not an answer): {a.nearest.path}: \u201c{a.nearest.quote}\u201d"
        return text
    lines = [a.text, "", "Sources:"]
    lines += [f"[{c.n}] {c.path} ({c.start}-{c.end}): \u201c{c.quote}\u201d" for c in a.citations]
    return "\n".join(lines)


def _extra(a: Answer, standalone: str) -> dict[str, Any]:
    return {
        "abstained": a.abstained,
        "support": a.support,
        "citations": [c.model_dump(mode="json") for c in a.citations],
        "nearest": a.nearest.model_dump(mode="json") if a.nearest else None,
        "trace_id": a.trace_id,
        "question": standalone,
        "warnings": a.warnings,
    }


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


@router.get("/models")
def models(who: Caller) -> dict[str, Any]:
    """The one model this server offers: ``tether`` (grounded answers over the key's tenant's documents)."""
    return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "tether"}]}


@router.post("/chat/completions", response_model=None)
def chat_completions(body: ChatRequest, who: Caller, svc: Svc) -> dict[str, Any] | StreamingResponse:
    """An OpenAI chat completion whose content is a grounded answer (or "Not in the documents.")."""
    from tether.memory import Turn

    if body.model != MODEL:
        raise ServiceError(404, "model_not_found", f"no model {body.model!r}; this server offers {MODEL!r}")
    convo = [m for m in body.messages if m.role in ("user", "assistant")]
    if not convo or convo[-1].role != "user":
        raise ServiceError(400, "invalid_request", "messages: the last user or assistant message must be the user's")
    question = convo[-1].text()
    check_question(svc, question, "messages[-1].content")
    history = [Turn(role="user" if m.role == "user" else "assistant", text=m.text()) for m in convo[:-1]]
    rw = rewrite(svc, history, question)
    a = ask_as(
        svc,
        who,
        rw.question,
        original_question=question if rw.rewritten else None,
        rewrite_reason=rw.reason,
    )
    content = _content(a)
    cid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())
    extra = _extra(a, rw.question)
    if body.stream:
        return StreamingResponse(_chunks(cid, created, content, extra), media_type="text/event-stream")
    prompt = sum(_tokens(m.text()) for m in body.messages)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": _tokens(content),
            "total_tokens": prompt + _tokens(content),
        },
        "tether": extra,
    }


async def _chunks(cid: str, created: int, content: str, extra: dict[str, Any]) -> AsyncIterator[bytes]:
    """The completion as OpenAI's stream: a role chunk, content in pieces of a few words, a stop chunk (with the
    ``tether`` field), then ``data: [DONE]``."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **more,
        }
        return b"data: " + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    words = content.split(" ")
    for i in range(0, len(words), 8):
        piece = " ".join(words[i : i + 8]) + (" " if i + 8 < len(words) else "")
        yield chunk({"content": piece})
    yield chunk({}, "stop", tether=extra)
    yield b"data: [DONE]\n\n"
