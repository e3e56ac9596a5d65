"""The quickstart's main job: a real corpus that every Python install carries, ingested and asked.

The corpus is CPython's reference-manual topics (``pydoc_data.topics``, what ``help("for")`` shows),
written out as text files at run time; no third-party text is shipped with Tether.
"""

from __future__ import annotations

from pathlib import Path

DEMO_QUESTIONS = [
    "When is the else clause of a try statement executed?",
    "What does the assert statement do when optimization is requested?",
    "What does the import statement do?",
    "What happens to the loop variable when a for loop is terminated by break?",
    "How do I bake sourdough bread?",  # not in the documents: Tether must say so
]
"""Natural questions. With the threshold calibrated on SQuAD 2.0 (see README) Tether is cautious: it may
decline an answerable one too, and shows its support score and the closest passage when it does."""


def export_python_topics(folder: Path) -> int:
    """Write each reference-manual topic to ``folder/<topic>.txt`` (unchanged files are left alone)."""
    import pydoc_data.topics as topics

    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, text in sorted(topics.topics.items()):
        path = folder / f"{name}.txt"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        n += 1
    return n
