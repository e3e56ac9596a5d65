"""The reading model as the answerer's extra feature (answer.reader): its score picks the sentence and decides
abstention through `Tether.ask`, and a reader folder that does not fit is one clear error, never a silent fallback.

The reader here is a real ONNX cross-encoder run by onnxruntime (tests/models/onnx_pair.py: its logit counts one
word piece), with a hand-set support model that listens to the reader only, so the test can tell what drove the
choice.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from onnx_pair import tokenizer_path, write_counter_model  # noqa: E402

from tether._api import Tether  # noqa: E402
from tether.answer import ANSWER_FEATURES, FEATURES, ExtractiveAnswerer, Logistic, SupportModel  # noqa: E402
from tether.answer._reader import (  # noqa: E402
    READER_ANSWER_FEATURES,
    load_packaged_reader,
    load_reader,
    reader_answer_features,
    shortlist,
)
from tether.config import default_yaml  # noqa: E402
from tether.errors import ConfigError, ModelError, TetherError  # noqa: E402

GARDEN = """# Tomatoes

Tomatoes need at least six hours of direct sun a day. Water them deeply twice a week in summer.
Prune the side shoots of cordon varieties. Tomato plants are sensitive to frost.

# Roses

Roses are pruned in late winter. Feed them with a balanced fertiliser in spring.
"""


def _logistic(names: tuple[str, ...], weights: dict[str, float], intercept: float) -> Logistic:
    return Logistic(
        features=list(names),
        mean=[0.0] * len(names),
        scale=[1.0] * len(names),
        coef=[weights.get(n, 0.0) for n in names],
        intercept=intercept,
    )


def reader_folder(root: Path, word: str = "sun", shortlist: tuple[float, int] | None = None) -> Path:
    """A reader that scores 4 per occurrence of ``word``, and a support model that trusts it alone.

    ``shortlist=(w, n)``: the reader reads only the ``n`` candidates a features-only model ranks best, that model
    weighing the share of the question's words a sentence covers by ``w``."""
    folder = root / "reader"
    folder.mkdir()
    write_counter_model(folder / "model-int8.onnx", [word], rank=2)
    shutil.copy(tokenizer_path(), folder / "tokenizer.json")
    support = SupportModel(
        sentence=_logistic((*FEATURES, "reader"), {"reader": 4.0}, -2.0),
        answer=_logistic((*ANSWER_FEATURES, *READER_ANSWER_FEATURES), {"best_reader": 4.0}, -2.0),
        threshold=0.5,
        trained_on="hand-set for a test",
    )
    if shortlist is not None:
        support.shortlist = _logistic(FEATURES, {"coverage_sentence": shortlist[0]}, 0.0)
        support.shortlist_size = shortlist[1]
    support.save(folder / "support_model.json")
    return folder


def open_garden(root: Path, reader_word: str | None, shortlist: tuple[float, int] | None = None) -> Tether:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "garden.md").write_text(GARDEN, encoding="utf-8")
    cfg = default_yaml()
    folder_name = reader_folder(root, reader_word, shortlist).name if reader_word is not None else "null"
    cfg = cfg.replace("  reader: packaged", f"  reader: {folder_name}", 1)
    assert f"reader: {folder_name}" in cfg
    (root / "tether.yaml").write_text(cfg, encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    t.ingest([root / "docs"])
    return t


@pytest.fixture()
def garden(tmp_path: Path) -> Iterator[Tether]:
    t = open_garden(tmp_path, "sun")
    yield t
    t.close()


def test_the_readers_score_picks_the_sentence_it_favours(garden: Tether) -> None:
    a = garden.ask("What do tomatoes need?")
    assert not a.abstained
    assert "six hours of direct sun" in a.citations[0].quote  # the one sentence holding the reader's word
    extractive = next(e for e in a.trace if e.stage == "extractive")
    assert extractive.detail["reader"] == "reader:reader"
    assert float(extractive.detail["reader_ms"]) > 0  # type: ignore[arg-type]


def test_the_reader_decides_abstention_when_no_sentence_reads_as_an_answer(tmp_path: Path) -> None:
    question = "How many hours of sun do tomatoes need?"
    with open_garden(tmp_path / "plain", None) as plain:
        assert not plain.ask(question).abstained  # the features-only model answers it
    with open_garden(tmp_path / "zebra", "zebra") as t:  # a reader that finds no sentence an answer
        a = t.ask(question)
    assert a.abstained
    assert a.support < a.threshold == 0.5
    assert a.nearest is not None  # the closest passage is still shown


def test_a_folder_without_its_files_is_one_clear_error(tmp_path: Path) -> None:
    folder = reader_folder(tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match=r"lacks tokenizer\.json"):
        load_reader(folder)
    with pytest.raises(ConfigError, match="is not a folder"):
        load_reader(tmp_path / "nowhere")


def test_a_support_model_fitted_without_the_reader_is_refused(tmp_path: Path) -> None:
    folder = reader_folder(tmp_path)
    plain = SupportModel(
        sentence=_logistic(FEATURES, {}, 0.0), answer=_logistic(ANSWER_FEATURES, {}, 0.0), threshold=0.5
    )
    plain.save(folder / "support_model.json")
    with pytest.raises(ConfigError, match="was not fitted with the reader"):
        load_reader(folder)


def test_a_reader_support_model_without_its_reader_is_refused(tmp_path: Path) -> None:
    bundle = load_reader(reader_folder(tmp_path))
    with pytest.raises(ValueError, match="needs that reader"):
        ExtractiveAnswerer(None, None, None, bundle.support)  # type: ignore[arg-type]


def test_a_bad_reader_path_in_tether_yaml_fails_the_request_with_the_setting_named(tmp_path: Path) -> None:
    with open_garden(tmp_path, "sun") as t:
        shutil.rmtree(tmp_path / "reader")
        with pytest.raises(TetherError, match=r"answer\.reader: .*reader is not a folder"):
            t.ask("What do tomatoes need?")


def test_reader_answer_features_describe_the_best_and_the_gap() -> None:
    assert reader_answer_features([1.0, 3.0, -2.0]) == [1.0, 3.0, 2.0]
    assert reader_answer_features([]) == [-10.0, -10.0, 0.0]


def test_the_reader_reads_only_the_shortlist_and_only_it_is_cited(tmp_path: Path) -> None:
    question = "What do tomatoes need?"
    # Shortlisting by the question's words keeps "Tomatoes need ... sun": the reader finds it and it is cited.
    with open_garden(tmp_path / "covers", "sun", shortlist=(5.0, 1)) as t:
        a = t.ask(question)
    assert not a.abstained and "six hours of direct sun" in a.citations[0].quote
    assert next(e for e in a.trace if e.stage == "extractive").detail["candidates"] == 1
    # Shortlisting against them keeps another sentence: the reader never sees the sun one, so Tether abstains.
    with open_garden(tmp_path / "against", "sun", shortlist=(-5.0, 1)) as t:
        a = t.ask(question)
    assert a.abstained
    assert a.nearest is not None and "sun" not in a.nearest.quote
    # Reading all (no shortlist) finds the sun sentence among every candidate.
    with open_garden(tmp_path / "all", "sun") as t:
        a = t.ask(question)
    assert int(next(e for e in a.trace if e.stage == "extractive").detail["candidates"]) > 1  # type: ignore[arg-type]


def test_shortlist_keeps_the_best_few_in_their_order() -> None:
    names = FEATURES
    model = SupportModel(
        sentence=_logistic((*names, "reader"), {}, 0.0),
        answer=_logistic((*ANSWER_FEATURES, *READER_ANSWER_FEATURES), {}, 0.0),
        threshold=0.5,
        shortlist=_logistic(names, {names[0]: 1.0}, 0.0),
        shortlist_size=2,
    )
    xs = [[v] + [0.0] * (len(names) - 1) for v in (0.1, 0.9, 0.5, 0.9)]
    assert shortlist(model, xs) == [1, 3]  # the two best (a tie kept in order), as they came
    assert shortlist(model, xs[:2]) == [0, 1]  # no more than the size: all
    model.shortlist_size = 0
    assert shortlist(model, xs) == [0, 1, 2, 3]


def test_a_shortlist_over_other_features_is_refused(tmp_path: Path) -> None:
    folder = reader_folder(tmp_path, shortlist=(1.0, 2))
    bundle = load_reader(folder)
    assert bundle.support.shortlist_size == 2
    bundle.support.shortlist = _logistic(("cos_sentence",), {}, 0.0)
    bundle.support.save(folder / "support_model.json")
    with pytest.raises(ModelError, match="shortlist model over other features"):
        load_reader(folder)


def test_the_packaged_reader_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "garden.md").write_text(GARDEN, encoding="utf-8")
    (tmp_path / "tether.yaml").write_text(default_yaml())  # the packaged reader is the default
    with Tether.open(tmp_path / "tether.yaml") as t:
        t.ingest([tmp_path / "docs"])
        a = t.ask("How many hours of direct sun do tomatoes need?")
        b = t.ask("When are roses pruned?")
        c = t.ask("What is the boiling point of mercury?")
    assert not a.abstained and "six hours of direct sun" in a.citations[0].quote
    assert not b.abstained and "late winter" in b.citations[0].quote
    assert c.abstained
    extractive = next(e for e in a.trace if e.stage == "extractive")
    assert extractive.detail["reader"] == "reader:packaged"
    assert a.threshold == load_packaged_reader().support.threshold


def test_the_packaged_reader_fits_the_size_budget_and_is_trained_on_permissive_data_only() -> None:
    folder = Path(str(resources.files("tether") / "data" / "reader"))
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 25 * 1024 * 1024
    record = json.loads((folder / "train.json").read_text(encoding="utf-8"))
    assert set(record["stream_by_source"]) == {"squad", "qnli", "selqa"}  # CC BY-SA 4.0, CC BY-SA 4.0, Apache-2.0
    support = load_packaged_reader().support
    assert "SQuAD" in support.trained_on and "never saw" in support.trained_on
    assert support.shortlist_size == 0  # it reads every candidate (a shortlist of 8 costs tables and WikiQA)
    for banned in ("scifact", "wikiqa", "anli", "policyqa"):
        assert banned not in support.trained_on.lower()
