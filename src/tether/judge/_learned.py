"""Tether's own support judge: MiniLM similarities, lexical/number/polarity agreement and the packaged reading
model's score of (claim, evidence), combined by a softmax regression trained by ``bench/train_judge.py`` on
permissively licensed data only (FEVER-Symmetric, CC BY-SA 3.0, and QNLI dev, CC BY-SA 4.0); the former
SciFact-trained model (CC BY-NC) is opt-in by path.

The reading model (docs/reader.md) reads the claim and its evidence together, which the features cannot; the hard
checks stay (a claim whose numbers are not all in the evidence is never SUPPORTED). A judge model fitted without
the reader (its features end before ``reader``) runs without it. A real ONNX NLI model plugs in by path
(``tether.judge.OnnxNLIJudge``) behind the same protocol.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import ModelError
from tether.judge._features import JUDGE_FEATURES, EncodedText, judge_features
from tether.judge._idf import IdfSource, UniformIdf
from tether.judge._protocol import LABELS, Label, Verdict
from tether.models import OnnxEmbedder
from tether.models._cross_encoder import OnnxPairModel, softmax
from tether.models._linear import Softmax, TrainedModel, load_model_file
from tether.text import STOPWORDS, stem, words

if TYPE_CHECKING:
    from tether.answer._reader import Reader

DEFAULT_JUDGE_FILE = "judge_model.json"
JUDGE_READER_FEATURE = "reader"
"""The judge feature holding the reading model's logit for (claim, the cited evidence joined); always the last."""


class JudgeModel(TrainedModel):
    """Weights and thresholds of the learned judge (fitted on a training split; see ``trained_on``)."""

    model: Softmax
    support_threshold: float
    contradict_threshold: float

    def decide(self, p: dict[str, float], x: list[float]) -> Label:
        """The label from the model's probabilities, with one hard rule: a claim whose numbers are not
        all in the evidence is never SUPPORTED (a changed figure is the costliest wrong citation)."""
        ps, pc = p.get("SUPPORTED", 0.0), p.get("CONTRADICTED", 0.0)
        numbers_ok = x[JUDGE_FEATURES.index("numbers_present")] >= 1.0
        if ps >= self.support_threshold and ps >= pc and numbers_ok:
            return "SUPPORTED"
        if pc >= self.contradict_threshold:
            return "CONTRADICTED"
        return "UNSUPPORTED"

    @property
    def uses_reader(self) -> bool:
        """Whether the model was fitted with the packaged reading model's score (:data:`JUDGE_READER_FEATURE`)."""
        return tuple(self.model.features) == (*JUDGE_FEATURES, JUDGE_READER_FEATURE)


def load_judge_model(path: str | Path | None = None) -> JudgeModel:
    """The packaged judge model, or one at ``path``."""
    m = load_model_file(JudgeModel, DEFAULT_JUDGE_FILE, path, "judge model", "run `python bench/train_judge.py`")
    if tuple(m.model.features) != JUDGE_FEATURES and not m.uses_reader:
        raise ModelError(f"judge model {path or DEFAULT_JUDGE_FILE} was trained on other features; retrain it")
    return m


class LearnedJudge:
    """SUPPORTED / UNSUPPORTED / CONTRADICTED from features of the claim and its cited spans.

    ``reader`` is the packaged reading model; a judge model fitted with its score needs it (the packaged one is),
    one fitted without it ignores it. Thread-safe; embeddings of texts already seen are cached (a claim is often
    checked against several quotes, and quotes recur across answers).

    Raises:
        ModelError: the judge model needs the reader and none is given.
    """

    def __init__(
        self,
        embedder: OnnxEmbedder,
        model: JudgeModel | None = None,
        idf: IdfSource | None = None,
        *,
        reader: Reader | None = None,
        cache_size: int = 20_000,
    ) -> None:
        self.embedder = embedder
        self.model = model or load_judge_model()
        if self.model.uses_reader and reader is None:
            raise ModelError(
                "this judge model was fitted with the reading model's score; give LearnedJudge the packaged "
                "reader (tether.answer.load_packaged_reader().reader) or use a model fitted without it"
            )
        self.reader = reader if self.model.uses_reader else None
        self.idf_source: IdfSource = idf or UniformIdf()
        self.name = "learned:" + (self.model.trained_on or "judge")
        self._cache: dict[str, EncodedText] = {}
        self._lock = threading.Lock()
        self._cache_size = cache_size

    def encode(self, texts: list[str]) -> list[EncodedText]:
        with self._lock:
            got = {t: self._cache[t] for t in texts if t in self._cache}
        todo = [t for t in dict.fromkeys(texts) if t not in got]
        if todo:
            vecs, toks = self.embedder.encode(todo)  # the model runs outside the lock
            new = {t: EncodedText(t, v, tv) for t, v, tv in zip(todo, vecs, toks, strict=True)}
            got.update(new)
            with self._lock:
                if len(self._cache) + len(new) > self._cache_size:
                    self._cache.clear()
                self._cache.update(new)
        return [got[t] for t in texts]

    def features(self, claim: str, evidence: list[str]) -> list[float]:
        enc = self.encode([claim, *evidence])
        idf, max_idf = self.idf_source.idf([w for t in [claim, *evidence] for w in words(t)])
        x = judge_features(enc[0], enc[1:], idf, max_idf)
        if self.reader is not None:
            x.append(self.reader.scores(claim, [("", " ".join(evidence))])[0])
        return x

    def probabilities(self, claim: str, evidence: list[str]) -> dict[str, float]:
        return self.model.model.probabilities(self.features(claim, evidence))

    def verify(self, claim: str, evidence: list[str]) -> Verdict:
        evidence = [e for e in evidence if e.strip()]
        if not claim.strip() or not evidence:
            return Verdict(label="UNSUPPORTED", reason="no evidence cited", score=0.0, judge=self.name)
        x = self.features(claim, evidence)
        p = self.model.model.probabilities(x)
        label = self.model.decide(p, x)
        reason = self._reason(claim, evidence, x, p)
        return Verdict(label=label, reason=reason, score=p.get("SUPPORTED", 0.0), judge=self.name)

    def _reason(self, claim: str, evidence: list[str], x: list[float], p: dict[str, float]) -> str:
        f = dict(zip(self.model.model.features, x, strict=True))
        ev = {stem(w) for e in evidence for w in words(e)}
        missing = [w for w in dict.fromkeys(words(claim)) if w not in STOPWORDS and w.isalnum() and stem(w) not in ev]
        parts = [f"p(supported)={p.get('SUPPORTED', 0.0):.2f}", f"claim words covered {f['coverage']:.0%}"]
        if missing:
            parts.append("evidence lacks " + ", ".join(repr(w) for w in missing[:4]))
        if f["numbers_present"] < 1.0:
            parts.append("numbers differ" if f["numbers_conflict"] else "a number is not in the evidence")
        if f["negation_mismatch"]:
            parts.append("negated on one side only")
        if f["direction_mismatch"]:
            parts.append("opposite direction of change")
        if JUDGE_READER_FEATURE in f:
            parts.append(f"reader logit {f[JUDGE_READER_FEATURE]:+.1f}")
        return "; ".join(parts)


class OnnxNLIJudge:
    """A user's ONNX NLI model as a judge: premise = the cited evidence, hypothesis = the claim.

    ``labels`` names the model's outputs in order, e.g. ``["CONTRADICTED", "UNSUPPORTED", "SUPPORTED"]``
    for an MNLI head (contradiction, neutral, entailment). The most probable label wins, except that
    SUPPORTED also needs ``support_threshold``.
    """

    def __init__(self, model: OnnxPairModel, labels: list[str], *, support_threshold: float = 0.5) -> None:
        bad = [x for x in labels if x not in LABELS]
        if bad or "SUPPORTED" not in labels:
            raise ModelError(f"judge labels must be drawn from {list(LABELS)} and include SUPPORTED; got {labels}")
        self.pair_model = model
        self.labels = labels
        self.support_threshold = support_threshold
        self.name = model.name

    def verify(self, claim: str, evidence: list[str]) -> Verdict:
        evidence = [e for e in evidence if e.strip()]
        if not claim.strip() or not evidence:
            return Verdict(label="UNSUPPORTED", reason="no evidence cited", score=0.0, judge=self.name)
        logits = self.pair_model.logits([(" ".join(evidence), claim)])
        if logits.shape[1] != len(self.labels):
            raise ModelError(f"{self.name} gives {logits.shape[1]} labels but judge.labels names {len(self.labels)}")
        p = dict(zip(self.labels, (float(x) for x in softmax(logits)[0]), strict=True))
        label = max(p, key=lambda k: p[k])
        if label == "SUPPORTED" and p["SUPPORTED"] < self.support_threshold:
            label = "UNSUPPORTED"
        reason = ", ".join(f"p({k.lower()})={v:.2f}" for k, v in p.items())
        return Verdict.model_validate({"label": label, "reason": reason, "score": p["SUPPORTED"], "judge": self.name})
