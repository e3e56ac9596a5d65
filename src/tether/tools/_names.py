"""Names that decide things (tools, roles, approvers, effects) are compared in one canonical form.

A name is canonical when Unicode NFKC leaves it unchanged, it has no invisible, control or space
characters, and it is compared with its exact case. Tool names are stricter still: ASCII letters,
digits, ``_``, ``.`` and ``-`` only, so a Cyrillic "е" or a zero-width space cannot pose as another tool.
"""

from __future__ import annotations

import re
import unicodedata

TOOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}


def name_problem(name: object, what: str = "name") -> str | None:
    """Why ``name`` is not canonical (None when it is)."""
    if not isinstance(name, str):
        return f"the {what} must be text, not {type(name).__name__}"
    if not name:
        return f"the {what} is empty"
    if len(name) > 128:
        return f"the {what} is longer than 128 characters"
    for ch in name:
        if unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
            return f"the {what} {name!r} contains an invisible, space or control character (U+{ord(ch):04X})"
    if unicodedata.normalize("NFKC", name) != name:
        return f"the {what} {name!r} is not in Unicode NFKC form (write it as {unicodedata.normalize('NFKC', name)!r})"
    return None


def tool_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a tool name (None when it can)."""
    problem = name_problem(name, "tool name")
    if problem is not None:
        return problem
    assert isinstance(name, str)
    if not TOOL_NAME.fullmatch(name):
        return (
            f"the tool name {name!r} must be ASCII letters, digits, '_', '.' or '-' (starting with a letter, "
            "at most 64 characters), so that no look-alike character can pose as another tool"
        )
    return None


def same_person(a: str, b: str) -> bool:
    """Whether two identities name the same person for separation of duties (case and width folded)."""
    return unicodedata.normalize("NFKC", a).casefold().strip() == unicodedata.normalize("NFKC", b).casefold().strip()
