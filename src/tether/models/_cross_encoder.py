"""A user's own cross-encoder or NLI model in ONNX, run with onnxruntime: scores (text, text) pairs.

Tether ships none (no such model can be had offline here); this is the plug-in point behind the
Reranker and Judge protocols. The model takes the usual BERT-style inputs (input_ids,
attention_mask, optionally token_type_ids) and returns logits [batch, n_labels] as its first output.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tether.errors import ModelError


class OnnxPairModel:
    """Logits for (first, second) text pairs from an ONNX sequence-pair classifier."""

    def __init__(
        self,
        model_path: str | Path,
        tokenizer_path: str | Path,
        *,
        max_length: int = 256,
        batch_size: int = 16,
        threads: int = 0,
    ) -> None:
        self.model_path = Path(model_path)
        self.tokenizer_path = Path(tokenizer_path)
        for p, what in ((self.model_path, "model"), (self.tokenizer_path, "tokenizer")):
            if not p.is_file():
                raise ModelError(f"cross-encoder {what} {p} does not exist")
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads
        self.name = f"onnx:{self.model_path.name}"
        self._lock = threading.Lock()
        self._session: object | None = None
        self._tokenizer: object | None = None
        self._inputs: set[str] = set()

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            try:
                tok = Tokenizer.from_file(str(self.tokenizer_path))
            except Exception as e:  # tokenizers raises a bare Exception on a bad file
                raise ModelError(f"cross-encoder tokenizer {self.tokenizer_path} cannot be read ({e})") from None
            tok.enable_truncation(max_length=self.max_length)
            tok.enable_padding()
            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
            try:
                sess = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime raises its own exception types for a bad model
                raise ModelError(f"cross-encoder model {self.model_path} cannot be loaded ({e})") from None
            self._inputs = {i.name for i in sess.get_inputs()}
            missing = {"input_ids", "attention_mask"} - self._inputs
            if missing:
                raise ModelError(f"cross-encoder model {self.model_path} lacks inputs {sorted(missing)}")
            self._tokenizer, self._session = tok, sess

    def logits(self, pairs: list[tuple[str, str]]) -> npt.NDArray[np.float32]:
        """[len(pairs), n_labels] logits (n_labels = 1 for a plain relevance scorer)."""
        if self._session is None:
            self._load()
        tok: Any = self._tokenizer
        sess: Any = self._session
        # batches of similar length pad less: pairs go through in order of length and come back in input order
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        rows: list[npt.NDArray[np.float32]] = []
        for b in range(0, len(pairs), self.batch_size):
            encs = tok.encode_batch([pairs[i] for i in order[b : b + self.batch_size]])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64)}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.array([e.type_ids for e in encs], dtype=np.int64)
            out = np.asarray(sess.run(None, feeds)[0], dtype=np.float32)
            if out.ndim == 1:
                out = out[:, None]
            if out.ndim != 2 or out.shape[0] != len(encs):
                raise ModelError(
                    f"cross-encoder model {self.model_path} returned shape {out.shape}; want [batch, labels]"
                )
            rows.append(out)
        if not rows:
            return np.zeros((0, 1), np.float32)
        result = np.empty((len(pairs), rows[0].shape[1]), np.float32)
        result[order] = np.concatenate(rows)
        return result


def softmax(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    out: npt.NDArray[np.float32] = (z / z.sum(axis=1, keepdims=True)).astype(np.float32)
    return out
