""":class:`~tether.contracts.SearchFilters` as Milvus filter expressions, with the meaning SQLiteStore gives them.

Both the ``documents`` and the ``chunks`` collection carry ``tenant``, ``path`` and ``mtime`` (a chunk row copies
its document's, which never change for one version of a document), so those filters are native expressions on
either. Tags can change after ingest (:meth:`MilvusStore.add_tags`) and live on the document row alone: on the
documents collection they are ``array_contains_*`` tests, on chunks a list of the ids of the documents that have
them, read from the documents collection first.

A glob becomes ``LIKE`` (``*`` -> ``%``, ``?`` -> ``_``). milvus-lite's LIKE has no escapes, so a literal ``%``,
``_`` or ``\\`` and a ``[...]`` class become ``_`` (any one character): a pattern that matches more than the glob,
never less. Then :attr:`FilterBuilder.check` tests the glob exactly on each hit, and the store asks Milvus for
more hits while that test drops some. Either way the filter is part of the Milvus query, so no top-n cut happens
before it and none can starve a tenant's results.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tether.contracts import SearchFilters
from tether.store._milvus_schema import ints, quote, strings

Target = Literal["documents", "chunks"]

NOTHING = None
"""What :func:`expression` returns for a filter that no document passes (an empty allowlist, no tagged document)."""


def glob_like(glob: str) -> tuple[str, bool]:
    """A LIKE pattern that matches at least what the SQLite GLOB ``glob`` matches, and whether it matches exactly
    that. ``*`` is ``%`` and ``?`` is ``_``; a ``[...]`` class and a literal ``%``, ``_`` or ``\\`` become ``_``
    (any one character), because milvus-lite's LIKE has no escapes: a superset, checked again in Python."""
    out: list[str] = []
    exact = True
    i = 0
    while i < len(glob):
        ch = glob[i]
        close = glob.find("]", i + 2) if ch == "[" else -1
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch == "[" and close != -1:
            out.append("_")
            exact = False
            i = close
        elif ch in "%_\\":
            out.append("_")
            exact = False
        else:
            out.append(ch)
        i += 1
    return "".join(out), exact


def glob_match(path: str, glob: str) -> bool:
    """SQLite's GLOB: case-sensitive, ``*`` crosses ``/``, ``[^...]`` negates (fnmatch writes ``[!...]``)."""
    return fnmatch.fnmatchcase(path, glob.replace("[^", "[!"))


def allow_globs(paths: list[str]) -> list[str]:
    """An allowlist's globs as SQLiteStore applies them: each against the whole path and any trailing part."""
    out: list[str] = []
    for g in paths:
        out.extend([g, "*/" + g.lstrip("/")])
    return out


def _all(parts: list[str | None]) -> str | None:
    if any(p is NOTHING for p in parts):
        return NOTHING
    kept = [p for p in parts if p]
    return " and ".join(f"({p})" for p in kept) if len(kept) > 1 else (kept[0] if kept else "")


def _any(parts: list[str | None]) -> str | None:
    kept = [p for p in parts if p is not NOTHING]
    if not kept:
        return NOTHING
    if any(p == "" for p in kept):
        return ""
    return " or ".join(f"({p})" for p in kept) if len(kept) > 1 else kept[0]


Check = Callable[[int, str, str], bool]
"""Whether the document (id, path, tenant) passes the filter: the Python half of an inexact expression."""


@dataclass
class FilterBuilder:
    """Builds the expression of a filter for one collection.

    ``ids_where(expr)``: ids of the documents whose row passes ``expr`` (a documents-collection expression).
    After :meth:`expression`, :attr:`check` is None when the expression says exactly what the filter means, or
    the test a document found by it must pass too (a glob LIKE could only approximate).
    """

    target: Target
    ids_where: Callable[[str], set[int]]
    check: Check | None = None

    @property
    def _key(self) -> str:
        return "id" if self.target == "documents" else "doc_id"

    def _ids(self, ids: set[int]) -> str | None:
        return f"{self._key} in {ints(ids)}" if ids else NOTHING

    def _globs(self, globs: list[str]) -> tuple[str | None, bool]:
        """A path matching any of ``globs``, and whether the expression is exact."""
        likes = [glob_like(g) for g in globs]
        return _any([f"path like {quote(p)}" for p, _ in likes]), all(exact for _, exact in likes)

    def _tags(self, tags: list[str], mode: Literal["all", "any"], scope: str = "") -> tuple[str | None, set[int]]:
        """Documents with all (any) of ``tags``, and on chunks the ids of those documents."""
        test = f"array_contains_{mode}(tags, {strings(tags)})"
        if self.target == "documents":
            return test, set()
        ids = self.ids_where(f"{scope} and {test}" if scope else test)
        return self._ids(ids), ids

    def expression(self, filters: SearchFilters | None, *, has_owned: bool) -> str | None:
        """The Milvus expression for ``filters`` ("" = no condition, :data:`NOTHING` = no document passes).

        Without an allowlist a tenant's own documents never pass (as in SQLiteStore)."""
        self.check = None
        parts: list[str | None] = []
        if (filters is None or filters.allow is None) and has_owned:
            parts.append('tenant == ""')
        if filters is None:
            return _all(parts)
        checks: list[Check] = []
        if filters.path_glob:
            expr, exact = self._globs([filters.path_glob])
            parts.append(expr)
            glob = filters.path_glob
            if not exact:
                checks.append(lambda _d, path, _t: glob_match(path, glob))
        if filters.tags:
            parts.append(self._tags(list(filters.tags), "all")[0])
        if filters.modified_after is not None:
            parts.append(f"mtime >= {filters.modified_after.timestamp()!r}")
        if filters.modified_before is not None:
            parts.append(f"mtime <= {filters.modified_before.timestamp()!r}")
        if filters.allow is not None:
            expr, check = self._allow(filters)
            parts.append(expr)
            if check is not None:
                checks.append(check)
        if checks:
            self.check = lambda d, path, tenant: all(c(d, path, tenant) for c in checks)
        return _all(parts)

    def _allow(self, filters: SearchFilters) -> tuple[str | None, Check | None]:
        """The tenant's own documents, and of the shared corpus what its allowlist names; never another's."""
        allow = filters.allow
        assert allow is not None
        own = f"tenant == {quote(allow.owner)}" if allow.owner else NOTHING
        globs = allow_globs(allow.paths)
        by_path, exact = self._globs(globs) if globs else (NOTHING, True)
        by_tag, tagged = self._tags(list(allow.tags), "any", 'tenant == ""') if allow.tags else (NOTHING, set())
        shared = _all(['tenant == ""', _any([by_path, by_tag])])
        if exact:
            return _any([own, shared]), None
        if self.target == "documents" and allow.tags:
            tagged = self.ids_where(f'tenant == "" and array_contains_any(tags, {strings(list(allow.tags))})')

        def check(doc_id: int, path: str, tenant: str) -> bool:
            return tenant != "" or doc_id in tagged or any(glob_match(path, g) for g in globs)

        return _any([own, shared]), check
