"""``routing.rules``: conditions written in tether.yaml that decide a request's starting tier before the learned
router does (the first rule that matches wins)."""

from __future__ import annotations

import re

from tether.config._settings import RouteRule, RuleWhen
from tether.router._features import kind_of
from tether.router._model import Decision
from tether.text import words


def matches(when: RuleWhen, question: str, feats: dict[str, float], tenant: str | None, role: str) -> bool:
    n = len(words(question))
    checks = [
        when.type is None or kind_of(question) in when.type,
        when.matches is None or re.search(when.matches, question, re.IGNORECASE) is not None,
        when.words_over is None or n > when.words_over,
        when.words_under is None or n < when.words_under,
        when.top_score_below is None or feats["top_score"] < when.top_score_below,
        when.probe_support_below is None or feats["probe_support"] < when.probe_support_below,
        when.probe_support_above is None or feats["probe_support"] > when.probe_support_above,
        when.tenant is None or (tenant or "") in when.tenant,
        when.role is None or role in when.role,
    ]
    return all(checks)


def by_rules(
    rules: list[RouteRule], question: str, feats: dict[str, float], tenant: str | None, role: str
) -> Decision | None:
    for i, rule in enumerate(rules):
        if matches(rule.when, question, feats, tenant, role):
            why = f"routing.rules[{i}]" + (f": {rule.reason}" if rule.reason else "")
            return Decision(rule.use, why, i, {}, dict(feats))
    return None
