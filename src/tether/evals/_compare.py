"""Compare two runs case by case, and say with an exact McNemar test whether the difference is real."""

from __future__ import annotations

from math import comb

from pydantic import BaseModel, Field

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
    fixed: list[str] = Field(description="failed in A, pass in B")
    broken: list[str] = Field(description="passed in A, fail in B")
    only_in_a: list[str]
    only_in_b: list[str]
    p_value: float = Field(description="exact McNemar test on the paired pass/fail outcomes")
    alpha: float
    significant: bool
    regression: bool = Field(description="B is worse than A and the difference is significant")


def compare_runs(a: RunReport, b: RunReport, alpha: float = 0.05) -> Comparison:
    """Pair cases by id (first repeat of each) and test whether B differs from A."""
    pa = {r.case_id: r.passed for r in a.results if r.repeat == 0}
    pb = {r.case_id: r.passed for r in b.results if r.repeat == 0}
    common = sorted(set(pa) & set(pb))
    fixed = [c for c in common if not pa[c] and pb[c]]
    broken = [c for c in common if pa[c] and not pb[c]]
    p = mcnemar_exact(len(broken), len(fixed))
    significant = p < alpha
    n = max(len(common), 1)
    return Comparison(
        run_a=a.summary.run_id,
        run_b=b.summary.run_id,
        common_cases=len(common),
        pass_rate_a=sum(pa[c] for c in common) / n,
        pass_rate_b=sum(pb[c] for c in common) / n,
        fixed=fixed,
        broken=broken,
        only_in_a=sorted(set(pa) - set(pb)),
        only_in_b=sorted(set(pb) - set(pa)),
        p_value=p,
        alpha=alpha,
        significant=significant,
        regression=significant and len(broken) > len(fixed),
    )
