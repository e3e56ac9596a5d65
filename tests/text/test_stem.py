"""The stemmer is used from the eval runner's thread pool: stems from many threads at once must be right."""

from __future__ import annotations

import pydoc_data.topics
import re
import threading

from tether.text._stem import stem


def _words() -> list[str]:
    text = " ".join(pydoc_data.topics.topics.values()).lower()
    return sorted(set(re.findall(r"[a-z]{3,}", text)))


def test_stems_from_eight_threads_at_once_equal_the_serial_stems() -> None:
    words = _words()
    assert len(words) > 3000
    raw = stem.__wrapped__  # past the cache: every call stems
    expected = [raw(w) for w in words]
    errors: list[BaseException] = []
    results: dict[int, list[str]] = {}
    start = threading.Barrier(8)

    def work(i: int) -> None:
        start.wait()
        try:
            mine = words[i::2] if i % 2 else words  # threads stem the same words and different ones
            results[i] = [raw(w) for w in mine]
        except BaseException as e:  # an IndexError from a shared stemmer, before the fix
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i, got in results.items():
        assert got == (expected[i::2] if i % 2 else expected)
    assert stem("running") == "run" and stem("policies") == "polici"
