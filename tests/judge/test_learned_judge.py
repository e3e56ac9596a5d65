"""Tether's learned support judge: real MiniLM embeddings and the packaged model (trained on permissive data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether import Tether
from tether.answer import load_packaged_reader
from tether.errors import ModelError
from tether.judge import JUDGE_FEATURES, Judge, JudgeModel, LearnedJudge, StoreIdf, load_judge_model

EVIDENCE = "Metformin reduced the incidence of type 2 diabetes by 31% compared with placebo over 2.8 years."


@pytest.fixture(scope="module")
def judge() -> LearnedJudge:
    return LearnedJudge(Tether.open(None).embedder, reader=load_packaged_reader().reader)


def test_it_is_a_judge(judge: LearnedJudge) -> None:
    assert isinstance(judge, Judge) and judge.name == "learned:" + judge.model.trained_on


def test_the_packaged_model_is_trained_on_permissive_data_only() -> None:
    trained_on = load_judge_model().trained_on
    assert "CC BY-SA" in trained_on
    assert not any(nc in trained_on.lower() for nc in ("scifact", "anli", "wikiqa", "wice", "-nc", " nc "))


def test_a_claim_its_evidence_states_is_supported(judge: LearnedJudge) -> None:
    v = judge.verify("Metformin reduced the incidence of type 2 diabetes by 31%.", [EVIDENCE])
    assert v.label == "SUPPORTED" and v.score is not None and v.score >= judge.model.support_threshold


def test_an_unrelated_claim_is_unsupported(judge: LearnedJudge) -> None:
    v = judge.verify("The Eiffel Tower was repainted in 2019.", [EVIDENCE])
    assert v.label == "UNSUPPORTED" and "evidence lacks" in v.reason and "'eiffel'" in v.reason


def test_a_changed_number_lowers_support_and_is_named(judge: LearnedJudge) -> None:
    same = judge.verify("Metformin reduced the incidence of type 2 diabetes by 31%.", [EVIDENCE])
    other = judge.verify("Metformin reduced the incidence of type 2 diabetes by 58%.", [EVIDENCE])
    assert other.score is not None and same.score is not None and other.score < same.score
    assert "numbers differ" in other.reason
    f = dict(zip(judge.model.model.features, judge.features("by 58%", [EVIDENCE]), strict=True))
    assert f["numbers_conflict"] == 1.0 and f["numbers_present"] == 0.0


def test_polarity_features_see_negation_and_opposite_directions(judge: LearnedJudge) -> None:
    f = dict(
        zip(judge.model.model.features, judge.features("Metformin does not reduce diabetes.", [EVIDENCE]), strict=True)
    )
    assert f["negation_mismatch"] == 1.0
    g = dict(zip(judge.model.model.features, judge.features("Metformin increased diabetes.", [EVIDENCE]), strict=True))
    assert g["direction_mismatch"] == 1.0 and g["negation_mismatch"] == 0.0
    plain = judge.verify("Metformin reduced the incidence of type 2 diabetes.", [EVIDENCE])
    flipped = judge.verify("Metformin increased the incidence of type 2 diabetes.", [EVIDENCE])
    assert flipped.score is not None and plain.score is not None and flipped.score < plain.score


def test_no_evidence_is_never_supported(judge: LearnedJudge) -> None:
    for ev in ([], ["   "]):
        v = judge.verify("anything", ev)
        assert v.label == "UNSUPPORTED" and v.reason == "no evidence cited"


def test_repeated_texts_are_encoded_once(judge: LearnedJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    judge.verify("A claim seen once.", [EVIDENCE])
    calls: list[list[str]] = []
    real = judge.embedder.encode
    monkeypatch.setattr(judge.embedder, "encode", lambda texts: calls.append(texts) or real(texts))
    judge.verify("A claim seen once.", [EVIDENCE])
    assert calls == []


def test_model_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="nope.json"):
        load_judge_model(tmp_path / "nope.json")
    m = load_judge_model()
    data = json.loads(m.model_dump_json())
    data["model"]["features"] = data["model"]["features"][::-1]
    (tmp_path / "other.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="other features; retrain"):
        load_judge_model(tmp_path / "other.json")


def test_store_idf_weighs_rare_words_higher_and_follows_the_index(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for i in range(6):
        (tmp_path / "docs" / f"d{i}.md").write_text(f"# Note {i}\n\nThe common word appears here, note {i}.\n")
    (tmp_path / "docs" / "rare.md").write_text("# Rare\n\nThe zeugma appears once.\n")
    (tmp_path / "tether.yaml").write_text("ingest: {dedupe: {enabled: false}}\n")
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([tmp_path / "docs"])
    idf = StoreIdf(t.store())
    got, unseen = idf.idf(["common", "zeugma"])
    assert got["zeugma"] > got["common"] and unseen >= got["zeugma"]
    (tmp_path / "docs" / "rare2.md").write_text("# Rare 2\n\nAnother zeugma here.\n")
    t.ingest([tmp_path / "docs"])
    again, _ = idf.idf(["zeugma"])
    assert again["zeugma"] < got["zeugma"]  # the index changed, so the cache was refreshed


def test_the_packaged_judge_reads_with_the_packaged_reader(judge: LearnedJudge) -> None:
    assert judge.model.uses_reader and judge.reader is not None
    v = judge.verify("Metformin reduced the incidence of type 2 diabetes by 31%.", [EVIDENCE])
    assert "reader logit" in v.reason
    x = judge.features("Metformin reduced the incidence of type 2 diabetes by 31%.", [EVIDENCE])
    assert len(x) == len(JUDGE_FEATURES) + 1


def test_the_readers_score_moves_the_verdict(judge: LearnedJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    claim = "Metformin lowered how often people developed type 2 diabetes."
    assert judge.reader is not None
    scores: dict[str, float] = {}
    for logit in (-8.0, 8.0):
        monkeypatch.setattr(judge.reader, "scores", lambda q, c, v=logit: [v] * len(c))
        got = judge.verify(claim, [EVIDENCE]).score
        assert got is not None
        scores[str(logit)] = got
    assert scores["8.0"] > scores["-8.0"] + 0.1


def test_a_judge_fitted_with_the_reader_refuses_to_run_without_it() -> None:
    with pytest.raises(ModelError, match="fitted with the reading model's score"):
        LearnedJudge(Tether.open(None).embedder)


def test_a_judge_fitted_without_the_reader_runs_without_it(tmp_path: Path) -> None:
    data = json.loads(load_judge_model().model_dump_json())
    n = len(JUDGE_FEATURES)
    m = data["model"]
    m["features"], m["mean"], m["scale"] = m["features"][:n], m["mean"][:n], m["scale"][:n]
    m["coef"] = [row[:n] for row in m["coef"]]
    (tmp_path / "plain.json").write_text(json.dumps(data))
    plain = load_judge_model(tmp_path / "plain.json")
    assert isinstance(plain, JudgeModel) and not plain.uses_reader
    j = LearnedJudge(Tether.open(None).embedder, plain, reader=load_packaged_reader().reader)
    assert j.reader is None  # given, but not read: the model was not fitted with it
    v = j.verify("Metformin reduced the incidence of type 2 diabetes by 31%.", [EVIDENCE])
    assert len(j.features("a claim", [EVIDENCE])) == n and "reader logit" not in v.reason


def test_tether_loads_the_packaged_reader_once_for_answerer_and_judge(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.md").write_text("# Note\n\n" + EVIDENCE + "\n")
    (tmp_path / "tether.yaml").write_text("{}\n")
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([tmp_path / "docs"])
    judge = t.judge()
    assert isinstance(judge, LearnedJudge)
    assert judge.reader is t.answerer().reader
