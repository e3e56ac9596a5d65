"""The runner: every request records the settings that produced it, and a stage's error reaches the caller."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether._api import Tether
from tether.config import ConfigHistory, default_yaml
from tether.pipeline import RequestState, StageContext, register_stage


def _corpus(root: Path, yaml: str | None = None) -> Tether:
    (root / "docs").mkdir()
    (root / "docs" / "pay.txt").write_text("Salaries are paid on the 25th of each month by bank transfer.\n")
    (root / "tether.yaml").write_text(yaml or default_yaml(), encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    t.ingest([root / "docs"])
    return t


def test_an_answer_s_settings_are_in_the_config_history(tmp_path: Path) -> None:
    with _corpus(tmp_path) as t:
        a = t.ask("When are salaries paid?")
        record = ConfigHistory.for_settings(t.settings).get(a.config_hash)
        assert record.config_hash.startswith(a.config_hash) or a.config_hash.startswith(record.config_hash)
        assert record.settings["retrieval"] == t.settings.model_dump(mode="json")["retrieval"]


class Boom:
    name = "boom"
    requires = frozenset({"hits"})
    provides = frozenset({"hits"})
    always = False

    def warm_up(self, tether: Tether) -> None:
        return None

    def __call__(self, state: RequestState, ctx: StageContext) -> None:
        raise RuntimeError("boom")


def test_a_failing_stage_fails_the_request_and_nothing_is_half_answered(tmp_path: Path) -> None:
    register_stage("boom", Boom, replace=True)
    yaml = default_yaml().replace("  search: null ", "  search: [retrieve, boom] ")
    with _corpus(tmp_path, yaml) as t, pytest.raises(RuntimeError, match="boom"):
        t.search("salaries")
