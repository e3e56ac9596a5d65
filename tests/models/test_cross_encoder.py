"""A user's ONNX cross-encoder / NLI model plugs in by path and is run for real by onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_pair import tokenizer_path, write_counter_model

from tether.config import JudgeSettings, RerankSettings
from tether.contracts import Hit
from tether.errors import ConfigError, ModelError
from tether.judge import OnnxNLIJudge, judge_from_settings
from tether.models._cross_encoder import OnnxPairModel
from tether.rerank import OnnxCrossEncoder, reranker_from_settings


def _hit(i: int, text: str) -> Hit:
    return Hit(
        chunk_id=i, doc_id=i, path=f"d{i}.md", title="", section=[], start=0, end=len(text), text=text, score=1.0
    )


def test_cross_encoder_reranks_by_the_models_logit(tmp_path: Path) -> None:
    model = write_counter_model(tmp_path / "ce.onnx", ["python"])
    ce = OnnxCrossEncoder(OnnxPairModel(model, tokenizer_path(), batch_size=2))
    hits = [_hit(1, "no snakes here"), _hit(2, "python python python"), _hit(3, "a python"), _hit(4, "none")]
    out = ce.rerank("tell me", hits)
    assert [h.chunk_id for h in out[:2]] == [2, 3]
    assert out[0].rerank_score is not None and out[0].rerank_score > out[1].rerank_score  # type: ignore[operator]
    assert sorted(h.chunk_id for h in out) == [1, 2, 3, 4]


def test_batched_logits_come_back_in_input_order(tmp_path: Path) -> None:
    # pairs are batched by length; every pair's logits must still be its own
    model = write_counter_model(tmp_path / "ce.onnx", ["python"])
    pm = OnnxPairModel(model, tokenizer_path(), batch_size=2)
    texts = ["python " * 5, "x", "python and a much longer passage than the others", "python python", "y y y y y y y"]
    pairs = [("q", t) for t in texts]
    alone = np.concatenate([pm.logits([p]) for p in pairs])
    assert np.allclose(pm.logits(pairs), alone)
    assert alone[0, 0] > alone[3, 0] > alone[2, 0] > alone[1, 0]  # 5, 2, 1, 0 matches


def test_query_and_passage_are_fed_as_a_pair(tmp_path: Path) -> None:
    # The token is in the query only: every pair scores the same, so the order is kept.
    model = write_counter_model(tmp_path / "ce.onnx", ["python"])
    ce = OnnxCrossEncoder(OnnxPairModel(model, tokenizer_path()))
    s = ce.scores("python", [_hit(1, "a"), _hit(2, "b")])
    assert s[0] == pytest.approx(s[1]) and s[0] > 0.5


def test_a_flat_output_and_a_model_without_token_types_work(tmp_path: Path) -> None:
    model = write_counter_model(tmp_path / "ce.onnx", ["python"], with_token_types=False, rank=1)
    ce = OnnxCrossEncoder(OnnxPairModel(model, tokenizer_path()))
    assert [h.chunk_id for h in ce.rerank("q", [_hit(1, "x"), _hit(2, "python")])] == [2, 1]


def test_the_title_is_read_with_the_text(tmp_path: Path) -> None:
    # The model counts "python": the title carries it for hit 2, so the title must reach the model.
    model = write_counter_model(tmp_path / "ce.onnx", ["python"])
    ce = OnnxCrossEncoder(OnnxPairModel(model, tokenizer_path()))
    hits = [_hit(1, "plain text"), _hit(2, "plain text").model_copy(update={"title": "Python basics"})]
    assert [h.chunk_id for h in ce.rerank("q", hits)] == [2, 1]


def test_blend_weighs_the_model_against_the_retrieval_score(tmp_path: Path) -> None:
    model = write_counter_model(tmp_path / "ce.onnx", ["python"])
    pm = OnnxPairModel(model, tokenizer_path())
    # the model prefers hit 2, retrieval prefers hit 1 by far
    hits = [_hit(1, "no snakes").model_copy(update={"score": 1.0}), _hit(2, "python").model_copy(update={"score": 0.0})]
    probs = OnnxCrossEncoder(pm).probabilities("q", hits)
    assert probs[1] > probs[0]
    assert [h.chunk_id for h in OnnxCrossEncoder(pm, blend=1.0).rerank("q", hits)] == [2, 1]
    assert [h.chunk_id for h in OnnxCrossEncoder(pm, blend=0.0).rerank("q", hits)] == [1, 2]
    s = OnnxCrossEncoder(pm, blend=0.25).scores("q", hits)
    assert s == pytest.approx([0.25 * probs[0] + 0.75, 0.25 * probs[1]])
    with pytest.raises(ValueError, match="blend"):
        OnnxCrossEncoder(pm, blend=1.5)


def test_nli_judge_reads_labels_in_the_configured_order(tmp_path: Path) -> None:
    model = write_counter_model(tmp_path / "nli.onnx", ["false", "maybe", "true"])
    judge = OnnxNLIJudge(OnnxPairModel(model, tokenizer_path()), ["CONTRADICTED", "UNSUPPORTED", "SUPPORTED"])
    assert judge.verify("the claim", ["true true true"]).label == "SUPPORTED"
    assert judge.verify("the claim", ["false false false"]).label == "CONTRADICTED"
    assert judge.verify("the claim", ["maybe maybe"]).label == "UNSUPPORTED"
    v = judge.verify("the claim", [])
    assert v.label == "UNSUPPORTED" and v.reason == "no evidence cited"


def test_nli_judge_support_needs_the_threshold(tmp_path: Path) -> None:
    model = write_counter_model(tmp_path / "nli.onnx", ["false", "maybe", "true"])
    judge = OnnxNLIJudge(OnnxPairModel(model, tokenizer_path()), ["CONTRADICTED", "UNSUPPORTED", "SUPPORTED"])
    judge.support_threshold = 0.99
    v = judge.verify("the claim", ["true maybe"])  # SUPPORTED is the most probable, but not sure enough
    assert v.label == "UNSUPPORTED" and v.score is not None and v.score < 0.99


def test_wrong_label_count_is_a_clear_error(tmp_path: Path) -> None:
    model = write_counter_model(tmp_path / "nli.onnx", ["false", "true"])
    judge = OnnxNLIJudge(OnnxPairModel(model, tokenizer_path()), ["CONTRADICTED", "UNSUPPORTED", "SUPPORTED"])
    with pytest.raises(ModelError, match="gives 2 labels"):
        judge.verify("c", ["e"])


def test_missing_or_broken_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="nope.onnx does not exist"):
        OnnxPairModel(tmp_path / "nope.onnx", tokenizer_path())
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="bad.onnx cannot be loaded"):
        OnnxPairModel(bad, tokenizer_path()).logits([("a", "b")])


def test_settings_pick_the_plugged_in_models(tmp_path: Path) -> None:
    write_counter_model(tmp_path / "ce.onnx", ["python"])
    r = reranker_from_settings(RerankSettings(enabled=True, model="ce.onnx", tokenizer=str(tokenizer_path())), tmp_path)
    assert isinstance(r, OnnxCrossEncoder) and r.blend == 1.0
    r = reranker_from_settings(
        RerankSettings(enabled=True, model="ce.onnx", tokenizer=str(tokenizer_path()), blend=0.4), tmp_path
    )
    assert isinstance(r, OnnxCrossEncoder) and r.blend == 0.4
    assert reranker_from_settings(RerankSettings(enabled=False), tmp_path) is None
    with pytest.raises(ConfigError, match="rerank.tokenizer"):
        reranker_from_settings(RerankSettings(enabled=True, model="ce.onnx"), tmp_path)
    write_counter_model(tmp_path / "nli.onnx", ["false", "maybe", "true"])
    j = judge_from_settings(
        JudgeSettings(kind="onnx", model="nli.onnx", tokenizer=str(tokenizer_path())),
        tmp_path,
        embedder=lambda: pytest.fail("an ONNX judge needs no embedder"),
        generator=lambda: pytest.fail("an ONNX judge needs no generator"),
    )
    assert isinstance(j, OnnxNLIJudge) and j.verify("c", ["true"]).label == "SUPPORTED"
    with pytest.raises(ConfigError, match="judge.model"):
        judge_from_settings(
            JudgeSettings(kind="onnx"), tmp_path, embedder=lambda: pytest.fail(), generator=lambda: pytest.fail()
        )
