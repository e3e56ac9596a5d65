"""Stand-ins shared by tests in several folders (importable: tests/ is on sys.path through its conftest.py)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class HashEmbedder:
    """A seeded unit vector per text: for tests about ingest and storage, not about the model."""

    model_id = "test-hash"
    dim = 16

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        out = np.empty((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            v = np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(self.dim)
            out[i] = v / np.linalg.norm(v)
        return out
