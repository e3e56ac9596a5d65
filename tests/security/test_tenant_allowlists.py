"""Per-tenant source allowlists, as a tenant trying to read another's documents would probe them."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from tether import Tether
from tether.config import default_yaml
from tether.errors import RequestError

TOPICS = ["invoice", "holiday", "salary", "laptop", "parking", "travel", "pension", "training", "badge", "canteen"]
TENANTS = """
tenants:
  acme: {sources: ["acme/*"]}
  globex: {sources: [], tags: [globex]}
  nobody: {}
"""


def _corpus(tmp_path: Path) -> Tether:
    for org in ("acme", "globex", "notacme"):
        d = tmp_path / "docs" / org
        d.mkdir(parents=True)
        for i, topic in enumerate(TOPICS):
            (d / f"{topic}.md").write_text(
                f"# {org} {topic} rules\n\nAt {org}, the {topic} limit is {100 + i * 7} units and requests go to "
                f"the {org} {topic} desk within {i + 2} days.\n",
                encoding="utf-8",
            )
    (tmp_path / "tether.yaml").write_text(default_yaml().replace("\ntenants: {}", TENANTS), encoding="utf-8")
    t = Tether.open(tmp_path / "tether.yaml")
    for org in ("acme", "notacme"):
        t.ingest([tmp_path / "docs" / org])
    t.ingest([tmp_path / "docs" / "globex"], tags=["globex"])
    return t


def _org(path: str) -> str:
    return Path(path).parent.name


def test_random_queries_never_reach_another_tenants_documents(tmp_path: Path) -> None:
    t = _corpus(tmp_path)
    t.store().ann_threshold = 1  # the ANN index is used where it would be: the filter must hold there too
    rng = random.Random(0)
    seen: dict[str, set[str]] = {"acme": set(), "globex": set()}
    for _ in range(150):
        words = rng.sample(TOPICS, 2) + rng.sample(["acme", "globex", "notacme", "limit", "desk", "days"], 2)
        q = " ".join(words)
        for tenant in ("acme", "globex"):
            for mode in ("hybrid", "lexical", "dense"):
                for h in t.search(q, 10, mode=mode, tenant=tenant):  # type: ignore[arg-type]
                    seen[tenant].add(_org(h.path))
    assert seen == {"acme": {"acme"}, "globex": {"globex"}}  # 'notacme/' does not pass for 'acme/*'


def test_answers_cite_only_the_tenants_sources(tmp_path: Path) -> None:
    t = _corpus(tmp_path)
    for topic in TOPICS[:5]:
        q = f"What is the globex {topic} limit?"
        mine = t.ask(q, tenant="globex")
        assert not mine.abstained and all(_org(c.path) == "globex" for c in mine.citations)
        theirs = t.ask(q, tenant="acme")  # asked by name for the other tenant's document
        cited = [*theirs.citations, *([theirs.nearest] if theirs.nearest else [])]
        assert all(_org(c.path) == "acme" for c in cited), [c.path for c in cited]
    empty = t.ask("What is the acme invoice limit?", tenant="nobody")
    assert empty.abstained and not empty.citations and empty.nearest is None


def test_a_request_must_name_a_known_tenant(tmp_path: Path) -> None:
    t = _corpus(tmp_path)
    with pytest.raises(RequestError, match="every request names one"):
        t.ask("What is the acme invoice limit?")
    with pytest.raises(RequestError, match=r"unknown tenant 'Acme' \(tenants: acme, globex, nobody\)"):
        t.search("invoice", tenant="Acme")
    plain = Tether.open(None)
    with pytest.raises(RequestError, match="none are configured"):
        plain.search("invoice", tenant="acme")


def test_the_cli_takes_a_tenant_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    _corpus(tmp_path).close()
    run = [sys.executable, "-m", "tether", "search", "invoice limit", "--json"]
    ok = subprocess.run([*run, "--tenant", "globex"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "/globex/" in ok.stdout and "/acme/" not in ok.stdout
    bad = subprocess.run([*run, "--tenant", "initech"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown tenant 'initech'" in bad.stderr and "Traceback" not in bad.stderr
