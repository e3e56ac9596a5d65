"""One Tether shared by many threads (what the eval runner does): no errors, and the same results as serial calls.

N threads x M calls of Tether.ask and Tether.search start together over one small real index, and an
EvalRunner runs the same questions with concurrency 4; every result must equal the serial one exactly.
"""

from __future__ import annotations

import random
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tether import Tether
from tether.config import Settings
from tether.evals import EvalCase, EvalRunner, RunOptions
from tether.text._stem import stem

DOCS = {
    "ferry.md": "# Ferry\n\nThe Orinoco ferry leaves the north pier at seven. Tickets are sold at the harbour office.",
    "badges.md": "# Badges\n\nBadge renewals are handled by the security desk on floor two. Lost badges cost ten.",
    "reports.md": "# Reports\n\nQuarterly reports are due on the fifth working day. Late ones need a note.",
    "canteen.md": "# Canteen\n\nThe staff canteen serves lentil soup every Thursday. It opens at half past eleven.",
    "laptops.md": "# Laptops\n\nLaptop repairs take up to four business days. A loan laptop is available meanwhile.",
    "visitors.md": "# Visitors\n\nVisitors must sign the register at reception. They wear a red lanyard at all times.",
    "library.md": "# Library\n\nThe library closes at nine in the evening. Books are lent for three weeks.",
    "parking.md": "# Parking\n\nStaff parking is on level minus two. Electric cars charge in bays one to six.",
}
QUESTIONS = [
    "Where does the Orinoco ferry leave from?",
    "Who handles badge renewals?",
    "When are quarterly reports due?",
    "What does the canteen serve on Thursday?",
    "How long do laptop repairs take?",
    "What must visitors do at reception?",
    "When does the library close?",
    "Where is staff parking?",
    "How long should sourdough bread rise?",
    "Who won the 1998 football world cup?",
]
THREADS = 8
CALLS = 20  # per thread: ask and search alternate over the questions in a shuffled order


def _settings(root: Path) -> Settings:
    return Settings.model_validate({"answer": {"threshold": 0.3}}).with_root(root)


@pytest.fixture
def tiny_switch_interval() -> Any:
    """Switch threads every microsecond (default 5 ms): a race in pure-Python shared state shows up at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.fixture(scope="module")
def index_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stress")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    with Tether(_settings(root)) as t:
        t.ingest([root / "docs"])
    return root


def _answer_key(t: Tether, q: str) -> tuple[Any, ...]:
    a = t.ask(q)
    return (a.text, a.abstained, a.support, tuple((c.path, c.start, c.end, c.quote) for c in a.citations))


def _search_key(t: Tether, q: str) -> tuple[Any, ...]:
    return tuple((h.chunk_id, h.score) for h in t.search(q))


def _serial(root: Path) -> dict[tuple[str, str], tuple[Any, ...]]:
    with Tether(_settings(root)) as t:
        out = {}
        for q in QUESTIONS:
            out[("ask", q)] = _answer_key(t, q)
            out[("search", q)] = _search_key(t, q)
        return out


def test_threads_sharing_one_tether_get_exactly_the_serial_results(index_root: Path, tiny_switch_interval: Any) -> None:
    expected = _serial(index_root)
    stem.cache_clear()  # process-wide: cold, so the threads stem at the same time
    t = Tether(_settings(index_root))  # fresh: its lazily-built parts are first built under contention
    start = threading.Barrier(THREADS)
    got: list[tuple[str, str, tuple[Any, ...]]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        calls = [(("ask", "search")[i % 2], rng.choice(QUESTIONS)) for i in range(CALLS)]
        start.wait()
        for kind, q in calls:
            stem.cache_clear()  # keep the shared caches cold, so threads keep computing at the same time
            try:
                key = _answer_key(t, q) if kind == "ask" else _search_key(t, q)
            except Exception as e:  # any error at all is a failure of the test, reported with its type
                with lock:
                    errors.append(f"{kind} {q!r}: {type(e).__name__}: {e}")
                continue
            with lock:
                got.append((kind, q, key))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    t.close()
    assert not any(th.is_alive() for th in threads), "a worker is stuck"
    assert errors == [], errors[:5]
    assert len(got) == THREADS * CALLS
    wrong = [(kind, q) for kind, q, key in got if key != expected[(kind, q)]]
    assert wrong == [], f"{len(wrong)} of {len(got)} results differ from serial: {wrong[:5]}"


def test_an_eval_run_with_concurrency_4_matches_the_serial_run(index_root: Path, tiny_switch_interval: Any) -> None:
    cases = [
        EvalCase.model_validate({"id": f"q{i}", "input": {"user": q}, "scoring": {"faithfulness": "llm_judge"}})
        for i, q in enumerate(QUESTIONS * 3)
    ]
    reports = {}
    for concurrency in (1, 4):
        stem.cache_clear()
        t = Tether(_settings(index_root))
        runner = EvalRunner(t, options=RunOptions(concurrency=concurrency, use_cache=False, timeout_s=60))
        reports[concurrency] = runner.run(cases, "stress")
        t.close()
    serial, threaded = reports[1], reports[4]
    assert threaded.summary.errors == 0 and threaded.summary.scorer_errors == 0
    assert len(threaded.results) == len(cases)

    def keys(r: Any) -> list[tuple[Any, ...]]:
        return [
            (
                x.case_id,
                x.passed,
                x.turns[0].answer.text,
                x.turns[0].answer.support,
                [s.passed for s in x.turns[0].scores],
            )
            for x in r.results
        ]

    assert keys(threaded) == keys(serial)
