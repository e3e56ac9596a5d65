"""Chains built from names: unknown stages, stages without their inputs and chains without a result are errors
before any request; a plug-in stage slots in by configuration without touching the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether._api import Tether
from tether.config import default_yaml
from tether.errors import ConfigError
from tether.pipeline import DEFAULT_CHAINS, RequestState, StageContext, build_chain, known_stages, register_stage


def test_the_default_chains() -> None:
    assert [s.name for s in build_chain("ask", None)] == ["policy", "retrieve", "rerank", "answer", "audit"]
    assert [s.name for s in build_chain("search", None)] == ["retrieve", "rerank"]
    assert DEFAULT_CHAINS["ask"][-1] == "audit"


def test_an_unknown_stage_is_an_error_that_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as e:
        build_chain("ask", ["policy", "retreive", "answer"])
    msg = str(e.value)
    assert "pipeline.ask" in msg and "'retreive'" in msg
    for name in ("policy", "retrieve", "rerank", "answer", "audit"):
        assert name in msg


@pytest.mark.parametrize(
    ("kind", "names", "needle"),
    [
        ("ask", ["answer", "retrieve"], "stage 'answer' needs hits, query_vector"),
        ("ask", ["policy", "audit"], "stage 'audit' needs answer"),
        ("ask", ["policy", "retrieve", "rerank"], "no stage provides the answer"),
        ("search", ["rerank"], "stage 'rerank' needs hits"),
        ("ask", ["retrieve", "retrieve", "answer"], "named twice"),
    ],
)
def test_a_chain_that_cannot_work_is_refused(kind: str, names: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        build_chain(kind, names)  # type: ignore[arg-type]


class Shout:
    """A plug-in stage: the answer in capitals (stands for a redactor or a guard of a later issue)."""

    name = "shout"
    requires = frozenset({"answer"})
    provides = frozenset({"answer"})
    always = False

    def warm_up(self, tether: Tether) -> None:
        return None

    def __call__(self, state: RequestState, ctx: StageContext) -> None:
        assert state.answer is not None
        state.answer = state.answer.model_copy(update={"text": state.answer.text.upper()})
        ctx.span.set("shouted", True)


def test_a_plug_in_stage_slots_in_by_configuration(tmp_path: Path) -> None:
    register_stage("shout", Shout, replace=True)
    assert "shout" in known_stages()
    with pytest.raises(ConfigError, match="already registered"):
        register_stage("shout", Shout)
    with pytest.raises(ConfigError, match="stage name"):
        register_stage("bad name!", Shout)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "pay.txt").write_text("Salaries are paid on the 25th of each month by bank transfer.\n")
    yaml = default_yaml().replace("  ask: null ", "  ask: [policy, retrieve, answer, shout, audit] ")
    assert "shout" in yaml
    (tmp_path / "tether.yaml").write_text(yaml, encoding="utf-8")
    with Tether.open(tmp_path / "tether.yaml") as t:
        t.ingest([tmp_path / "docs"])
        assert t.pipeline("ask").names == ("policy", "retrieve", "answer", "shout", "audit")
        a = t.ask("When are salaries paid?")
        assert not a.abstained and a.text == a.text.upper() and "25TH" in a.text
        assert a.citations[0].quote == "Salaries are paid on the 25th of each month by bank transfer."


def test_a_bad_chain_in_tether_yaml_fails_the_first_request_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "tether.yaml").write_text(default_yaml().replace("  search: null ", "  search: [rerank] "))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Alpha beta gamma delta.\n")
    with Tether.open(tmp_path / "tether.yaml") as t:
        t.ingest([tmp_path / "docs"])
        with pytest.raises(ConfigError, match="pipeline.search: stage 'rerank' needs hits"):
            t.search("alpha")
