"""Drift: is what users ask now different from what they asked before, and are the outcome rates moving?

Questions are compared as embeddings: the maximum mean discrepancy (MMD, RBF kernel, bandwidth by the median
heuristic on the reference) between a reference window and each later window, with a permutation test for its
p-value. Rates (abstention, mean latency) are compared window against reference with a two-proportion z-test and
a Welch test. A window alarms when a p-value falls below ``alpha`` (Bonferroni-corrected over the tests it runs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

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


def kmeans(x: Vectors, k: int, *, iterations: int = 50, seed: int = 0) -> npt.NDArray[np.float64]:
    """Centroids of ``k`` clusters of the rows of ``x`` (k-means++ start, Lloyd iterations)."""
    rng = np.random.default_rng(seed)
    z = x.astype(np.float64)
    centres = [z[rng.integers(len(z))]]
    for _ in range(1, k):
        d = np.min(_sq_dists(z, np.array(centres)), axis=1)
        total = d.sum()
        centres.append(z[rng.choice(len(z), p=d / total)] if total > 0 else z[rng.integers(len(z))])
    c = np.array(centres)
    for _ in range(iterations):
        label = np.argmin(_sq_dists(z, c), axis=1)
        new = np.array([z[label == j].mean(0) if np.any(label == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def chi2_sf(x: float, dof: int) -> float:
    """Upper tail of the chi-square distribution (Wilson-Hilferty approximation; within 0.01 for dof >= 2)."""
    if dof <= 0 or x <= 0:
        return 1.0
    z = ((x / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(z / math.sqrt(2))


def share_test(reference: Sequence[int], current: Sequence[int]) -> float:
    """p-value of a chi-square test of homogeneity: do the reference's and the window's counts per cluster come
    from the same shares? (Both are samples: testing the window against the reference's shares as if they were
    exact alarmed three times too often.) Clusters with under 5 expected requests are pooled with the rarest."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    n1, n2 = ref.sum(), cur.sum()
    if n1 == 0 or n2 == 0:
        return 1.0
    total = ref + cur
    small = min(n1, n2) / (n1 + n2)
    bins: list[tuple[float, float]] = []
    r_acc = c_acc = 0.0
    for j in np.argsort(total):  # pool the rarest clusters until each bin expects 5 in the smaller sample
        r_acc += ref[j]
        c_acc += cur[j]
        if (r_acc + c_acc) * small >= 5:
            bins.append((r_acc, c_acc))
            r_acc = c_acc = 0.0
    if (r_acc or c_acc) and bins:
        r, c = bins[-1]
        bins[-1] = (r + r_acc, c + c_acc)
    if len(bins) < 2:
        return 1.0
    obs = np.array(bins).T  # 2 x bins
    expected = obs.sum(1, keepdims=True) * obs.sum(0, keepdims=True) / obs.sum()
    return chi2_sf(float(((obs - expected) ** 2 / expected).sum()), len(bins) - 1)


class Topic(BaseModel):
    """A cluster of the reference's questions: its share of the reference and words that label it."""

    n: int
    share: float
    label: str


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
    topic_shares: list[float] = []
    p_topics: float = 1.0
    rates: dict[str, float] = {}
    p_rates: dict[str, float] = {}
    alarm: bool
    reasons: list[str]


class DriftReport(BaseModel):
    reference_size: int
    window: int
    alpha: float
    reference_abstain_rate: float
    reference_mean_ms: float
    reference_rates: dict[str, float] = {}
    topics: list[Topic] = []
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
    rates: Mapping[str, Sequence[bool]] | None = None,
    texts: Sequence[str] | None = None,
    topics: int = 0,
) -> DriftReport:
    """Requests in time order: the first ``reference`` are the reference; each later run of ``window`` (the last
    may be shorter, at least 10) is tested against it: question drift (MMD), abstention, latency, then each of
    ``rates`` (other outcomes per request, e.g. policy refusals, injection flags) by a two-proportion test and,
    with ``topics`` > 1, the shares of the reference's question clusters (k-means) by a chi-square test (their
    labels from ``texts``). Bonferroni over the tests a window runs.

    Raises:
        ValueError: too few requests for a reference and one window, mismatched lengths, or too few permutations
            for the test to reach ``alpha / 3`` at all.
    """
    n = len(vectors)
    rates = dict(rates or {})
    if not (len(abstained) == len(ms) == n) or any(len(v) != n for v in rates.values()):
        raise ValueError("vectors, abstained, ms and every rate must describe the same requests")
    if texts is not None and len(texts) != n:
        raise ValueError("texts must describe the same requests as vectors")
    if reference < 10 or window < 10 or n < reference + 10:
        raise ValueError(f"need a reference of at least 10 requests and a window of at least 10 (have {n} requests)")
    tests = 3 + len(rates) + (1 if topics > 1 else 0)
    if 1.0 / (permutations + 1) >= alpha / tests:
        raise ValueError(
            f"{permutations} permutations cannot give a p-value below alpha/{tests} = {alpha / tests:.4g}; use at "
            f"least {math.ceil(tests / alpha)}"
        )
    ref = vectors[:reference]
    gamma = 1.0 / bandwidth(ref)
    ref_abs, ref_ms = list(abstained[:reference]), list(ms[:reference])
    each = alpha / tests
    labels: npt.NDArray[np.intp] | None = None
    ref_counts: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
    topic_list: list[Topic] = []
    if topics > 1:
        centres = kmeans(ref, min(topics, reference // 5), seed=seed)
        labels = np.argmin(_sq_dists(vectors.astype(np.float64), centres), axis=1)
        ref_counts = np.bincount(labels[:reference], minlength=len(centres))
        topic_list = [
            Topic(
                n=j,
                share=round(float(ref_counts[j] / reference), 4),
                label=_label([texts[i] for i in range(reference) if labels[i] == j]) if texts else "",
            )
            for j in range(len(centres))
        ]
    out: list[Window] = []
    for i, start in enumerate(range(reference, n, window)):
        end = min(start + window, n)
        if end - start < 10:
            break
        stat, p_q = mmd_test(ref, vectors[start:end], permutations=permutations, seed=seed + i, gamma=gamma)
        cur_abs, cur_ms = list(abstained[start:end]), list(ms[start:end])
        p_a = proportion_test(sum(ref_abs), len(ref_abs), sum(cur_abs), len(cur_abs))
        p_l = welch_test(ref_ms, cur_ms)
        tested = [("questions", p_q), ("abstention", p_a), ("latency", p_l)]
        cur_rates: dict[str, float] = {}
        p_rates: dict[str, float] = {}
        for name, flags in rates.items():
            r_ref, r_cur = flags[:reference], flags[start:end]
            cur_rates[name] = round(sum(r_cur) / len(r_cur), 4)
            p_rates[name] = round(proportion_test(sum(r_ref), len(r_ref), sum(r_cur), len(r_cur)), 4)
            tested.append((name, p_rates[name]))
        shares: list[float] = []
        p_t = 1.0
        if labels is not None:
            counts = np.bincount(labels[start:end], minlength=len(topic_list))
            shares = [round(float(c / (end - start)), 4) for c in counts]
            p_t = share_test(ref_counts.tolist(), counts.tolist())
            tested.append(("topics", p_t))
        reasons = [name for name, p in tested if p < each]
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
                topic_shares=shares,
                p_topics=round(p_t, 4),
                rates=cur_rates,
                p_rates=p_rates,
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
        reference_rates={k: round(sum(v[:reference]) / reference, 4) for k, v in rates.items()},
        topics=topic_list,
        windows=out,
    )


_STOP_WORDS = (
    "a an and are as at be by can do does for from how i in is it its me my of on or our the this to was we what "
    "when where which who why will with you your there their they should would could have has had not any"
)
_STOP = frozenset(_STOP_WORDS.split(" "))


def _label(texts: Sequence[str], n: int = 3) -> str:
    """The ``n`` words most frequent in ``texts`` (stop words left out): a label a person can read."""
    counts: dict[str, int] = {}
    for t in texts:
        for w in set(re.findall(r"[a-z][a-z'-]{2,}", t.lower())):
            if w not in _STOP:
                counts[w] = counts.get(w, 0) + 1
    return ", ".join(w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])
