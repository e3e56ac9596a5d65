"""The reading model: a cross-encoder that scores (question, candidate sentence) for "this sentence answers it".

It is an optional extra feature of the extractive answerer. A reader folder (``answer.reader`` in tether.yaml)
holds three files, all written by ``bench/train_reader.py export`` and ``bench/calibrate_answerer.py --reader``:

    model-int8.onnx     the cross-encoder (one logit per pair)
    tokenizer.json      its tokenizer
    support_model.json  the answerer's support models fitted WITH the reader's score as a feature

The support model and the reader belong together: a support model fitted on the reader's scores is useless without
it, and the packaged one (features only) cannot use them, so loading checks that they match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tether.answer._model import SupportModel
from tether.errors import ConfigError, ModelError
from tether.models._cross_encoder import OnnxPairModel
from tether.rerank import passage_text

READER_FEATURE = "reader"
"""The sentence model's feature that holds the reader's logit (always the last one)."""
READER_ANSWER_FEATURES = ("best_reader", "max_reader", "reader_gap")
"""Question-level reader features appended to the answer model's: the cited sentence's logit, the highest logit
of any candidate, and how far the best stands above the second (all logits)."""
MODEL_FILE = "model-int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
SUPPORT_FILE = "support_model.json"
READER_TOP = 0
"""How many candidates the reader reads per question when bench/calibrate_answerer.py fits its support model
(``--reader-top``; the best by the features alone, kept in ``SupportModel.shortlist``); 0 = all, as the packaged
reader does. 8 of a median 21 cuts the reader's time about fourfold and keeps SQuAD, but lost 0.06 balanced
accuracy on WikiQA and 0.16 on the table set (README, the reading model)."""
MAX_LENGTH = 128  # what the reader was trained with (bench/train_reader.py MAX_LENGTH)


class Reader(Protocol):
    """Scores candidate sentences for a question: higher = more likely to answer it."""

    name: str

    def scores(self, question: str, candidates: list[tuple[str, str]]) -> list[float]:
        """One score per ``(context, sentence)``; the context is the document's title or section."""
        ...


class OnnxReader:
    """The reading model exported by bench/train_reader.py, run with onnxruntime."""

    def __init__(self, model: OnnxPairModel, name: str | None = None) -> None:
        self.pair_model = model
        self.name = name or f"reader:{model.model_path.parent.name}"

    def scores(self, question: str, candidates: list[tuple[str, str]]) -> list[float]:
        if not candidates:
            return []
        logits = self.pair_model.logits([(question, passage_text(ctx, sentence)) for ctx, sentence in candidates])
        return [float(v) for v in logits[:, 0]]


@dataclass(frozen=True)
class ReaderBundle:
    """A reader and the support model fitted with it."""

    reader: Reader
    support: SupportModel


def uses_reader(model: SupportModel) -> bool:
    """Whether ``model`` was fitted with the reader's score as a feature."""
    return READER_FEATURE in model.sentence.features


def load_packaged_reader() -> ReaderBundle:
    """The reading model shipped in the package (``answer.reader: packaged``; its card is in the README)."""
    from importlib import resources

    return load_reader(Path(str(resources.files("tether") / "data" / "reader")), name="reader:packaged")


def load_reader(folder: str | Path, *, name: str | None = None) -> ReaderBundle:
    """The reader in ``folder`` and its support model.

    Raises:
        ConfigError: the folder or one of its three files is missing, or its support model was not fitted with
            a reader.
        ModelError: a file cannot be read.
    """
    from tether.models._linear import load_model_file

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(
            f"answer.reader: {root} is not a folder (it should hold {MODEL_FILE}, {TOKENIZER_FILE} "
            f"and {SUPPORT_FILE}; see docs/reader.md)"
        )
    missing = [n for n in (MODEL_FILE, TOKENIZER_FILE, SUPPORT_FILE) if not (root / n).is_file()]
    if missing:
        raise ConfigError(f"answer.reader: {root} lacks {', '.join(missing)} (see docs/reader.md)")
    support = load_model_file(SupportModel, SUPPORT_FILE, root / SUPPORT_FILE, "reader support model", "")
    if not uses_reader(support) or support.sentence.features[-1] != READER_FEATURE:
        raise ConfigError(
            f"answer.reader: {root / SUPPORT_FILE} was not fitted with the reader's score (its sentence features "
            f"end with {support.sentence.features[-1]!r}); run `python bench/calibrate_answerer.py --reader {root}`"
        )
    if tuple(support.answer.features[-len(READER_ANSWER_FEATURES) :]) != READER_ANSWER_FEATURES:
        raise ModelError(f"answer.reader: {root / SUPPORT_FILE} has answer features this Tether does not compute")
    if support.shortlist is not None and support.shortlist.features != support.sentence.features[:-1]:
        raise ModelError(f"answer.reader: {root / SUPPORT_FILE} has a shortlist model over other features")
    model = OnnxPairModel(root / MODEL_FILE, root / TOKENIZER_FILE, max_length=MAX_LENGTH, batch_size=32)
    return ReaderBundle(OnnxReader(model, name), support)


def shortlist(model: SupportModel, xs: list[list[float]]) -> list[int]:
    """Indices (in their order) of the candidates the reader reads: the ``model.shortlist_size`` best by the
    features-only ``model.shortlist``, or all when the model has no shortlist or there are no more than that."""
    if model.shortlist is None or not model.shortlist_size or len(xs) <= model.shortlist_size:
        return list(range(len(xs)))
    ps = model.shortlist.probabilities(xs)
    best = sorted(range(len(xs)), key=lambda i: -ps[i])[: model.shortlist_size]
    return sorted(best)


def reader_answer_features(reader_scores: list[float]) -> list[float]:
    """:data:`READER_ANSWER_FEATURES` from the candidates' reader logits, best candidate first."""
    if not reader_scores:
        return [-10.0, -10.0, 0.0]
    ordered = sorted(reader_scores, reverse=True)
    gap = ordered[0] - ordered[1] if len(ordered) > 1 else ordered[0] + 10.0
    return [reader_scores[0], ordered[0], gap]
