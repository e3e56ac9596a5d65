"""Readable `--help`: type hints as the words people expect, not Python annotations.

Typer 0.29 prints a parameter's annotation as its type hint (`<list[Path]>`, `<bool>`, `{paths}...`). Tether
shows click's familiar form instead: `PATH...`, `INTEGER`, flags with no hint, an option's own ``metavar`` where
one is set. Applied once, when the CLI is imported; the help tests check the result.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, get_args, get_origin

from typer import core

_WORDS: dict[Any, str] = {int: "INTEGER", float: "NUMBER", str: "TEXT", Path: "PATH", datetime: "DATE", bool: ""}


def _word(annotation: Any) -> str:
    if get_origin(annotation) is list:
        inner = _word(get_args(annotation)[0])
        return f"{inner}..." if inner else ""
    return _WORDS.get(annotation, getattr(annotation, "__name__", "VALUE").upper())


def _option_hint(self: Any, ctx: Any) -> str | None:
    if self.metavar is not None:
        return str(self.metavar)
    if getattr(self, "is_flag", False):
        return None
    try:
        annotation = self.type_descriptor.annotation
        if get_origin(annotation) is list:  # a repeatable option: one value each time
            annotation = get_args(annotation)[0]
        return _word(annotation) or None
    except Exception:  # an annotation this table does not know: click's own name for the type
        return str(self.type.name).upper()


def _argument_hint(self: Any, ctx: Any) -> str | None:
    return None  # the argument's name already says what it is


def _argument_usage(self: Any) -> str:
    name = str(self.metavar or self.name).upper()
    if self.nargs != 1:
        name += "..."
    return name if self.required else f"[{name}]"


def install() -> None:
    """Patch typer's hint methods (no-op where this typer has none of them)."""
    if hasattr(core.TyperOption, "display_type_rich"):
        core.TyperOption.display_type_rich = _option_hint  # type: ignore[method-assign]
    if hasattr(core.TyperArgument, "display_type_rich"):
        core.TyperArgument.display_type_rich = _argument_hint  # type: ignore[method-assign]
    if hasattr(core.TyperArgument, "_usage_display_name"):
        core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
