"""Span attribute values: what OpenTelemetry takes as it is, and the bounded JSON text everything else becomes.

Every text is redacted first (``tether.safety.redact_text``: e-mail addresses, card numbers, IBANs, SSNs, phone
numbers, IP addresses, API keys and other secrets become ``<KIND>``): traces hold questions and evidence, and PII
must not outlive the request there."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, TypeAlias

from tether.safety._pii import redact_text

AttrValue: TypeAlias = str | bool | int | float | list[str] | list[float] | list[int]
"""A value OpenTelemetry stores as it is. Any other value given to ``set`` is JSON-encoded (see :func:`bounded`)."""

DEFAULT_MAX_CHARS = 8192
MAX_LIST_ITEMS = 256
"""A longer list is stored as (bounded) JSON text rather than as an OpenTelemetry array."""

OtelValue: TypeAlias = (
    str | bool | int | float | tuple[str, ...] | tuple[bool, ...] | tuple[int, ...] | tuple[float, ...]
)


def cut(text: str, max_chars: int) -> str:
    """``text`` itself when it fits in ``max_chars``, else its start and a marker that says how much was cut."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}…[{len(text) - max_chars} more chars cut]"


def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # a pydantic model
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, PurePath):
        return str(value)
    return repr(value)


def to_json(value: object, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """``value`` as compact JSON text (models, dataclasses, numpy numbers and paths included), bounded by
    ``max_chars`` (a cut text ends in a marker and is no longer valid JSON)."""
    try:
        text = json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):  # a cycle, or a value whose encoding fails
        text = repr(value)
    return cut(redact_text(text), max_chars)


def _scalar(value: object) -> str | bool | int | float | None:
    if isinstance(value, str | bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def bounded(value: object, max_chars: int = DEFAULT_MAX_CHARS) -> OtelValue | None:
    """The form of ``value`` a span stores, never longer than about ``max_chars`` characters.

    - ``str``, ``bool``, ``int``, ``float`` (numpy numbers too): as they are; a string longer than ``max_chars`` is
      cut and ends in ``…[N more chars cut]``.
    - a list or tuple of strings, of bools, or of numbers (up to 256 items, ``max_chars`` of JSON in all): an
      OpenTelemetry array.
    - anything else (dicts, pydantic models, mixed or long lists): compact JSON text, cut at ``max_chars``.
    - ``None``: nothing is stored (returns None).
    """
    if value is None:
        return None
    scalar = _scalar(value)
    if scalar is not None:
        if isinstance(scalar, str):
            return cut(redact_text(scalar), max_chars)
        if isinstance(scalar, float) and not math.isfinite(scalar):
            return repr(scalar)  # JSON and some collectors have no NaN or infinity
        return scalar
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray | memoryview | Mapping):
        array = _array(value, max_chars)
        if array is not None:
            return array
    return to_json(value, max_chars)


def _array(value: Sequence[object], max_chars: int) -> OtelValue | None:
    if not value or len(value) > MAX_LIST_ITEMS:
        return None
    items = [_scalar(v) for v in value]
    kinds = {type(i) for i in items}
    if kinds == {int, float}:
        items = [float(i) for i in items if i is not None]
        kinds = {float}
    if len(kinds) != 1 or kinds == {type(None)}:
        return None
    if kinds == {float} and not all(math.isfinite(i) for i in items if isinstance(i, float)):
        return None
    if kinds == {str}:
        items = [redact_text(i) for i in items if isinstance(i, str)]
    if sum(len(str(i)) + 3 for i in items) > max_chars:
        return None
    return tuple(items)  # type: ignore[return-value]  # one kind, checked above
