"""Red-teaming: attack suites (injection, jailbreak, prompt extraction, PII leak, policy bypass) run against a
configured Tether, scored as attack success rates (`tether redteam run`, docs/safety.md)."""

from tether.redteam._report import render_html
from tether.redteam._run import CaseResult, CategoryScore, RedteamReport, matches, run_redteam
from tether.redteam._suite import (
    CATEGORIES,
    AttackCase,
    Suite,
    SuiteError,
    load_suite,
    packaged_suites,
    parse_suite,
    select_cases,
)

__all__ = [
    "CATEGORIES",
    "AttackCase",
    "CaseResult",
    "CategoryScore",
    "RedteamReport",
    "Suite",
    "SuiteError",
    "load_suite",
    "matches",
    "packaged_suites",
    "parse_suite",
    "render_html",
    "run_redteam",
    "select_cases",
]
