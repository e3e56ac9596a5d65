"""The answer cache serves a repeat only where the fresh answer would be the same: same tenant, role, filters,
config and corpus generation, the same evidence, and (semantic hits) a question close enough in meaning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tether import Tether
from tether.config import default_yaml
from tether.contracts import Answer
from tether.pipeline._cache import AnswerCache, anchors, normalise

DOCS = {
    "travel.md": "# Travel\n\nThe daily meal allowance is 35 euros in Porto.\n\nThe daily meal allowance is 40 euros "
    "in Lisbon.\n",
    "leave.md": "# Leave\n\nEmployees get 25 vacation days a year.\n",
}
TENANTS = "\ntenants:\n  acme: {sources: ['*']}\n  globex: {sources: ['*']}\n"


def _tether(root: Path, semantic: float | None = None, max_entries: int = 1000) -> Tether:
    (root / "docs").mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    yaml = default_yaml().replace("\ntenants: {}", TENANTS)
    yaml = yaml.replace("cache:                          # the answer cache", "cache:  # the answer cache")
    yaml = yaml.replace("  enabled: false\n  max_entries: 1000", f"  enabled: true\n  max_entries: {max_entries}", 1)
    if semantic is not None:
        yaml = yaml.replace("  semantic_threshold: null", f"  semantic_threshold: {semantic}")
    (root / "tether.yaml").write_text(yaml, encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    assert t.settings.cache.enabled and t.settings.cache.semantic_threshold == semantic
    t.ingest([root / "docs"])
    return t


def _cached(a: Answer) -> str | None:
    ev = next((e for e in a.trace if e.stage == "cache"), None)
    return None if ev is None else str(ev.detail["kind"])


def test_a_repeat_is_served_from_the_cache_only_in_its_own_scope(tmp_path: Path) -> None:
    t = _tether(tmp_path)
    q = "What is the daily meal allowance in Porto?"
    fresh = t.ask(q, tenant="acme")
    again = t.ask("  what is the DAILY meal allowance in porto  ", tenant="acme")
    assert _cached(fresh) is None and _cached(again) == "exact"
    assert again.text == fresh.text and again.citations == fresh.citations and again.trace_id != fresh.trace_id
    assert again.question == "  what is the DAILY meal allowance in porto  "
    assert _cached(t.ask(q, tenant="globex")) is None  # another tenant: never another's entry
    assert _cached(t.ask(q, tenant="acme", role="hr")) is None  # another role (policy, redaction) decides anew
    (tmp_path / "docs" / "travel.md").write_text(DOCS["travel.md"].replace("35 euros", "38 euros"))
    t.ingest([tmp_path / "docs"])  # a new corpus generation: older answers are not served
    changed = t.ask(q, tenant="acme")
    assert _cached(changed) is None and "38 euros" in changed.citations[0].quote


def test_semantic_hits_need_close_meaning_and_the_same_evidence(tmp_path: Path) -> None:
    t = _tether(tmp_path, semantic=0.85)
    t.ask("What is the daily meal allowance in Porto?", tenant="acme")
    para = t.ask("In Porto, what's the daily meal allowance?", tenant="acme")
    assert _cached(para) == "semantic"
    sim = next(e for e in para.trace if e.stage == "cache").detail["similarity"]
    assert isinstance(sim, float) and 0.85 <= sim < 1.0
    # close in meaning AND the same passage (one chunk holds both cities): only the names tell them apart. This was
    # a false hit before the anchor check.
    other = t.ask("What is the daily meal allowance in Lisbon?", tenant="acme")
    assert _cached(other) is None and "40 euros" in other.citations[0].quote


def test_what_was_withheld_or_degraded_is_not_cached(tmp_path: Path) -> None:
    t = _tether(tmp_path)
    a = t.ask("How many vacation days do employees get?", tenant="acme")
    cache = t.answer_cache()
    assert cache is not None and cache.size("acme") == 1 and not a.abstained
    for _ in range(2):
        no = t.ask("How do I bake sourdough bread?", tenant="acme")
        assert no.abstained  # abstentions are answers too: the second comes from the cache
    assert cache.size("acme") == 2 and cache.hits["exact"] == 1


def test_the_cache_is_bounded_per_tenant_and_entries_expire() -> None:
    now = [0.0]
    c = AnswerCache(max_entries=2, ttl_s=10, clock=lambda: now[0])
    v = np.ones(4, np.float32) / 2

    def ans(text: str) -> Answer:
        return Answer(question=text, text=text, abstained=False, support=1, threshold=0.5, config_hash="h")

    for q in ("a?", "b?", "c?"):
        c.put("acme", "s", q, v, (1,), ans(q))
    assert c.size("acme") == 2 and c.lookup("acme", "s", "a", v, (1,)) is None  # the oldest went
    assert c.lookup("acme", "s", "C", v, (1,)) is not None and c.lookup("globex", "s", "c?", v, (1,)) is None
    assert c.lookup("acme", "s", "c?", v, (2,)) is None  # other evidence: not the same answer
    now[0] = 11.0
    assert c.lookup("acme", "s", "c?", v, (1,)) is None and c.size("acme") == 0
    assert normalise(" What  is IT?? ") == "what is it"
    assert anchors("What is the meal allowance in Porto for 2026?") == {"porto", "2026"}
    assert anchors("Porto: what is the allowance?") == frozenset()  # a first word may be capitalised anyway


def test_a_semantic_threshold_must_be_a_similarity(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from tether.config._settings import CacheSettings

    with pytest.raises(ValidationError):
        CacheSettings(semantic_threshold=1.5)


def test_a_semantic_hit_needs_the_same_best_chunk_and_what_the_answer_cited() -> None:
    c = AnswerCache(semantic_threshold=0.9)
    v = np.ones(4, np.float32) / 2
    a = Answer(question="q", text="35 euros [1]", abstained=False, support=0.9, threshold=0.5, config_hash="h")
    c.put("acme", "s", "What is the allowance?", v, (7, 3, 9, 4), a, frozenset({3}))
    # a paraphrase whose tail ranks differently, the cited chunk still retrieved: served
    got = c.lookup("acme", "s", "What's the allowance?", v, (7, 9, 3, 12))
    assert got is not None and got[1] == "semantic"
    assert c.lookup("acme", "s", "What's the allowance?", v, (9, 7, 3, 4)) is None  # another best chunk
    assert c.lookup("acme", "s", "What's the allowance?", v, (7, 9, 4, 12)) is None  # the cited chunk is gone
    reordered = c.lookup("acme", "s", "What is the allowance?", v, (7, 9, 3, 4))  # exact needs the same order,
    assert reordered is not None and reordered[1] == "semantic"  # the same question is then a semantic hit
    # an abstention stands on its top three hits
    no = Answer(question="q", text="Not in the documents.", abstained=True, support=0.1, threshold=0.5, config_hash="h")
    c.put("acme", "s", "Who flies to Porto?", v, (1, 2, 5, 6), no)
    assert c.lookup("acme", "s", "Which airline flies to Porto?", v, (1, 5, 2, 8)) is not None
    assert c.lookup("acme", "s", "Which airline flies to Porto?", v, (1, 2, 8, 9)) is None
