"""Drift: is what users ask now different from what they asked before, and are the outcome rates moving?

Questions are compared as embeddings: the maximum mean discrepancy (MMD, RBF kernel, bandwidth by the median
heuristic on the reference) between a reference window and each later window, with a permutation test for its
p-value. Rates (abstention, mean latency) are compared window against reference with a two-proportion z-test and
a Welch test. A window alarms when a p-value falls below ``alpha`` (Bonferroni-corrected over the tests it runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

Vectors = npt.NDArray[np.float32]


def _sq_dists(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    out: npt.NDArray[np.float64] = np.maximum(d, 0.0)
    return out


def bandwidth(reference: Vectors) -> float:
    """The median heuristic: the median pairwise squared distance within ``reference`` (at least 1e-6)."""
    x = reference.astype(np.float64)
    d = _sq_dists(x, x)
    upper = d[np.triu_indices(len(x), k=1)]
    return float(max(np.median(upper), 1e-6)) if upper.size else 1.0


def mmd2(kernel: npt.NDArray[np.float64], n: int) -> float:
    """Unbiased MMD² from the joint kernel matrix of ``n`` reference rows followed by the current rows."""
    m = kernel.shape[0] - n
    kxx, kyy, kxy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def mmd_test(
    reference: Vectors, current: Vectors, *, permutations: int = 200, seed: int = 0, gamma: float | None = None
) -> tuple[float, float]:
    """(MMD², permutation p-value) of ``current`` against ``reference`` (each at least 2 rows)."""
    if len(reference) < 2 or len(current) < 2:
        raise ValueError("an MMD test needs at least two rows in each window")
    g = gamma if gamma is not None else 1.0 / bandwidth(reference)
    z = np.vstack([reference, current]).astype(np.float64)
    k = np.exp(-g * _sq_dists(z, z))
    n = len(reference)
    observed = mmd2(k, n)
    rng = np.random.default_rng(seed)
    above = 0
    for _ in range(permutations):
        idx = rng.permutation(len(z))
        if mmd2(k[np.ix_(idx, idx)], n) >= observed:
            above += 1
    return observed, (above + 1) / (permutations + 1)


def proportion_test(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of a two-proportion z-test (1.0 when it cannot be told)."""
    if not n1 or not n2:
        return 1.0
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(k1 / n1 - k2 / n2) / se
    return math.erfc(z / math.sqrt(2))


def welch_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test by the normal approximation (windows are tens of requests)."""
    if len(a) < 2 or len(b) < 2:
        return 1.0
    va, vb = float(np.var(a, ddof=1)), float(np.var(b, ddof=1))
    se = math.sqrt(va / len(a) + vb / len(b))
    if se == 0:
        return 1.0
    z = abs(float(np.mean(a)) - float(np.mean(b))) / se
    return math.erfc(z / math.sqrt(2))


class Window(BaseModel):
    """One window of requests against the reference."""

    start: int
    size: int
    mmd2: float
    p_questions: float
    abstain_rate: float
    p_abstain: float
    mean_ms: float
    p_latency: float
    alarm: bool
    reasons: list[str]


class DriftReport(BaseModel):
    reference_size: int
    window: int
    alpha: float
    reference_abstain_rate: float
    reference_mean_ms: float
    windows: list[Window]

    @property
    def first_alarm(self) -> Window | None:
        return next((w for w in self.windows if w.alarm), None)


def drift_report(
    vectors: Vectors,
    abstained: Sequence[bool],
    ms: Sequence[float],
    *,
    reference: int,
    window: int,
    alpha: float = 0.01,
    permutations: int = 1000,
    seed: int = 0,
) -> DriftReport:
    """Requests in time order: the first ``reference`` are the reference; each later run of ``window`` (the last
    may be shorter, at least 10) is tested against it. Three tests a window, Bonferroni: each at ``alpha / 3``.

    Raises:
        ValueError: too few requests for a reference and one window, mismatched lengths, or too few permutations
            for the test to reach ``alpha / 3`` at all.
    """
    n = len(vectors)
    if not (len(abstained) == len(ms) == n):
        raise ValueError("vectors, abstained and ms must describe the same requests")
    if reference < 10 or window < 10 or n < reference + 10:
        raise ValueError(f"need a reference of at least 10 requests and a window of at least 10 (have {n} requests)")
    if 1.0 / (permutations + 1) >= alpha / 3:
        raise ValueError(
            f"{permutations} permutations cannot give a p-value below alpha/3 = {alpha / 3:.4g}; use at least "
            f"{math.ceil(3 / alpha)}"
        )
    ref = vectors[:reference]
    gamma = 1.0 / bandwidth(ref)
    ref_abs, ref_ms = list(abstained[:reference]), list(ms[:reference])
    each = alpha / 3
    out: list[Window] = []
    for i, start in enumerate(range(reference, n, window)):
        end = min(start + window, n)
        if end - start < 10:
            break
        stat, p_q = mmd_test(ref, vectors[start:end], permutations=permutations, seed=seed + i, gamma=gamma)
        cur_abs, cur_ms = list(abstained[start:end]), list(ms[start:end])
        p_a = proportion_test(sum(ref_abs), len(ref_abs), sum(cur_abs), len(cur_abs))
        p_l = welch_test(ref_ms, cur_ms)
        reasons = [name for name, p in (("questions", p_q), ("abstention", p_a), ("latency", p_l)) if p < each]
        out.append(
            Window(
                start=start,
                size=end - start,
                mmd2=round(stat, 6),
                p_questions=round(p_q, 4),
                abstain_rate=round(sum(cur_abs) / len(cur_abs), 4),
                p_abstain=round(p_a, 4),
                mean_ms=round(float(np.mean(cur_ms)), 2),
                p_latency=round(p_l, 4),
                alarm=bool(reasons),
                reasons=reasons,
            )
        )
    return DriftReport(
        reference_size=reference,
        window=window,
        alpha=alpha,
        reference_abstain_rate=round(sum(ref_abs) / len(ref_abs), 4),
        reference_mean_ms=round(float(np.mean(ref_ms)), 2),
        windows=out,
    )
