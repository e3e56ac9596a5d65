from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from tether.contracts import SourceAllowlist

CONFIG_VERSION = 1
"""The tether.yaml format this Tether reads; any other ``version:`` is an error, not silently accepted."""


def resolve_path(path: str | Path, root: Path) -> Path:
    """A path from tether.yaml: ``~`` expanded, relative paths taken from ``root`` (the config's folder)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndexSettings(_Strict):
    backend: Literal["sqlite", "milvus"] = Field(
        "sqlite", description="sqlite (one file, embedded) or milvus (milvus-lite, or a cluster: the milvus extra)"
    )
    path: str = Field(".tether/index.db", description="sqlite: the index file, relative to tether.yaml")
    uri: str | None = Field(
        None,
        description="milvus: a milvus-lite directory (*.db, relative to tether.yaml) or a server's URL "
        "(http(s)://host:19530); null = .tether/index.milvus.db",
    )
    token_env: str = Field(
        "TETHER_MILVUS_TOKEN", description="milvus: the environment variable holding the server's token, if any"
    )
    prefix: str = Field(
        "tether", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,40}$", description="milvus: the collections' name prefix"
    )


class ChunkSettings(_Strict):
    max_tokens: int = Field(200, ge=16, le=2048, description="token budget of one chunk (word-piece estimate)")
    overlap_tokens: int = Field(32, ge=0, le=512, description="tokens repeated from the previous chunk")


class DedupeSettings(_Strict):
    enabled: bool = True
    threshold: float = Field(0.9, gt=0.0, le=1.0, description="estimated Jaccard of word 3-shingles")
    num_perm: int = Field(64, ge=16, le=512)


class IngestSettings(_Strict):
    extensions: list[str] = Field(
        default_factory=lambda: [".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf", ".csv", ".tsv"]
    )
    max_file_mb: float = Field(50.0, gt=0, description="larger files are skipped with a reason")
    max_chunks_per_file: int = Field(
        5000, ge=1, description="a file cut into more chunks is skipped with a reason (5000: about 5 MB of text)"
    )
    follow_symlinks: bool = Field(
        False, description="follow symbolic links that lead out of the ingested folders (false: skip them)"
    )

    @field_validator("extensions")
    @classmethod
    def _normalise_extensions(cls, v: list[str]) -> list[str]:
        return ["." + e.strip().lower().lstrip(".") for e in v if e.strip()]

    workers: int | Literal["auto"] = Field(
        "auto",
        description="processes that parse, chunk and hash documents beside the one that stores them; 'auto' = one"
        " per core beyond the first, 0 = none (all in the ingesting process)",
    )

    @field_validator("workers")
    @classmethod
    def _workers_in_range(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 0 <= v <= 64:
            raise ValueError("workers must be 'auto' or 0-64")
        return v

    chunk: ChunkSettings = ChunkSettings()
    dedupe: DedupeSettings = DedupeSettings()
    redact_pii: list[str] = Field(
        default_factory=list,
        description="glob patterns of sources stored with PII and secrets replaced by <KIND> (e.g. 'hr/*', "
        "'*.csv'); the original values are not kept anywhere in the index",
    )


class EmbeddingSettings(_Strict):
    model: str = Field("minilm-int8", description="'minilm-int8' (packaged) or a path to an ONNX file")
    tokenizer: str | None = Field(None, description="tokenizer.json for a model given by path")
    batch_size: int = Field(8, ge=1, le=1024, description="texts per ONNX call (memory grows with it)")
    max_length: int = Field(256, ge=8, le=8192)
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = all cores")


class RetrievalSettings(_Strict):
    lexical_top_n: int = Field(200, ge=0)
    dense_top_n: int = Field(200, ge=0)
    fusion: Literal["rrf", "convex"] = Field(
        "convex", description="convex won on SciFact train (bench/tune_retrieval.py); rrf is the robust alternative"
    )
    rrf_k: float = Field(10.0, gt=0, description="rrf only: the rank constant (best on SciFact train: 10)")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="convex fusion: weight of the dense score")
    title_weight: float = Field(1.0, ge=0.0, description="BM25 weight of the title column (text = 1.0)")
    section_weight: float = Field(0.5, ge=0.0, description="BM25 weight of the heading-path column")
    top_k: int = Field(5, ge=1, le=100, description="chunks passed to the answerer")
    collapse_threshold: float = Field(
        0.6,
        gt=0.0,
        le=1.0,
        description="hits whose estimated Jaccard of word 3-shingles (the MinHash signatures stored at ingest)"
        " reaches this are collapsed into the best one",
    )


DEFAULT_CRITIQUE_PROMPT = (
    "Review your answer against the numbered sources. List every claim that its quote does not state, every "
    "quote not copied exactly, and any part of the question the sources answer that your answer leaves out. "
    "Reply with a short list, or with OK alone if nothing is wrong."
)
DEFAULT_REVISE_PROMPT = "Revise your answer to fix these problems. Reply with JSON only, in the same format as before."
DEFAULT_JUDGE_PROMPT = (
    "You check one claim against evidence quotes. SUPPORTED: the evidence states it. CONTRADICTED: the evidence "
    "states the opposite or a different value. UNSUPPORTED: otherwise. Reply with JSON only: "
    '{"label": "SUPPORTED" | "UNSUPPORTED" | "CONTRADICTED", "reason": "<one sentence>"}.'
)


class RerankSettings(_Strict):
    enabled: bool = Field(True, description="rerank retrieved chunks before they are returned or answered from")
    model: str = Field(
        "learned",
        description="'learned' (packaged, trained on SQuAD + SelQA; no model pass) or a path to an ONNX cross-encoder",
    )
    tokenizer: str | None = Field(None, description="tokenizer.json for a cross-encoder given by path")
    depth: int | None = Field(
        None, ge=1, le=1000, description="candidates reranked; null = the depth chosen at training (latency budget)"
    )
    max_length: int = Field(256, ge=16, le=8192, description="cross-encoder: tokens per (query, passage) pair")
    blend: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="cross-encoder: weight of its probability against the hit's retrieval score (1 = the model alone)",
    )


JudgeLabel = Literal["SUPPORTED", "UNSUPPORTED", "CONTRADICTED"]
_MNLI_ORDER: tuple[JudgeLabel, ...] = ("CONTRADICTED", "UNSUPPORTED", "SUPPORTED")


class JudgeSettings(_Strict):
    kind: Literal["learned", "llm", "onnx"] = Field(
        "learned",
        description="who checks claims: learned (packaged, offline), llm (the llm.url model) or onnx (an NLI model)",
    )
    model: str | None = Field(None, description="learned: a judge_model.json (null = packaged); onnx: the .onnx file")
    tokenizer: str | None = Field(None, description="onnx: its tokenizer.json")
    labels: list[JudgeLabel] = Field(
        default_factory=lambda: list(_MNLI_ORDER),
        description="onnx: the model's output labels in order (MNLI heads: contradiction, neutral, entailment)",
    )
    support_threshold: float = Field(0.5, ge=0.0, le=1.0, description="onnx: least p(SUPPORTED) to call it supported")
    prompt: str = Field(DEFAULT_JUDGE_PROMPT, description="llm: the judge's system prompt (hashed with the config)")


class ComputeSettings(_Strict):
    """Inference-time compute in llm mode, each strategy under a hard budget."""

    strategy: Literal["single", "best_of_n", "critique_revise"] = Field(
        "single",
        description="single draft; best_of_n (sample n, keep the one the judge supports most); "
        "critique_revise (draft, critique against the sources, revise)",
    )
    n: int = Field(3, ge=1, le=16, description="best_of_n: drafts sampled")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="best_of_n: sampling temperature")
    rounds: int = Field(1, ge=1, le=5, description="critique_revise: critique and revise rounds")
    max_calls: int = Field(8, ge=1, description="budget: model calls per answer (drafts, critiques, re-asks)")
    max_tokens: int = Field(12_000, ge=100, description="budget: prompt + completion tokens per answer")
    max_seconds: float = Field(120.0, gt=0, description="budget: wall-clock seconds per answer")
    max_cost: float | None = Field(
        None, ge=0, description="budget: money per answer at the answering endpoint's prices; null = no limit"
    )


DEFAULT_SYSTEM_PROMPT = (
    "You answer questions only from the numbered sources you are given. Every claim must cite the source it "
    "comes from with a quote copied word for word from that source. If the sources do not contain the answer, "
    "say so by returning no claims. Never use outside knowledge."
)


PACKAGED_READER = "packaged"
"""``answer.reader`` value naming the reading model shipped in the package."""


class AnswerSettings(_Strict):
    mode: Literal["extractive", "llm"] = Field(
        "extractive", description="extractive (offline, quotes sentences) or llm (llm.url, citations enforced)"
    )
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="llm mode: the system prompt (hashed)")
    prompt_version: int = Field(1, description="bump when you change a prompt")
    critique_prompt: str = Field(DEFAULT_CRITIQUE_PROMPT, description="llm mode, critique_revise: the critique request")
    revise_prompt: str = Field(DEFAULT_REVISE_PROMPT, description="llm mode, critique_revise: the revision request")
    max_sources: int = Field(6, ge=1, le=50, description="llm mode: sources in the prompt")
    context_tokens: int = Field(1500, ge=100, description="llm mode: token budget of the sources")
    max_tokens: int = Field(600, ge=16, description="llm mode: answer length limit")
    verify: bool = Field(True, description="llm mode: check every claim against its quotes; drop the unsupported")
    max_sentences: int = Field(2, ge=1, le=10, description="cited sentences in one extractive answer")
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="support threshold; null = the calibrated value shipped with Tether"
    )
    not_found_text: str = "Not in the documents."
    reader: str | None = Field(
        PACKAGED_READER,
        description="extractive: the reading model whose scores join the support features: 'packaged' (the one "
        "shipped with Tether), a folder of your own (model-int8.onnx, tokenizer.json, support_model.json; "
        "docs/reader.md), or null = the features-only model (faster, less accurate)",
    )
    compute: ComputeSettings = ComputeSettings()


class LLMSettings(_Strict):
    url: str | None = Field(None, description="OpenAI-compatible server (env TETHER_LLM_URL wins); null = none")
    model: str | None = Field(None, description="model name on that server (env TETHER_LLM_MODEL wins)")
    api_key_env: str = Field("TETHER_LLM_API_KEY", description="environment variable that holds the API key")
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(2, ge=0, le=10)
    gguf: str | None = Field(
        None, description="a local GGUF model run by llama.cpp's server on loopback (when url is null)"
    )
    llama_python: str | None = Field(
        None, description="gguf: interpreter with llama-cpp-python[server]; null = this one (tether[llama])"
    )
    n_ctx: int = Field(4096, ge=256, description="gguf: context window")
    price_in_per_1k: float = Field(0.0, ge=0.0, description="price of 1,000 prompt tokens (any currency)")
    price_out_per_1k: float = Field(0.0, ge=0.0, description="price of 1,000 completion tokens")
    fallback: Literal["extractive", "refuse"] = Field(
        "extractive",
        description="when the model server fails (unreachable, timing out, 5xx, malformed): answer extractively "
        "(with a warning) or refuse; either way the trace says why",
    )
    breaker_failures: int = Field(3, ge=1, description="failed calls in a row that open the circuit")
    breaker_reset_s: float = Field(30.0, gt=0, description="seconds an open circuit waits before one probe")


class TierSettings(LLMSettings):
    """A model endpoint the cascade may call (``tiers:``), with what it costs (``price_*`` of the llm keys)."""


class BudgetSettings(_Strict):
    window_s: float = Field(86400.0, gt=0, description="the rolling window a tenant's spend is summed over")
    max_calls: int | None = Field(None, ge=0, description="model calls a tenant may make in the window; null = any")
    max_tokens: int | None = Field(None, ge=0, description="model tokens (prompt + completion) in the window")
    max_cost: float | None = Field(None, ge=0, description="money in the window (from the price tables)")
    max_seconds: float | None = Field(None, ge=0, description="seconds of model calls in the window")
    on_exhausted: Literal["extractive", "refuse"] = Field(
        "extractive", description="when a budget is spent: answer extractively (free, with a warning) or refuse"
    )
    path: str = Field(".tether/budgets.db", description="the spend ledger (SQLite), relative to tether.yaml")


BUILTIN_TIERS = ("extractive", "extractive-fast")
"""Tiers every cascade may name: the configured extractive answerer, and the features-only one (no reader)."""


class RuleWhen(_Strict):
    """What a routing rule matches; every condition given must hold (none given: every request)."""

    type: list[Literal["when", "number", "who", "where", "polar", "other"]] | None = Field(
        None, description="question kinds"
    )
    matches: str | None = Field(None, description="a regular expression the question matches (case-insensitive)")
    words_over: int | None = Field(None, ge=0, description="the question has more words than this")
    words_under: int | None = Field(None, ge=0, description="the question has fewer words than this")
    top_score_below: float | None = Field(None, description="the best hit's score is below this")
    probe_support_below: float | None = Field(None, description="the extractive probe's support is below this")
    probe_support_above: float | None = Field(None, description="the extractive probe's support is above this")
    tenant: list[str] | None = Field(None, description="the caller's tenant is one of these")
    role: list[str] | None = Field(None, description="the caller's role is one of these")

    @field_validator("matches")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a regular expression ({e})") from None
        return v


class RouteRule(_Strict):
    """``routing.rules``: the first rule that matches decides the starting tier, over the learned router."""

    when: RuleWhen = RuleWhen()
    use: str = Field(description="a tier of routing.cascade to start from, or 'refuse'")
    reason: str = Field("", description="said in the trace when the rule decides")


class RoutingSettings(_Strict):
    cascade: list[str] = Field(
        default_factory=list,
        description="tiers tried in order ('extractive', 'extractive-fast' and names of tiers:); empty = answer.mode "
        "alone",
    )
    router: str | None = Field(
        None,
        description="a router file from `tether route train` (relative to tether.yaml): picks the tier each request "
        "starts at; null = every request starts at the first tier",
    )
    min_pass: float | None = Field(
        None, gt=0.0, le=1.0, description="the router starts at the cheapest tier this likely to pass; null = trained"
    )
    rules: list[RouteRule] = Field(
        default_factory=list, description="rules deciding the starting tier before the router (first match wins)"
    )
    escalate_below: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="an answer whose support is below this goes to the next tier too (abstentions, failed "
        "verification and server failures always do); null = only those",
    )


class EvalSettings(_Strict):
    judge: Literal["auto", "offline", "llm"] = Field(
        "auto", description="llm_judge metrics: auto = the LLM if one is configured, else the offline checker"
    )


class AuditSettings(_Strict):
    enabled: bool = Field(False, description="append every answer to the hash-chained audit log")
    path: str = Field(".tether/audit.db", description="audit log file, relative to tether.yaml")
    key_file: str | None = Field(
        None,
        description="file holding the key (32+ bytes) that signs entries and checkpoints (HMAC-SHA256), kept apart "
        "from the log (other owner or a secret store); the variable key_env names wins; null = unsigned",
    )
    key_env: str = Field("TETHER_AUDIT_KEY", description="environment variable that may hold the key instead")
    checkpoint_path: str | None = Field(
        None,
        description="JSON-lines file that signed checkpoints of the log's head are appended to (on another disk "
        "or host); verify compares the log with it to catch a cut-off or rewritten tail; null = none",
    )
    checkpoint_every: int = Field(100, ge=1, le=1_000_000, description="write a checkpoint every N entries")


class CacheSettings(_Strict):
    enabled: bool = Field(False, description="serve repeated questions from the answer cache (the 'cache' stage)")
    max_entries: int = Field(1000, ge=1, description="answers kept per tenant (least recently used out)")
    ttl_s: float = Field(3600.0, gt=0, description="seconds an answer stays servable")
    semantic_threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="least cosine similarity of question embeddings for a semantic hit (the evidence must be the "
        "same too); null = exact hits only",
    )


class PipelineSettings(_Strict):
    ask: list[str] | None = Field(
        None, description="stages of an ask, in order; null = policy, retrieve, rerank, answer, audit"
    )
    search: list[str] | None = Field(None, description="stages of a search, in order; null = retrieve, rerank")


class PolicySettings(_Strict):
    path: str | None = Field(None, description="policy YAML evaluated before every answer and tool call")
    role: str = Field("user", description="caller role when none is given")
    classification: str = Field("internal", description="data classification when none is given")
    tenant: str | None = Field(None, description="the tenant (of tenants:) when none is given")


class TracingSettings(_Strict):
    enabled: bool = Field(True, description="one OpenTelemetry trace per request, one span per stage")
    path: str = Field(".tether/traces.db", description="the local trace store (SQLite), relative to tether.yaml")
    otlp_endpoint: str | None = Field(
        None,
        description="also export spans to this OpenTelemetry collector by OTLP/HTTP (e.g. http://127.0.0.1:4318; "
        "a URL without a path gets /v1/traces); null = the local store only",
    )
    otlp_headers: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP headers for the collector; secrets belong in OTEL_EXPORTER_OTLP_TRACES_HEADERS, not "
        "here (this file is hashed and versioned)",
    )
    max_attribute_chars: int = Field(
        8192, ge=64, le=1_000_000, description="longer attribute values (prompts, evidence) are cut, with a marker"
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith(("http://", "https://")) and len(v) > len("https://")):
            raise ValueError(f"{v!r} is not an http:// or https:// URL of an OTLP/HTTP collector")
        return v


class InjectionSettings(_Strict):
    action: Literal["warn", "quarantine", "off"] = Field(
        "warn",
        description="chunks the injection detector flagged at ingest: warn (cite, with a warning on the answer), "
        "quarantine (never cited) or off; a flagged sentence is never quoted as the answer unless off",
    )
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="least p(injection) that flags a chunk; null = the packaged detector's"
    )
    sentence_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="least p(injection) that keeps a sentence from being quoted; null = the packaged detector's",
    )

    @field_validator("action", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        return "off" if v is False else v  # YAML reads a bare `off` as false


class PiiSettings(_Strict):
    answers: list[str] = Field(
        default_factory=list,
        description="roles whose answers have PII and secrets redacted ('*' = every role); citations keep their "
        "spans, their quotes are redacted and marked",
    )
    engine: Literal["patterns", "presidio"] = Field(
        "patterns",
        description="patterns (built in: cards, IBANs, SSNs, e-mails, phones, IPs, keys and tokens) or presidio "
        "(the optional extra tether[pii]: adds names, places and dates by spaCy NER); logs, traces and the audit "
        "log always use the patterns",
    )


class SafetySettings(_Strict):
    injection: InjectionSettings = InjectionSettings()
    pii: PiiSettings = PiiSettings()
    spotlight: Literal["datamark", "delimit", "off"] = Field(
        "datamark",
        description="llm mode: sources between markers with a per-request id (delimit), their words joined by a "
        "data mark too (datamark), and a system-prompt note that source text is data; off = plain numbered sources",
    )

    @field_validator("spotlight", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        return "off" if v is False else v  # YAML reads a bare `off` as false


class ServiceSettings(_Strict):
    keys_path: str = Field(
        ".tether/keys.db", description="API keys (tenant, role, SHA-256 digest; mode 0600), relative to tether.yaml"
    )
    data_path: str = Field(
        ".tether/service.db",
        description="conversations, feedback, ingest jobs and remembered facts, each row a tenant's; mode 0600",
    )
    uploads_path: str = Field(".tether/uploads", description="uploaded files, one folder per tenant")
    host: str = Field("127.0.0.1", description="`tether serve` binds here (loopback unless you say otherwise)")
    port: int = Field(8321, ge=1, le=65535)
    requests_per_minute: int = Field(120, ge=1, description="per API key; over it a request gets 429 + Retry-After")
    max_body_kb: int = Field(64, ge=1, description="a JSON request body larger than this gets 413")
    max_upload_mb: int = Field(20, ge=1, description="an uploaded file larger than this gets 413")
    max_question_chars: int = Field(2000, ge=10, description="a longer question gets 422")
    upload_roles: list[str] = Field(
        default_factory=lambda: ["admin", "editor"], description="roles that may upload and delete documents"
    )
    memory: bool = Field(True, description="remember facts users state about themselves (GET/DELETE /v1/memory)")
    model_concurrency: int | None = Field(
        None, ge=1, description="asks and searches running the models at once (null = the CPU count); others queue"
    )


class TenantSettings(_Strict):
    sources: list[str] = Field(
        default_factory=list, description="globs of document paths this tenant may be answered from ('hr/*')"
    )
    tags: list[str] = Field(default_factory=list, description="or documents carrying one of these tags")

    def allowlist(self, owner: str) -> SourceAllowlist:
        """What the tenant ``owner`` may be answered from, as the store filters it: its own documents and these
        sources of the shared corpus."""
        return SourceAllowlist(paths=list(self.sources), tags=list(self.tags), owner=owner)


class Settings(_Strict):
    """All of tether.yaml. Unknown keys are errors, so a typo never silently does nothing."""

    version: int = Field(1, description="the config format; this Tether reads version 1")
    index: IndexSettings = IndexSettings()
    ingest: IngestSettings = IngestSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    rerank: RerankSettings = RerankSettings()
    judge: JudgeSettings = JudgeSettings()
    answer: AnswerSettings = AnswerSettings()
    llm: LLMSettings = LLMSettings()
    evals: EvalSettings = EvalSettings()
    audit: AuditSettings = AuditSettings()
    policy: PolicySettings = PolicySettings()
    pipeline: PipelineSettings = PipelineSettings()
    cache: CacheSettings = CacheSettings()
    tiers: dict[str, TierSettings] = Field(
        default_factory=dict, description="model endpoints by name for routing.cascade (OpenAI-compatible or GGUF)"
    )
    routing: RoutingSettings = RoutingSettings()
    budgets: BudgetSettings = BudgetSettings()
    tracing: TracingSettings = TracingSettings()
    safety: SafetySettings = SafetySettings()
    service: ServiceSettings = ServiceSettings()
    tenants: dict[str, TenantSettings] = Field(
        default_factory=dict,
        description="tenant name -> the sources it may be answered from; when set, every ask and search names one",
    )

    _root: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _known_tiers(self) -> Settings:
        unknown = [n for n in self.routing.cascade if n not in BUILTIN_TIERS and n not in self.tiers]
        if unknown:
            known = ", ".join([*BUILTIN_TIERS, *sorted(self.tiers)])
            raise ValueError(f"routing.cascade: unknown tier(s) {', '.join(unknown)}; known: {known}")
        if len(set(self.routing.cascade)) != len(self.routing.cascade):
            raise ValueError("routing.cascade: a tier is named twice")
        for i, rule in enumerate(self.routing.rules):
            if rule.use != "refuse" and rule.use not in self.routing.cascade:
                raise ValueError(
                    f"routing.rules[{i}].use: {rule.use!r} is not a tier of routing.cascade "
                    f"({', '.join(self.routing.cascade) or 'empty'}) nor 'refuse'"
                )
        if (self.routing.router or self.routing.rules) and not self.routing.cascade:
            raise ValueError("routing.router and routing.rules choose among routing.cascade's tiers: name them there")
        return self

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != CONFIG_VERSION:
            raise ValueError(
                f"version {v} is not a config format this Tether reads (it reads version {CONFIG_VERSION}); "
                "`tether init --print` shows the current format"
            )
        return v

    @property
    def root(self) -> Path:
        """Folder that relative paths in the config are resolved against."""
        return self._root

    def with_root(self, root: Path) -> Settings:
        copy = self.model_copy()
        copy._root = root
        return copy

    @property
    def index_path(self) -> Path:
        return resolve_path(self.index.path, self._root)

    @property
    def index_uri(self) -> str:
        """Where the index lives: the SQLite file, a milvus-lite directory, or a Milvus server's URL."""
        if self.index.backend == "sqlite":
            return str(self.index_path)
        uri = self.index.uri or ".tether/index.milvus.db"
        if uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:")):
            return uri
        return str(resolve_path(uri, self._root))

    @property
    def index_hash(self) -> str:
        """sha256 (first 12 hex) of the settings that decide what an index holds (not how fast it is built)."""
        emb = self.embedding.model_dump(mode="json", include={"model", "tokenizer", "max_length"})
        ingest = self.ingest.model_dump(mode="json", exclude={"workers"})
        blob = json.dumps({"ingest": ingest, "embedding": emb}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def config_hash(self) -> str:
        """sha256 (first 16 hex) of the canonical JSON of every setting."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
