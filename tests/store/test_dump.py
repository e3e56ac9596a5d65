"""`tether store export` / `import`: a dump moves an index between SQLite and Milvus with the same documents, texts,
vectors and owners, so search gives the same results after the round trip; a damaged dump is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tether import Tether
from tether.config import default_yaml
from tether.errors import DataError

DOCS = {
    "travel.md": "# Travel\n\nThe daily meal allowance is 35 euros in Porto and 40 euros in Lisbon.\n\n"
    "## Booking\n\nTrain tickets are booked through the travel desk at least five days ahead.\n",
    "leave.md": "# Leave\n\nEmployees receive 25 days of annual leave per calendar year.\n\n"
    "Unused leave of up to five days may be carried into the next year.\n",
    "it.md": "# IT\n\nLaptops are replaced every four years.\n\n| item | owner |\n|---|---|\n| laptop | IT desk |\n",
    "long.md": "# Long\n\n"
    + "\n\n".join(f"Paragraph {i} says something about rule {i} of the handbook." for i in range(60)),
}
QUERIES = ["meal allowance Porto", "annual leave days", "who owns the laptop", "rule 42"]


def _project(root: Path, backend: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    yaml = default_yaml().replace("  backend: sqlite ", f"  backend: {backend} ", 1)
    yaml = yaml.replace("\ntenants: {}", "\ntenants:\n  acme: {sources: ['*']}\n")
    (root / "tether.yaml").write_text(yaml, encoding="utf-8")
    return root / "tether.yaml"


def _tether(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _results(t: Tether) -> list[list[tuple[str, int, int]]]:
    return [[(h.path, h.start, h.end) for h in t.search(q, mode="dense", tenant="acme")] for q in QUERIES]


def _texts(t: Tether) -> dict[str, str]:
    s = t.store()
    return {d.path: s.document_text(d.doc_id) for d in s.documents(every_owner=True)}


def test_a_round_trip_through_milvus_keeps_documents_vectors_and_results(tmp_path: Path) -> None:
    pytest.importorskip("milvus_lite", reason="the Milvus leg needs the milvus extra")
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    src = Tether.open(_project(tmp_path / "a", "sqlite"))
    src.ingest([docs])
    owned = tmp_path / "acme.md"
    owned.write_text("# Bonus\n\nThe acme bonus pool is 7 percent.\n", encoding="utf-8")
    src.ingest([owned], tenant="acme")
    before, texts = _results(src), _texts(src)
    src.close()
    made = _tether("store", "export", str(tmp_path / "dump"), "--json", cwd=tmp_path / "a")
    assert made.returncode == 0, made.stderr
    manifest = json.loads(made.stdout)
    assert manifest["documents"] == len(DOCS) + 1 and manifest["chunks"] > len(DOCS)
    _project(tmp_path / "m", "milvus")
    got = _tether("store", "import", str(tmp_path / "dump"), "--json", cwd=tmp_path / "m")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["chunks"] == manifest["chunks"]
    mv = Tether.open(tmp_path / "m" / "tether.yaml")
    assert _texts(mv) == texts and _results(mv) == before  # dense search is exact on both: the same order
    assert [d.tenant for d in mv.store().documents(every_owner=True) if d.path.endswith("acme.md")] == ["acme"]
    mv.close()
    back = _tether("store", "export", str(tmp_path / "dump2"), cwd=tmp_path / "m")
    assert back.returncode == 0, back.stderr
    _project(tmp_path / "b", "sqlite")
    assert _tether("store", "import", str(tmp_path / "dump2"), cwd=tmp_path / "b").returncode == 0
    again = Tether.open(tmp_path / "b" / "tether.yaml")
    assert _texts(again) == texts and _results(again) == before
    first = Tether.open(tmp_path / "a" / "tether.yaml")
    hybrid = [[(h.path, h.start) for h in first.search(q, tenant="acme")] for q in QUERIES]
    assert [[(h.path, h.start) for h in again.search(q, tenant="acme")] for q in QUERIES] == hybrid


def test_a_damaged_dump_or_a_used_folder_is_refused(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text(DOCS["leave.md"], encoding="utf-8")
    src = Tether.open(_project(tmp_path / "a", "sqlite"))
    src.ingest([docs])
    src.close()
    assert _tether("store", "export", str(tmp_path / "dump"), cwd=tmp_path / "a").returncode == 0
    again = _tether("store", "export", str(tmp_path / "dump"), cwd=tmp_path / "a")
    assert again.returncode != 0 and "not empty" in again.stderr and "Traceback" not in again.stderr
    vec = tmp_path / "dump" / "vectors.f32"
    vec.write_bytes(vec.read_bytes()[:-8])  # cut short
    _project(tmp_path / "b", "sqlite")
    cut = _tether("store", "import", str(tmp_path / "dump"), cwd=tmp_path / "b")
    assert cut.returncode != 0 and "truncated" in cut.stderr and "Traceback" not in cut.stderr
    from tether.store._dump import read_manifest

    with pytest.raises(DataError, match="no manifest.json"):
        read_manifest(tmp_path)
