"""Compare two runs case by case, and decide the CI gate.

The gate fails closed: it fails on a significant exact McNemar test, on more regressed cases than the
tolerance allows (by default any case that passed and now fails, unless marked flaky), and on baseline
cases missing from the new run. A baseline with no results, or none in common with the run, is an error.
"""

from __future__ import annotations

from math import comb

from pydantic import BaseModel, Field

from tether.errors import DataError
from tether.evals._results import RunReport


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b discordant pairs one way and c the other."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


class CaseChange(BaseModel):
    case_id: str
    before: bool
    after: bool


class Comparison(BaseModel):
    run_a: str
    run_b: str
    common_cases: int
    pass_rate_a: float
    pass_rate_b: float
    pass_rate_drop: float = Field(description="pass rate of A minus that of B on the common cases")
    fixed: list[str] = Field(description="failed in A, pass in B")
    broken: list[str] = Field(description="passed in A, fail in B")
    broken_flaky: list[str] = Field(default_factory=list, description="the broken cases marked flaky")
    regressions: int = Field(0, description="broken cases not marked flaky (what the tolerance counts)")
    max_regressions: int = Field(0, description="the tolerance: regressed cases allowed before the gate fails")
    only_in_a: list[str]
    only_in_b: list[str]
    p_value: float = Field(description="exact McNemar test on the paired pass/fail outcomes")
    alpha: float
    significant: bool
    significant_regression: bool = Field(False, description="B is worse than A and the test is significant")
    regression: bool = Field(description="the gate fails: see reasons")
    reasons: list[str] = Field(default_factory=list, description="why the gate fails (empty when it passes)")


def _outcomes(r: RunReport) -> tuple[dict[str, bool], set[str]]:
    first = [x for x in r.results if x.repeat == 0]
    return {x.case_id: x.passed for x in first}, {x.case_id for x in first if x.flaky}


def compare_runs(
    a: RunReport,
    b: RunReport,
    alpha: float = 0.05,
    *,
    max_regressions: int = 0,
    flaky: set[str] | frozenset[str] = frozenset(),
) -> Comparison:
    """Pair cases by id (first repeat of each), test whether B differs from A, and decide the gate.

    Args:
        a: The baseline (earlier) run.
        b: The new run.
        alpha: Significance level of the exact McNemar test.
        max_regressions: Cases that passed in A and fail in B (flaky ones aside) allowed before the gate fails.
        flaky: Case ids whose regression alone does not count (cases marked ``flaky: true`` in B count too).

    Raises:
        DataError: A has no results, B has none, or the two share no case id (nothing would be compared).
    """
    if max_regressions < 0:
        raise DataError(f"max_regressions must be 0 or more, not {max_regressions}")
    pa, _ = _outcomes(a)
    pb, flaky_b = _outcomes(b)
    for run, outcomes in ((a, pa), (b, pb)):
        if not outcomes:
            raise DataError(f"run {run.summary.run_id or '(unnamed)'} has no case results: nothing to compare")
    common = sorted(set(pa) & set(pb))
    if not common:
        raise DataError(
            f"runs {a.summary.run_id} and {b.summary.run_id} share no case id ({len(pa)} and {len(pb)} cases): "
            "a baseline must hold the cases being run"
        )
    marked = set(flaky) | flaky_b
    fixed = [c for c in common if not pa[c] and pb[c]]
    broken = [c for c in common if pa[c] and not pb[c]]
    broken_flaky = [c for c in broken if c in marked]
    regressions = len(broken) - len(broken_flaky)
    p = mcnemar_exact(len(broken), len(fixed))
    significant = p < alpha
    significant_regression = significant and len(broken) > len(fixed)
    rate_a = sum(pa[c] for c in common) / len(common)
    rate_b = sum(pb[c] for c in common) / len(common)
    only_in_a = sorted(set(pa) - set(pb))
    reasons = []
    if significant_regression:
        reasons.append(f"significantly worse (McNemar p={p:.4f} < {alpha:g})")
    if regressions > max_regressions:
        reasons.append(
            f"{regressions} case(s) passed in the baseline and fail now (tolerance {max_regressions}); "
            f"pass rate {rate_a:.3f} -> {rate_b:.3f}"
        )
    if only_in_a:
        reasons.append(
            f"{len(only_in_a)} baseline case(s) missing from this run (renamed or removed?): "
            + ", ".join(only_in_a[:5])
            + (" ..." if len(only_in_a) > 5 else "")
            + "; refresh the baseline if intended"
        )
    return Comparison(
        run_a=a.summary.run_id,
        run_b=b.summary.run_id,
        common_cases=len(common),
        pass_rate_a=rate_a,
        pass_rate_b=rate_b,
        pass_rate_drop=rate_a - rate_b,
        fixed=fixed,
        broken=broken,
        broken_flaky=broken_flaky,
        regressions=regressions,
        max_regressions=max_regressions,
        only_in_a=only_in_a,
        only_in_b=sorted(set(pb) - set(pa)),
        p_value=p,
        alpha=alpha,
        significant=significant,
        significant_regression=significant_regression,
        regression=bool(reasons),
        reasons=reasons,
    )
