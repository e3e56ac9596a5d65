"""The request pipeline: a request state passed through a chain of small stages (policy -> retrieve -> rerank ->
answer -> audit), one code path for the CLI, the Python API, the eval runner and the service; `pipeline:` in
tether.yaml names the chain."""

from tether.pipeline._chain import DEFAULT_CHAINS, build_chain, known_stages, register_stage
from tether.pipeline._runner import Pipeline
from tether.pipeline._stage import Stage, StageContext
from tether.pipeline._stages import AnswerStage, AuditStage, PolicyStage, RerankStage, RetrieveStage
from tether.pipeline._state import Caller, RequestKind, RequestState

__all__ = [
    "DEFAULT_CHAINS",
    "AnswerStage",
    "AuditStage",
    "Caller",
    "Pipeline",
    "PolicyStage",
    "RequestKind",
    "RequestState",
    "RerankStage",
    "RetrieveStage",
    "Stage",
    "StageContext",
    "build_chain",
    "known_stages",
    "register_stage",
]
