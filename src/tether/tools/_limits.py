"""Limits on raw tool arguments, checked before the schema: sizes, characters, finite numbers, int range.

These hold for every value, however deep, so a field typed ``dict[str, Any]`` is bounded too.
"""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any

from pydantic import BaseModel, Field

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}


class ArgLimits(BaseModel):
    """Bounds on a tool's raw arguments (per tool: ``@tool(limits=ArgLimits(max_str_chars=...))``)."""

    max_str_chars: int = Field(10_000, ge=1, description="longest string, in characters")
    max_total_bytes: int = Field(1_000_000, ge=1, description="all arguments as JSON, in bytes")
    max_items: int = Field(10_000, ge=1, description="longest list or object")
    max_depth: int = Field(16, ge=1, description="deepest nesting of lists and objects")


def _char_problem(s: str) -> str | None:
    for i, ch in enumerate(s):
        cp = ord(ch)
        if cp == 0:
            return f"contains a NUL character at position {i}"
        if cp in _BIDI:
            return f"contains a bidirectional control character U+{cp:04X} at position {i}"
        if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) in ("Cc", "Cs"):
            return f"contains a control character U+{cp:04X} at position {i}"
    return None


def limit_problems(raw: Any, limits: ArgLimits) -> list[dict[str, Any]]:
    """Every way ``raw`` breaks the limits, as ``{field, problem, got}`` feedback (empty when it is fine)."""
    problems: list[dict[str, Any]] = []

    def bad(path: list[str], problem: str, got: Any) -> None:
        problems.append({"field": ".".join(path) or "(value)", "problem": problem, "got": safe_got(got)})

    def walk(v: Any, path: list[str], depth: int) -> None:
        if len(problems) >= 20:
            return
        if depth > limits.max_depth:
            bad(path, f"nested deeper than {limits.max_depth} levels", "...")
            return
        if isinstance(v, bool) or v is None:
            return
        if isinstance(v, int):
            if not INT_MIN <= v <= INT_MAX:
                bad(path, "integer out of range (must fit in 64 bits, -2**63 to 2**63-1)", v)
        elif isinstance(v, float):
            if not math.isfinite(v):
                bad(path, "number must be finite (not inf or NaN)", v)
        elif isinstance(v, str):
            if len(v) > limits.max_str_chars:
                bad(path, f"string longer than {limits.max_str_chars} characters ({len(v)})", v)
            else:
                p = _char_problem(v)
                if p:
                    bad(path, f"string {p}", v)
        elif isinstance(v, dict):
            if len(v) > limits.max_items:
                bad(path, f"more than {limits.max_items} keys ({len(v)})", "...")
                return
            for k, item in v.items():
                if not isinstance(k, str):
                    bad(path, f"object keys must be text, not {type(k).__name__}", k)
                    continue
                kp = _char_problem(k) if len(k) <= 256 else "is longer than 256 characters"
                if kp:
                    bad([*path, k[:40]], f"key {kp}", k)
                    continue
                walk(item, [*path, k], depth + 1)
        elif isinstance(v, list | tuple):
            if len(v) > limits.max_items:
                bad(path, f"more than {limits.max_items} items ({len(v)})", "...")
                return
            for i, item in enumerate(v):
                walk(item, [*path, str(i)], depth + 1)
        else:
            bad(path, f"{type(v).__name__} is not JSON data", v)

    walk(raw, [], 0)
    if not problems:
        try:
            size = len(json.dumps(raw, allow_nan=False, ensure_ascii=False).encode())
        except (TypeError, ValueError) as e:
            return [{"field": "(value)", "problem": f"not JSON data ({e})", "got": None}]
        if size > limits.max_total_bytes:
            problems.append(
                {
                    "field": "(value)",
                    "problem": f"arguments are {size} bytes, over {limits.max_total_bytes}",
                    "got": None,
                }
            )
    return problems


def safe_got(v: Any) -> Any:
    """A short, JSON-safe stand-in for an offending value (for feedback and the audit log)."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return v if INT_MIN <= v <= INT_MAX else f"{str(v)[:30]}... ({v.bit_length()} bits)"
    if isinstance(v, float):
        return v if math.isfinite(v) else repr(v)
    if isinstance(v, str):
        clipped = v if len(v) <= 80 else v[:80] + f"... ({len(v)} characters)"
        return clipped.encode("unicode_escape").decode("ascii") if _char_problem(clipped) else clipped
    text = repr(v)
    return text if len(text) <= 80 else text[:80] + "..."


def non_finite_path(v: Any, path: str = "") -> str | None:
    """Where a non-finite float hides in JSON-like data (None when there is none)."""
    if isinstance(v, float) and not math.isfinite(v):
        return path or "(value)"
    if isinstance(v, dict):
        for k, item in v.items():
            found = non_finite_path(item, f"{path}.{k}" if path else str(k))
            if found:
                return found
    if isinstance(v, list | tuple):
        for i, item in enumerate(v):
            found = non_finite_path(item, f"{path}.{i}" if path else str(i))
            if found:
                return found
    return None
