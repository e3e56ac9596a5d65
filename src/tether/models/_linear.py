"""Small linear models Tether trains itself (logistic and softmax regression), evaluated with numpy only.

Training happens in bench/ scripts (scikit-learn there); the fitted weights are plain JSON so the
package needs no learning library at run time.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, Field

from tether.errors import ModelError


class Logistic(BaseModel):
    """A standardised logistic regression: p = sigmoid(intercept + coef . (x - mean) / scale)."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    def probability(self, x: list[float]) -> float:
        z = self.intercept
        for v, m, s, c in zip(x, self.mean, self.scale, self.coef, strict=True):
            z += c * (v - m) / (s or 1.0)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def probabilities(self, xs: list[list[float]]) -> list[float]:
        """``probability`` of many rows at once."""
        if not xs:
            return []
        x = (np.asarray(xs, dtype=np.float64) - np.asarray(self.mean)) / np.where(
            np.asarray(self.scale) == 0, 1.0, np.asarray(self.scale)
        )
        z = np.clip(x @ np.asarray(self.coef) + self.intercept, -50.0, 50.0)
        return [float(p) for p in 1.0 / (1.0 + np.exp(-z))]


class Softmax(BaseModel):
    """A standardised multinomial logistic regression over ``labels``."""

    features: list[str]
    labels: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[list[float]]  # [label][feature]
    intercept: list[float]

    def probabilities(self, x: list[float]) -> dict[str, float]:
        v = (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.where(
            np.asarray(self.scale) == 0, 1.0, np.asarray(self.scale)
        )
        z = np.asarray(self.coef) @ v + np.asarray(self.intercept)
        z = np.exp(z - z.max())
        p = z / z.sum()
        return {label: float(q) for label, q in zip(self.labels, p, strict=True)}


class TrainedModel(BaseModel):
    """A model file Tether writes: weights plus where they were fitted and what they scored there."""

    trained_on: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")


M = TypeVar("M", bound=BaseModel)


def load_model_file(cls: type[M], packaged: str, path: str | Path | None, what: str, how_to_fix: str) -> M:
    """``cls`` from the JSON file at ``path``, or from the package's data folder when ``path`` is None."""
    try:
        if path is None:
            raw = resources.files("tether").joinpath("data", packaged).read_text(encoding="utf-8")
        else:
            raw = Path(path).read_text(encoding="utf-8")
        return cls.model_validate(json.loads(raw))
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load the {what} {path or packaged} ({e}); {how_to_fix}") from None


def fit_logistic(
    x: list[list[float]], y: list[bool], features: list[str], *, l2: float = 1.0, iterations: int = 50
) -> Logistic:
    """A standardised L2-regularised logistic regression fitted by Newton's method (what scikit-learn's
    ``LogisticRegression(C=1/l2)`` fits on standardised features, intercept unpenalised), for models users train
    on their own data at run time (the router) without a learning library. One class only: a constant model."""
    if len(x) != len(y) or not x:
        raise ValueError(f"fit_logistic: {len(x)} rows and {len(y)} labels")
    a = np.asarray(x, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    mean, scale = a.mean(axis=0), a.std(axis=0)
    scale = np.where(scale == 0, 1.0, scale)
    z = np.hstack([np.ones((len(a), 1)), (a - mean) / scale])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    if t.min() == t.max():  # one class: the intercept alone, kept finite
        w[0] = math.log((t.sum() + 0.5) / (len(t) - t.sum() + 0.5))
    else:
        for _ in range(iterations):
            p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50.0, 50.0)))
            grad = z.T @ (p - t) + penalty * w
            hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hess, grad)
            w -= step
            if float(np.abs(step).max()) < 1e-8:
                break
    return Logistic(
        features=list(features),
        mean=[float(v) for v in mean],
        scale=[float(v) for v in scale],
        coef=[float(v) for v in w[1:]],
        intercept=float(w[0]),
    )
