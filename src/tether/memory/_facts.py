"""Facts a user states about themselves ("I work in the Porto office"), kept per tenant and user in SQLite.

``extract_facts`` is rule-based and leans to precision: only first-person statements with a known shape
("I'm ...", "I work/manage/prefer ...", "my X is ...") are kept; questions, requests ("I'd like to know"),
opinions ("I think ...") and statements about the world are not. ``FactStore`` keeps each fact with its
embedding (float32 bytes) and recalls a user's facts by cosine similarity; no query can reach another tenant's
or another user's facts.
"""

from __future__ import annotations

import builtins
import re
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from tether._sqlite import enable_wal, immediate
from tether.memory._lexicon import word_set
from tether.text import split_sentences

MAX_FACT_CHARS = 300

_DISCOURSE_RE = re.compile(
    r"^(?:(?:also|and|btw|by the way|fyi|for context|for the record|just so you know|just to be clear|"
    r"to be clear|note|actually|well|so|ok|okay|oh|hi|hello|hey|anyway|for reference|context|background)"
    r"\b[\s,:;.!-]*)+",
    re.IGNORECASE,
)
_SPLIT_RE = re.compile(r"(?<=[.!?;])\s+(?=(?:i|i'm|my)\b)", re.IGNORECASE)
_ADVERBS = (
    r"(?:(?:also|currently|usually|mostly|mainly|normally|only|just|still|now|recently|already|always|"
    r"never|often|sometimes|really|actually|generally|typically|primarily|personally) )*"
)
_NEGATION = r"(?:(?:do not|don't|did not|didn't|no longer|never) )?"
_I_VERB_RE = re.compile(r"^i " + _ADVERBS + _NEGATION + r"([a-z']+)\b(.*)$")
_I_AM_RE = re.compile(r"^i(?:'m| am) " + _ADVERBS + r"(.+)$")
_I_MODAL_RE = re.compile(r"^i(?:'d| would|'ll| will) " + _ADVERBS + r"([a-z]+)\b(.*)$")
_MY_RE = re.compile(
    r"^my (?:[\w-]+ ){0,3}?([\w-]+) (?:is|are|was|were|has|have|had|will|can|does|do|doesn't|don't|did|"
    r"starts|ends|expires|uses|covers|lives|works|sits|runs|reports|belongs|needs|wants|prefers|[a-z]+ed)\b"
)
_FACT_VERBS = word_set(
    """
    work works worked manage managed lead led run own prefer like love need use live report joined started
    moved belong handle travel speak teach study support maintain have hold got get commute coordinate
    oversee look want plan intend cover earn receive drive take sit relocated transferred telework
    freelance volunteer stay visit was am been started left retire joined graduated moved switched head
    supervise prepare
    """
)
# What may not follow "I'm": feelings, hedges and requests, not facts.
_NOT_AFTER_AM = re.compile(
    r"^(?:not sure|sorry|confused|wondering|asking|curious|interested in (?:knowing|finding|learning)|"
    r"trying to|looking for|searching for|after some|in need of|"
    r"afraid|glad|happy|fine|good|great|ok|okay|well|back|here|done|thinking|unsure|"
    r"hoping|going to ask|writing|reaching out|just asking|so |really|still wondering|not certain|"
    r"told|assuming|guessing|kidding|joking|serious|correct|right|wrong|lost|stuck|frustrated|annoyed|"
    r"thankful|grateful|pleased|excited|worried|concerned|aware|certain|positive)\b"
)
_REQUEST_RE = re.compile(
    r"\b(?:to know|to ask|to understand|to learn|to find out|to check|to see|to clarify|to confirm|"
    r"a question|questions|no idea|any idea|an idea|help with|some help|your help|"
    r"information (?:about|on|regarding)|info (?:about|on)|"
    r"an answer|the answer)\b"
)
_MY_NOT_FACT = word_set(
    "question questions problem guess understanding bad apologies apology pleasure point concern answer request "
    "query goal issue idea thought opinion impression worry doubt"
)
_UNSAFE_RE = re.compile(
    r"\b(?:ignore|disregard|forget)\b.{0,40}\b(?:instructions?|rules|prompt|above)\b|\bsystem prompt\b|"
    r"\bjailbreak\b|\byou (?:are|must|should|will)\b",
    re.IGNORECASE,
)
_SECOND_PERSON_RE = re.compile(r"\b(?:you|your|yours)\b", re.IGNORECASE)


def extract_facts(text: str) -> list[str]:
    """First-person statements a user makes about themselves or their task, one per sentence, in their own
    wording (leading "By the way," and the final full stop dropped). Precision over recall.

    Raises:
        TypeError: ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    out: list[str] = []
    for sentence in _sentences(text):
        fact = _DISCOURSE_RE.sub("", sentence).strip().rstrip(".!;:…, ").strip()
        if fact and fact not in out and _is_fact(fact):
            out.append(fact)
    return out


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for line in text.replace("\r", "\n").split("\n"):
        for a, b in split_sentences(line):
            out.extend(p.strip() for p in _SPLIT_RE.split(line[a:b]) if p.strip())
    return out


def _is_fact(sentence: str) -> bool:
    if not 6 <= len(sentence) <= MAX_FACT_CHARS or "?" in sentence:
        return False
    if _UNSAFE_RE.search(sentence) or _SECOND_PERSON_RE.search(sentence):
        return False
    low = " ".join(sentence.lower().replace("’", "'").split())
    low = re.sub(r"^i've\b", "i have", low)
    if _REQUEST_RE.search(low):
        return False
    if m := _I_AM_RE.match(low):
        rest = m.group(1)
        return len(rest) >= 2 and not _NOT_AFTER_AM.match(rest)
    if m := _I_MODAL_RE.match(low):
        verb, rest = m.group(1), m.group(2)
        if verb in ("prefer", "rather"):
            return True
        if verb == "like":
            return not rest.strip().startswith("to ")
        return (verb == "be" and bool(rest.strip())) or verb in ("start", "join", "move", "travel", "retire")
    if m := _I_VERB_RE.match(low):
        verb, rest = m.group(1), m.group(2).strip()
        if verb not in _FACT_VERBS or not rest and verb not in ("work", "commute", "travel", "freelance"):
            return False
        if verb in ("was", "been") and re.match(r"(?:wondering|told|asking|looking|thinking|hoping|going to)\b", rest):
            return False
        return not (verb == "look" and not rest.startswith("after"))
    if m := _MY_RE.match(low):
        return m.group(1) not in _MY_NOT_FACT and not any(w in _MY_NOT_FACT for w in low.split()[1:3])
    return False


class Fact(BaseModel):
    """One remembered statement of one user."""

    id: int
    tenant: str
    user: str
    text: str
    created: datetime


_SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    user TEXT NOT NULL,
    text TEXT NOT NULL,
    created TEXT NOT NULL,
    vector BLOB NOT NULL,
    UNIQUE (tenant, user, text)
);
CREATE INDEX IF NOT EXISTS facts_owner ON facts (tenant, user, id);
CREATE TABLE IF NOT EXISTS facts_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class FactStore:
    """SQLite store of users' facts with their embeddings (WAL; one connection shared under a lock)."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path
        row = conn.execute("SELECT value FROM facts_meta WHERE key = 'dim'").fetchone()
        self._dim: int | None = int(row[0]) if row else None

    @classmethod
    def open(cls, path: str | Path) -> FactStore:
        """Open (creating it if needed) the store at ``path``."""
        if not isinstance(path, str | Path):
            raise TypeError(f"path must be a str or Path, not {type(path).__name__}")
        name = str(path)
        if name != ":memory:":
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(name, isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            if name != ":memory:":
                enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            with immediate(conn):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return cls(conn, name)

    @property
    def dim(self) -> int | None:
        """The vectors' dimension, fixed by the first fact stored (None while empty)."""
        return self._dim

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> FactStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def add(self, tenant: str, user: str, text: str, vector: npt.ArrayLike) -> Fact:
        """Store ``text`` for ``tenant``/``user``; an identical text already stored for them is returned as is.

        Raises:
            ValueError: empty text, or a vector that is not 1-D, not finite, or of another dimension than the
                store's.
        """
        _check_owner(tenant, user)
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        text = text.strip()
        if not text:
            raise ValueError("a fact's text is empty")
        vec = self._vector(vector, "vector")
        created = datetime.now(UTC).isoformat()
        with self._lock, immediate(self._conn) as conn:
            if self._dim is None:
                row = conn.execute("SELECT value FROM facts_meta WHERE key = 'dim'").fetchone()
                if row is None:
                    conn.execute("INSERT INTO facts_meta (key, value) VALUES ('dim', ?)", (str(vec.shape[0]),))
                    self._dim = int(vec.shape[0])
                else:
                    self._dim = int(row[0])
                    self._check_dim(vec, "vector")
            conn.execute(
                "INSERT OR IGNORE INTO facts (tenant, user, text, created, vector) VALUES (?, ?, ?, ?, ?)",
                (tenant, user, text, created, vec.tobytes()),
            )
            row = conn.execute(
                "SELECT id, tenant, user, text, created FROM facts WHERE tenant = ? AND user = ? AND text = ?",
                (tenant, user, text),
            ).fetchone()
        return _fact(row)

    def list(self, tenant: str, user: str) -> builtins.list[Fact]:
        """The user's facts, oldest first."""
        _check_owner(tenant, user)
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, tenant, user, text, created FROM facts WHERE tenant = ? AND user = ? ORDER BY id",
                (tenant, user),
            ).fetchall()
        return [_fact(r) for r in rows]

    def delete(self, tenant: str, user: str, fact_id: int) -> bool:
        """Delete one of the user's facts; False when no fact of theirs has that id."""
        _check_owner(tenant, user)
        if isinstance(fact_id, bool) or not isinstance(fact_id, int):
            raise TypeError(f"fact_id must be an int, not {type(fact_id).__name__}")
        with self._lock, immediate(self._conn) as conn:
            cur = conn.execute("DELETE FROM facts WHERE id = ? AND tenant = ? AND user = ?", (fact_id, tenant, user))
            return cur.rowcount > 0

    def delete_all(self, tenant: str, user: str) -> int:
        """Delete all the user's facts; how many there were."""
        _check_owner(tenant, user)
        with self._lock, immediate(self._conn) as conn:
            return conn.execute("DELETE FROM facts WHERE tenant = ? AND user = ?", (tenant, user)).rowcount

    def recall(
        self, tenant: str, user: str, query_vector: npt.ArrayLike, k: int = 3, min_similarity: float = 0.35
    ) -> builtins.list[tuple[Fact, float]]:
        """The user's ``k`` facts most similar to ``query_vector`` (cosine, best first, ties oldest first),
        at least ``min_similarity``.

        Raises:
            ValueError: a query vector that is not 1-D, not finite, or of another dimension than the store's.
        """
        _check_owner(tenant, user)
        query = self._vector(query_vector, "query_vector")
        if k <= 0:
            return []
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, tenant, user, text, created, vector FROM facts WHERE tenant = ? AND user = ? ORDER BY id",
                (tenant, user),
            ).fetchall()
        if not rows:
            return []
        matrix = np.stack([np.frombuffer(r[5], dtype=np.float32) for r in rows]).astype(np.float64)
        norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(query))
        dots = matrix @ query.astype(np.float64)
        sims = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        order = sorted(range(len(rows)), key=lambda i: (-sims[i], rows[i][0]))
        return [(_fact(rows[i]), float(sims[i])) for i in order[:k] if sims[i] >= min_similarity]

    def _vector(self, vector: npt.ArrayLike, name: str) -> npt.NDArray[np.float32]:
        try:
            vec = np.asarray(vector, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"{name} is not a numeric vector") from None
        if vec.ndim != 1 or vec.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {vec.shape}")
        if not np.isfinite(vec).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        self._check_dim(vec, name)
        return vec

    def _check_dim(self, vec: npt.NDArray[np.float32], name: str) -> None:
        if self._dim is not None and vec.shape[0] != self._dim:
            raise ValueError(
                f"{name} has dimension {vec.shape[0]}, but this fact store holds {self._dim}-dimensional vectors "
                "(one embedding model per store)"
            )


def _check_owner(tenant: object, user: object) -> None:
    for name, value in (("tenant", tenant), ("user", user)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        if not value:
            raise ValueError(f"{name} is empty")


def _fact(row: tuple[Any, ...]) -> Fact:
    return Fact(
        id=int(row[0]),
        tenant=str(row[1]),
        user=str(row[2]),
        text=str(row[3]),
        created=datetime.fromisoformat(str(row[4])),
    )
