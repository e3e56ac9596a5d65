"""The reranker named in tether.yaml."""

from __future__ import annotations

from pathlib import Path

from tether.config import RerankSettings
from tether.errors import ConfigError
from tether.judge import IdfSource
from tether.models._cross_encoder import OnnxPairModel
from tether.rerank._learned import LearnedReranker, OnnxCrossEncoder
from tether.rerank._protocol import Reranker


def _resolve(p: str, root: Path) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else root / path


def reranker_from_settings(settings: RerankSettings, root: Path, idf: IdfSource | None = None) -> Reranker | None:
    """None when reranking is off; the packaged learned model; or the user's ONNX cross-encoder."""
    if not settings.enabled:
        return None
    if settings.model == "learned":
        return LearnedReranker(idf=idf)
    if settings.tokenizer is None:
        raise ConfigError("rerank.tokenizer must name a tokenizer.json when rerank.model is a path")
    return OnnxCrossEncoder(
        OnnxPairModel(
            _resolve(settings.model, root), _resolve(settings.tokenizer, root), max_length=settings.max_length
        )
    )


def rerank_depth(settings: RerankSettings, reranker: Reranker) -> int:
    """Candidates to rerank: the configured depth, else the learned model's, else 20 for a cross-encoder."""
    if settings.depth is not None:
        return settings.depth
    if isinstance(reranker, LearnedReranker):
        return reranker.model.depth
    return 20
