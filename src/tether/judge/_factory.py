"""The judge named in tether.yaml."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tether.config import JudgeSettings, resolve_path
from tether.errors import ConfigError
from tether.judge._idf import IdfSource
from tether.judge._learned import LearnedJudge, OnnxNLIJudge, load_judge_model
from tether.judge._llm import LLMJudge
from tether.judge._protocol import Judge
from tether.models import Generator, OnnxEmbedder
from tether.models._cross_encoder import OnnxPairModel

if TYPE_CHECKING:
    from tether.answer._reader import Reader


def judge_from_settings(
    settings: JudgeSettings,
    root: Path,
    *,
    embedder: Callable[[], OnnxEmbedder],
    generator: Callable[[], Generator],
    idf: IdfSource | None = None,
    reader: Callable[[], Reader] | None = None,
) -> Judge:
    """Build the configured judge; parts it does not need are never loaded.

    ``reader`` gives the packaged reading model, for a learned judge model fitted with its score (the packaged one
    is); without it such a judge loads the packaged reader itself."""
    if settings.kind == "llm":
        return LLMJudge(generator(), settings.prompt)
    if settings.kind == "onnx":
        if settings.model is None or settings.tokenizer is None:
            raise ConfigError("judge.kind onnx needs judge.model (an .onnx file) and judge.tokenizer")
        pair = OnnxPairModel(resolve_path(settings.model, root), resolve_path(settings.tokenizer, root))
        return OnnxNLIJudge(pair, list(settings.labels), support_threshold=settings.support_threshold)
    model = load_judge_model(resolve_path(settings.model, root) if settings.model else None)
    if not model.uses_reader:
        return LearnedJudge(embedder(), model, idf)
    if reader is None:
        from tether.answer._reader import load_packaged_reader

        return LearnedJudge(embedder(), model, idf, reader=load_packaged_reader().reader)
    return LearnedJudge(embedder(), model, idf, reader=reader())
