"""The router: per tier, a small logistic model of "this tier's answer will pass", from the request's features and
the outcomes of the most similar training questions; the decision is the cheapest tier likely enough to pass.

The file is plain JSON (weights, the training questions' embeddings as float16, their outcomes): no learning
library is needed to use it, and ``tether route train`` fits it with numpy alone.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from tether.models._linear import Logistic, TrainedModel, load_model_file
from tether.router._features import BASE_FEATURES

REFUSE = "refuse"
"""The option of not answering: the probe's abstention ("Not in the documents." with the nearest passage)."""


class Neighbours(BaseModel):
    """The training questions' embeddings (float16, base64, row-major) and each option's outcome on them."""

    k: int = Field(5, ge=1)
    dim: int
    vectors: str
    passed: dict[str, list[bool]]

    def matrix(self) -> npt.NDArray[np.float32]:
        raw = np.frombuffer(base64.b64decode(self.vectors), dtype=np.float16)
        return raw.reshape(-1, self.dim).astype(np.float32)

    @staticmethod
    def pack(vectors: npt.NDArray[np.float32]) -> str:
        return base64.b64encode(np.ascontiguousarray(vectors, dtype=np.float16).tobytes()).decode("ascii")


def past_rates(
    matrix: npt.NDArray[np.float32],
    passed: dict[str, list[bool]],
    vector: npt.NDArray[np.float32],
    k: int,
    exclude: int | None = None,
) -> dict[str, float]:
    """Each option's pass rate over the ``k`` training questions nearest ``vector`` (``exclude``: leave one out)."""
    if len(matrix) == 0:
        return {o: 0.5 for o in passed}
    sims = matrix @ vector
    if exclude is not None:
        sims = sims.copy()
        sims[exclude] = -np.inf
    n = min(k, len(sims) - (exclude is not None))
    if n <= 0:
        return {o: 0.5 for o in passed}
    near = np.argpartition(-sims, n - 1)[:n]
    return {o: float(np.mean([v[i] for i in near])) for o, v in passed.items()}


class RouterModel(TrainedModel):
    """What ``tether route train`` writes (``routing.router``)."""

    tiers: list[str] = Field(description="the cascade it was trained for, cheapest first")
    models: dict[str, Logistic] = Field(description="per tier, and 'refuse': probability that it passes")
    min_pass: float = Field(description="start at the cheapest tier at least this likely to pass (chosen in training)")
    cost_ms: dict[str, float] = Field(default_factory=dict, description="mean time per answer of each tier (training)")
    cost: dict[str, float] = Field(default_factory=dict, description="mean money per answer of each tier (training)")
    neighbours: Neighbours

    def features(self) -> list[str]:
        return [*BASE_FEATURES, *(f"past_{o}" for o in self.options())]

    def options(self) -> list[str]:
        return [*self.tiers, REFUSE]


@dataclass
class Decision:
    """Where a request starts (a tier, or 'refuse') and why, with the numbers behind it."""

    choice: str
    reason: str
    rule: int | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    features: dict[str, float] = field(default_factory=dict)

    def detail(self) -> dict[str, object]:
        return {
            "choice": self.choice,
            "reason": self.reason,
            "rule": self.rule,
            "p": {k: round(v, 4) for k, v in self.probabilities.items()},
            "features": {k: round(v, 4) for k, v in self.features.items()},
        }


class Router:
    """A loaded router: the model with its neighbour matrix decoded once."""

    def __init__(self, model: RouterModel) -> None:
        self.model = model
        self._matrix = model.neighbours.matrix()

    def probabilities(
        self, base: dict[str, float], vector: npt.NDArray[np.float32], exclude: int | None = None
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(each option's probability of passing, the full feature row it was computed from)."""
        m = self.model
        past = past_rates(self._matrix, m.neighbours.passed, vector, m.neighbours.k, exclude)
        row = {**base, **{f"past_{o}": past.get(o, 0.5) for o in m.options()}}
        x = [row[f] for f in m.features()]
        return {o: lg.probability(x) for o, lg in m.models.items()}, row

    def decide(
        self,
        base: dict[str, float],
        vector: npt.NDArray[np.float32],
        cascade: list[str],
        min_pass: float | None = None,
    ) -> Decision:
        p, row = self.probabilities(base, vector)
        return choose(p, cascade, self.model.min_pass if min_pass is None else min_pass, row)


def choose(p: dict[str, float], cascade: list[str], min_pass: float, row: dict[str, float] | None = None) -> Decision:
    """The cheapest tier (cascade order) with p >= min_pass; else refuse when refusing is likelier right than the
    best tier; else the best tier. Tiers the router was not trained for are left to the cascade's escalation."""
    known = [t for t in cascade if t in p]
    for t in known:
        if p[t] >= min_pass:
            return Decision(t, f"cheapest tier likely to pass: {t} p={p[t]:.2f} >= {min_pass:.2f}", None, p, row or {})
    if not known:
        return Decision(cascade[0], "the router knows none of the cascade's tiers: start at the first", None, p)
    best = max(known, key=lambda t: p[t])
    if p.get(REFUSE, 0.0) > p[best]:
        return Decision(
            REFUSE,
            f"no tier likely to pass (best {best} p={p[best]:.2f} < {min_pass:.2f}); "
            f"not answering is likelier right (p={p[REFUSE]:.2f})",
            None,
            p,
            row or {},
        )
    return Decision(best, f"no tier reaches {min_pass:.2f}: the likeliest, {best} p={p[best]:.2f}", None, p, row or {})


def worth_escalating(p: dict[str, float], tier: str) -> bool:
    """After an abstention, whether to go on to ``tier``: only when the router judges an answer from it at least as
    likely right as the abstention already given (no probabilities, as after a rule: always)."""
    if tier not in p or REFUSE not in p:
        return True
    return p[tier] >= p[REFUSE]


def load_router(path: str | Path) -> Router:
    return Router(
        load_model_file(RouterModel, "", path, "router", "train one with `tether route train` (docs/routing.md)")
    )
