"""PII and secrets found by patterns with validators, and redacted: what traces and the audit log never keep.

A pattern engine, not a language model: e-mail addresses, card numbers (Luhn-checked), IBANs (mod-97-checked),
US social security numbers (invalid areas and groups excluded), phone numbers written as phone numbers, IP
addresses, and secrets (cloud and code-host tokens, private key blocks, JWTs, ``password=...`` assignments).
Names and places need a model: ``tether.safety.PresidioRedactor`` (the ``pii`` extra) plugs in behind the same
protocol. Precision and recall per entity type on presidio-research's synthetic set, beside Presidio's own
defaults: ``bench/pii.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tether.contracts import ParsedDocument


@dataclass(frozen=True)
class PiiSpan:
    """``text[start:end]`` is an entity of ``kind`` (e.g. ``EMAIL_ADDRESS``)."""

    kind: str
    start: int
    end: int


class Redactor(Protocol):
    """Finds PII in text and replaces it with ``<KIND>`` placeholders."""

    def find(self, text: str) -> list[PiiSpan]: ...

    def redact(self, text: str) -> str: ...


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(m: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", m.group())
    return 12 <= len(digits) <= 19 and _luhn(digits) and len(set(digits)) > 1


# IBAN length by country (the registry's public facts): a 32-character hex id that passes mod-97 by chance is not
# an IBAN, because no country starting with a hex-letter pair has IBANs of its length.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


def _iban(m: re.Match[str]) -> bool:
    s = re.sub(r"\s", "", m.group()).upper()
    if _IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    moved = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _ssn(m: re.Match[str]) -> bool:
    area, group, serial = re.split(r"[-. ]", m.group())
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _ipv4(m: re.Match[str]) -> bool:
    return all(int(part) <= 255 for part in m.group().split("."))


_DATE_LIKE = re.compile(r"^(\d{4}[-./ ]\d{1,2}[-./ ]\d{1,2}|\d{1,2}[-./ ]\d{1,2}[-./ ]\d{2,4})(\D|$)")


def _phone(m: re.Match[str]) -> bool:
    """7-15 digits, not a date; two groups only when joined by a hyphen or led by a country or area code
    ("555-0199", "+46 8"), since "370 3911" is as often a house number and a postcode."""
    text = re.sub(r"\s?x\d+$", "", m.group())
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(text):
        return False
    if re.fullmatch(r"\d{3}([-. ])\d{2}\1\d{4}", text):  # SSN-shaped: the SSN check decides
        return False
    groups = re.findall(r"\d+", text)
    return len(groups) >= 3 or "-" in text or text.startswith(("+", "("))


_Check = Callable[[re.Match[str]], bool]
_PATTERNS: list[tuple[str, re.Pattern[str], _Check | None]] = [
    (
        "PRIVATE_KEY",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
        None,
    ),
    ("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), None),
    (
        "API_KEY",
        re.compile(
            r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,}"
            r"|sk_(?:live|test)_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{35}|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20})"
        ),
        None,
    ),
    (
        "SECRET",
        re.compile(
            r"(?i)(?<![a-z0-9])(?:api[_-]?key|secret(?:[_-]?access)?(?:[_-]?key)?|access[_-]?token|auth[_-]?token|token"
            r"|password|passwd|pwd)"
            r"\s*[:=]\s*[\"']?[^\s\"',;]{6,}"
        ),
        None,
    ),
    ("EMAIL_ADDRESS", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), None),
    ("IBAN_CODE", re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b"), _iban),
    (  # plain digits, groups of four, or the 4-6-4/5 of Amex and Diners; never inside a longer token
        "CREDIT_CARD",
        re.compile(
            r"(?<![\w-])(?:\d{12,19}|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{4,5})(?![\w-])"
        ),
        _card,
    ),
    ("US_SSN", re.compile(r"(?<![\w-])\d{3}([-. ])\d{2}\1\d{4}(?![\w-])"), _ssn),
    ("IP_ADDRESS", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), _ipv4),
    (
        "IP_ADDRESS",
        re.compile(r"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b|\b(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}\b"),
        None,
    ),
    (
        "PHONE_NUMBER",
        re.compile(
            r"(?<![\w+.,-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{1,5}){1,5}"
            r"(?:\s?x\d{1,5})?(?![\w,]|\.\d)"
            r"|(?<![\w+])\+\d{9,14}(?!\w)"
        ),
        _phone,
    ),
]
KINDS: tuple[str, ...] = tuple(dict.fromkeys(kind for kind, _, _ in _PATTERNS))
_NEEDS: list[tuple[str, ...] | None] = [  # what a text must contain for each pattern to match (None: a digit)
    ("-----BEGIN",),
    ("eyJ",),
    ("AKIA", "gh", "github_pat_", "xox", "sk_", "AIza", "sk-", "glpat-"),
    (":", "="),
    ("@",),
    None,
    None,
    None,
    None,
    (":",),
    None,
]


class PatternRedactor:
    """The built-in redactor: :data:`KINDS` found by pattern and checked, earlier (more specific) patterns first;
    a later match that overlaps an earlier one is dropped."""

    name = "patterns"

    def find(self, text: str) -> list[PiiSpan]:
        spans: list[PiiSpan] = []
        taken: list[tuple[int, int]] = []  # found spans, and IBAN- or SSN-shaped text that failed its check
        digits = any(c.isdigit() for c in text)
        for (kind, pattern, check), needs in zip(_PATTERNS, _NEEDS, strict=True):
            if needs is None and not digits or needs is not None and not any(n in text for n in needs):
                continue  # cannot match: skip the scan
            for m in pattern.finditer(text):
                if any(m.start() < b and a < m.end() for a, b in taken):
                    continue
                if check is not None and not check(m):
                    if kind in ("IBAN_CODE", "US_SSN"):  # its digits are not a card or a phone number either
                        taken.append((m.start(), m.end()))
                    continue
                spans.append(PiiSpan(kind, m.start(), m.end()))
                taken.append((m.start(), m.end()))
        return sorted(spans, key=lambda s: s.start)

    def redact(self, text: str) -> str:
        return replace(text, self.find(text))


def replace(text: str, spans: list[PiiSpan]) -> str:
    """``text`` with each span replaced by ``<KIND>`` (spans sorted, not overlapping)."""
    out, at = [], 0
    for s in spans:
        out.append(text[at : s.start])
        out.append(f"<{s.kind}>")
        at = s.end
    out.append(text[at:])
    return "".join(out)


_DEFAULT = PatternRedactor()


def redact_text(text: str) -> str:
    """``text`` with the built-in redactor applied."""
    if len(text) < 7:  # shorter than any entity it finds
        return text
    return _DEFAULT.redact(text)


IDENTIFIER_KEYS = frozenset(
    {"event", "run_id", "plan_hash", "step_hash", "args_hash", "config_hash", "idempotency_key", "trace_id", "span_id"}
)
"""Keys whose values are Tether's own identifiers: never PII, and must stay exact (the orchestrator finds its audit
entries by ``event`` after a crash; a random hex id once passed the IBAN check and was redacted)."""


def redact_json(value: Any) -> Any:
    """A JSON-like value with every string redacted (dict keys kept; :data:`IDENTIFIER_KEYS` values kept)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: v if k in IDENTIFIER_KEYS and isinstance(v, str) else redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value


def redact_parsed(parsed: ParsedDocument, redactor: Redactor | None = None) -> tuple[ParsedDocument, list[PiiSpan]]:
    """A parsed document with its PII replaced by ``<KIND>`` (``ingest.redact_pii``), and the spans replaced.

    Block offsets move with the text, so chunks and citations point into the redacted text exactly as they
    would into the original; titles and headings are redacted too. The original values are not returned.
    """
    r = redactor or _DEFAULT
    spans = r.find(parsed.text)
    title = r.redact(parsed.title)
    if not spans and title == parsed.title:
        return parsed, []
    deltas = [(s, len(f"<{s.kind}>") - (s.end - s.start)) for s in spans]

    def move(pos: int, *, end: bool) -> int:
        shift = 0
        for s, d in deltas:
            if s.end <= pos:
                shift += d
            elif s.start < pos:  # inside a replaced span: to its placeholder's start (or end)
                return s.start + shift + (len(f"<{s.kind}>") if end else 0)
            else:
                break
        return pos + shift

    blocks = [
        b.model_copy(
            update={
                "start": move(b.start, end=False),
                "end": move(b.end, end=True),
                "section": [r.redact(x) for x in b.section],
            }
        )
        for b in parsed.blocks
    ]
    return ParsedDocument(text=replace(parsed.text, spans), title=title, blocks=blocks), spans
