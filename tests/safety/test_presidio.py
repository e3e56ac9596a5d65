"""Presidio behind the Redactor protocol (the pii extra): names by NER, the patterns' secrets kept, offline."""

from __future__ import annotations

import sys

import pytest

from tether.errors import ConfigError
from tether.safety import _presidio

pytest.importorskip("presidio_analyzer", reason="the pii extra (tether[pii]) is not installed")


def test_names_and_places_are_found_beside_the_pattern_entities() -> None:
    r = _presidio.presidio_redactor()
    text = (
        "Maria Gonzalez moved to Lisbon. Her card is 4111 1111 1111 1111 and the deploy key is "
        "AKIAIOSFODNN7EXAMPLE; write to maria.gonzalez@example.com."
    )
    kinds = {s.kind for s in r.find(text)}
    assert {"PERSON", "LOCATION", "CREDIT_CARD", "API_KEY", "EMAIL_ADDRESS"} <= kinds
    red = r.redact(text)
    assert "Maria Gonzalez" not in red and "AKIAIOSFODNN7EXAMPLE" not in red and "<PERSON>" in red


def test_overlaps_keep_the_checked_pattern_span() -> None:
    r = _presidio.presidio_redactor()
    spans = r.find("Transfer to DE89 3704 0044 0532 0130 00 today.")
    assert [s.kind for s in spans] == ["IBAN_CODE"]


def test_a_missing_extra_is_a_config_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_presidio, "_ANALYZER", None)
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'tether\[pii\]'"):
        _presidio.presidio_redactor()
