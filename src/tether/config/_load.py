from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tether.config._settings import Settings
from tether.errors import ConfigError

DEFAULT_CONFIG_NAME = "tether.yaml"

_TEMPLATE = """\
# tether.yaml — Tether's versioned configuration. Its content hash is stamped on every answer.
# Unknown keys are errors. Paths are relative to this file.
version: 1

index:
  backend: sqlite               # or milvus (pip install 'tether[milvus]'): milvus-lite here, or a cluster
  path: .tether/index.db        # sqlite: one file: documents, chunks, FTS5 (BM25) and vectors
  uri: null                     # milvus: a milvus-lite dir or http(s)://host:19530; null = .tether/index.milvus.db
  token_env: TETHER_MILVUS_TOKEN  # milvus: the environment variable holding the server's token
  prefix: tether                # milvus: collection name prefix

ingest:
  extensions: [.md, .markdown, .txt, .rst, .html, .htm, .pdf, .csv, .tsv]
  max_file_mb: 50               # larger files are skipped with a reason
  max_chunks_per_file: 5000     # a file cut into more chunks is skipped with a reason (~5 MB of text)
  follow_symlinks: false        # true: follow links out of the ingested folders (false: skip them, say why)
  workers: auto                 # processes that parse/chunk/hash beside the writer (auto: cores - 1; 0: none)
  chunk:
    max_tokens: 200             # token budget of one chunk (MiniLM reads at most 256)
    overlap_tokens: 32          # tokens repeated from the previous chunk
  dedupe:
    enabled: true               # MinHash/LSH near-duplicate removal of chunks
    threshold: 0.9              # estimated Jaccard similarity of word 3-shingles
    num_perm: 64
  redact_pii: []                # globs of sources stored with PII/secrets replaced by <KIND> (originals not kept)

embedding:
  model: minilm-int8            # packaged all-MiniLM-L6-v2 int8 ONNX, or a path to an .onnx file
  tokenizer: null               # tokenizer.json, needed when model is a path
  batch_size: 8  # texts per model call: on 2 cores 8 is fastest for long chunks (64 needs ~2.9 GB RSS)
  max_length: 256
  threads: 0                    # 0 = all cores

retrieval:
  lexical_top_n: 200            # BM25 candidates (SQLite FTS5)
  dense_top_n: 200              # embedding candidates (exact cosine search)
  fusion: {fusion}           # convex (min-max score blend; best on SciFact train) or rrf (reciprocal rank)
  rrf_k: {rrf_k}                 # rrf only: rank constant
  alpha: {alpha}                # convex only: weight of the dense score
  title_weight: {title_weight}  # BM25 weight of the title column relative to the text
  section_weight: {section_weight}  # BM25 weight of the heading-path column
  top_k: 5                      # chunks handed to the answerer
  collapse_threshold: 0.6       # hits sharing this share of word 3-shingles are collapsed into the best one

rerank:
  enabled: {rerank_enabled}                 # reorder the retrieved candidates before the top_k are taken
  model: learned                # packaged model (SQuAD + SelQA, permissive; no model pass), or an ONNX cross-encoder
  tokenizer: null               # tokenizer.json, needed when model is a path
  depth: null                   # candidates reranked; null = the depth chosen at training under a latency budget
  max_length: 256               # cross-encoder only: tokens per (query, passage) pair

judge:                          # checks each claim of an llm-mode answer against the quotes it cites
  kind: learned                 # learned (packaged, offline), llm (the llm.url model) or onnx (your NLI model)
  model: null                   # learned: a judge_model.json (null = packaged); onnx: path to the .onnx file
  tokenizer: null               # onnx: its tokenizer.json
  labels: [CONTRADICTED, UNSUPPORTED, SUPPORTED]  # onnx: output order (MNLI: contradiction, neutral, entailment)
  support_threshold: 0.5        # onnx: least p(SUPPORTED)
  prompt: {judge_prompt}  # llm: the judge's system prompt

answer:
  mode: extractive              # extractive (no LLM: quote the sentences that answer) or llm (needs llm.url)
  max_sentences: 2
  threshold: null               # support threshold; null = the value calibrated on SQuAD 2.0 (see README)
  not_found_text: Not in the documents.
  reader: packaged              # reading model: packaged (shipped), a folder (docs/reader.md), null = features only
  # llm mode: the prompt is part of the config, so its hash is stamped on every answer; the exact
  # messages sent are in each answer's trace. Bump prompt_version when you change it.
  system_prompt: {system_prompt}
  prompt_version: 1
  critique_prompt: {critique_prompt}
  revise_prompt: {revise_prompt}
  max_sources: 6                # numbered sources in the prompt
  context_tokens: 1500          # token budget of those sources (deduped, MMR-diversified, strongest at the edges)
  max_tokens: 600               # answer length limit
  verify: true                  # the judge checks every claim; unsupported claims are dropped
  compute:                      # inference-time compute, each strategy under a hard budget
    strategy: single            # single, best_of_n (judge picks the best draft) or critique_revise
    n: 3                        # best_of_n: drafts
    temperature: 0.7            # best_of_n: sampling temperature
    rounds: 1                   # critique_revise: rounds
    max_calls: 8                # budget: model calls per answer
    max_tokens: 12000           # budget: prompt + completion tokens per answer
    max_seconds: 120            # budget: seconds per answer
    max_cost: null              # budget: money per answer, at the answering endpoint's prices

llm:                            # an OpenAI-compatible model server (vLLM, llama.cpp, Ollama, hosted)
  url: null                     # e.g. http://127.0.0.1:8080/v1; env TETHER_LLM_URL wins; null = offline
  model: null                   # env TETHER_LLM_MODEL wins
  api_key_env: TETHER_LLM_API_KEY
  timeout_s: 60
  retries: 2                    # on timeouts, 429 and 5xx, with backoff and jitter
  gguf: null                    # or a local GGUF model: Tether runs llama.cpp's server for it on loopback
  llama_python: null            # gguf: interpreter with llama-cpp-python[server]; null = this one (tether[llama])
  n_ctx: 4096                   # gguf: context window
  price_in_per_1k: 0            # what 1,000 prompt / completion tokens cost (budgets.max_cost, the route's cost)
  price_out_per_1k: 0
  fallback: extractive          # the server fails (down, slow, 5xx, malformed): answer extractively, or refuse
  breaker_failures: 3           # failed calls in a row that open the circuit (calls then fail at once) ...
  breaker_reset_s: 30           # ... until a probe this much later

evals:
  judge: auto                   # llm_judge metrics: auto (the LLM if configured, else offline), offline, llm

audit:
  enabled: false                # true: every answer goes to the hash-chained audit log (`tether audit verify`)
  path: .tether/audit.db
  key_file: null                # key that signs entries (`tether audit keygen FILE`); keep it apart from the log
  key_env: TETHER_AUDIT_KEY     # or this environment variable holds the key (it wins); see docs/audit.md
  checkpoint_path: null         # signed checkpoints of the head go here: another disk or host, append-only
  checkpoint_every: 100         # a checkpoint every N entries (and after a writer's first append, and on close)

policy:
  path: null                    # policy YAML (docs/tools.md), checked before every answer; null = none
  role: user                    # the caller's role when none is given
  classification: internal      # the data classification when none is given
  tenant: null                  # the tenant when none is given (see tenants:)

pipeline:                       # the stages a request runs through, in order (`null`: the default chain)
  ask: null                     # default: [policy, retrieve, rerank, answer, audit]
  search: null                  # default: [retrieve, rerank]

cache:                          # the answer cache ('cache' stage, after retrieval): per tenant, role, config, corpus
  enabled: false
  max_entries: 1000             # answers kept per tenant
  ttl_s: 3600
  semantic_threshold: null      # question-embedding cosine for a paraphrase hit (same evidence too); null = exact

tiers: {{}}                       # name: {{url, model, timeout_s, retries, price_in_per_1k, price_out_per_1k, ...}}
routing:
  cascade: []                   # e.g. [extractive-fast, extractive, small]: tried until one answers; [] = answer.mode
  escalate_below: null          # support below this also goes on to the next tier
  router: null                  # from `tether route train`: where each request starts (docs/routing.md)
  min_pass: null                # the router starts at the cheapest tier this likely to pass; null = trained
  rules: []                     # - {{when: {{type: [number]}}, use: large, reason: ...}}: decide before the router

budgets:                        # per tenant, over a rolling window; per request: answer.compute
  window_s: 86400
  max_calls: null               # model calls
  max_tokens: null              # prompt + completion tokens
  max_cost: null                # from the price tables
  max_seconds: null             # seconds of model calls
  on_exhausted: extractive      # or refuse; either way the answer says so
  path: .tether/budgets.db

tracing:                        # one trace per request, one span per stage (`tether trace list`, docs/tracing.md)
  enabled: true
  path: .tether/traces.db       # the local trace store: questions, evidence and prompts (mode 0600)
  otlp_endpoint: null           # also send spans to an OpenTelemetry collector, e.g. http://127.0.0.1:4318
  otlp_headers: {{}}              # headers for it; put secrets in OTEL_EXPORTER_OTLP_TRACES_HEADERS instead
  max_attribute_chars: 8192     # longer attribute values (prompts, evidence) are cut, with a marker

safety:
  injection:                    # every chunk is scored for prompt injection at ingest (docs/safety.md)
    action: warn                # flagged chunks: warn (cited with a warning), quarantine (never cited), off
    threshold: null             # least p(injection) that flags a chunk; null = the packaged detector's
    sentence_threshold: null    # least p(injection) that keeps a sentence from being quoted; null = packaged
  spotlight: datamark           # llm mode: sources delimited (delimit) and datamarked (datamark) as data; off
  pii:                          # logs, traces and the audit log are always redacted (docs/safety.md)
    answers: []                 # roles whose answers are redacted ('*' = everyone); quotes keep their spans
    engine: patterns            # patterns (built in) or presidio (pip install 'tether[pii]': names and places too)

tenants: {{}}                   # name: {{sources: [globs], tags: [..]}}: what each tenant may be answered from

service:                        # `tether serve` (docs/service.md)
  keys_path: .tether/keys.db    # API keys (`tether keys create`): tenant, role, SHA-256 digest; mode 0600
  data_path: .tether/service.db # conversations, feedback, ingest jobs, remembered facts (each row a tenant's)
  uploads_path: .tether/uploads # uploaded files, one folder per tenant
  host: 127.0.0.1
  port: 8321
  requests_per_minute: 120      # per API key (429 + Retry-After past it)
  max_body_kb: 64               # JSON bodies (413 past it)
  max_upload_mb: 20             # uploaded files (413 past it)
  max_question_chars: 2000      # 422 past it
  upload_roles: [admin, editor] # roles that may upload and delete documents
  memory: true                  # remember facts users state about themselves (GET/DELETE /v1/memory/facts)
  model_concurrency: null       # asks/searches running the models at once (null = CPU count); the rest queue
"""


def default_yaml() -> str:
    """The commented tether.yaml that ``tether init`` writes (values are the defaults)."""
    d = Settings()
    r = d.retrieval
    text = _TEMPLATE.format(
        fusion=r.fusion,
        rrf_k=r.rrf_k,
        alpha=r.alpha,
        title_weight=r.title_weight,
        section_weight=r.section_weight,
        rerank_enabled=str(d.rerank.enabled).lower(),
        system_prompt=json.dumps(d.answer.system_prompt),
        critique_prompt=json.dumps(d.answer.critique_prompt),
        revise_prompt=json.dumps(d.answer.revise_prompt),
        judge_prompt=json.dumps(d.judge.prompt),
    )
    return "\n".join(_align_comment(line) for line in text.split("\n"))


def _align_comment(line: str, column: int = 32) -> str:
    """Line up trailing comments of value lines (lines that start with a comment are left alone)."""
    if line.lstrip().startswith("#") or "  # " not in line:
        return line
    value, comment = line.split("  # ", 1)
    return f"{value.rstrip().ljust(column - 1)} # {comment}"


def _format_validation(path: Path, err: ValidationError) -> str:
    lines = [f"{path} is invalid:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `tether init --print` shows every key)"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None) -> Settings:
    """Load tether.yaml. With no path, use ./tether.yaml if it exists, else the defaults.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or a key is unknown or invalid.
    """
    if path is None:
        candidate = Path.cwd() / DEFAULT_CONFIG_NAME
        if not candidate.exists():
            return Settings().with_root(Path.cwd())
        path = candidate
    p = Path(path)
    if p.is_dir():
        p = p / DEFAULT_CONFIG_NAME
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p} does not exist; run `tether init` to write one") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {p}: {e}") from None
    try:
        data: Any = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{p} is not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must be a mapping of keys (index:, ingest:, ...), not {type(data).__name__}")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(p, e)) from None
    return settings.with_root(p.resolve().parent)
