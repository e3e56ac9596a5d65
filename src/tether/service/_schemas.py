"""Request and response bodies of the service's HTTP API (published at /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tether.contracts import Answer, DocumentMeta, Hit


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a 422 naming it, never silently ignored


class AskRequest(_Body):
    question: str = Field(min_length=1, description="what to answer from the documents")
    tags: list[str] = Field(default_factory=list, description="only documents carrying all of these tags")
    path_glob: str | None = Field(None, description="only documents whose path matches this glob")


class SearchRequest(_Body):
    query: str = Field(min_length=1)
    k: int = Field(10, ge=1, le=100)
    mode: Literal["hybrid", "lexical", "dense"] = "hybrid"
    tags: list[str] = Field(default_factory=list)
    path_glob: str | None = None


class SearchResponse(BaseModel):
    hits: list[Hit]


class MessageRequest(_Body):
    question: str = Field(min_length=1, description="the next question of the conversation (a follow-up is fine)")


class TurnResponse(BaseModel):
    conversation_id: str
    question: str = Field(description="as the user wrote it")
    standalone: str = Field(description="what retrieval was asked: the follow-up rewritten from the conversation")
    rewrite_reason: str
    rewrite_method: Literal["none", "offline", "llm"] = Field(
        "none", description="none: the question stood alone; offline: rewritten by rules; llm: by the model"
    )
    remembered: list[str] = Field(default_factory=list, description="facts about the user stored from this turn")
    recalled: list[str] = Field(default_factory=list, description="stored facts relevant to this question")
    answer: Answer


class FeedbackRequest(_Body):
    trace_id: str = Field("", max_length=64, description="the answer's trace id")
    question: str = Field(min_length=1)
    answer: str = ""
    rating: Literal["up", "down"]
    category: Literal["wrong", "unsupported", "incomplete", "should_abstain", "should_answer", "other"] = "other"
    reason: str = Field("", max_length=2000)
    correction: str | None = Field(None, max_length=4000)
    cited_paths: list[str] = Field(default_factory=list, max_length=50)


class FeedbackResponse(BaseModel):
    id: int


class DocumentList(BaseModel):
    documents: list[DocumentMeta]


class DocumentText(BaseModel):
    document: DocumentMeta
    text: str


class Fact(BaseModel):
    id: int
    text: str
    created: datetime


class FactList(BaseModel):
    facts: list[Fact]


class Health(BaseModel):
    status: Literal["ok", "starting", "stopping"]
    detail: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: list[dict[str, Any]] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody
