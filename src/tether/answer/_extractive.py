from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from tether.answer._features import answer_features, features, question_terms
from tether.answer._model import SupportModel
from tether.answer._reader import Reader, reader_answer_features, shortlist, uses_reader
from tether.answer._yesno import is_polar, yes_no
from tether.config import AnswerSettings
from tether.contracts import Answer, Citation, Hit, TraceEvent
from tether.judge._idf import StoreIdf
from tether.models import Embedder
from tether.safety import InjectionDetector, order_to_model
from tether.store import Store
from tether.text import STOPWORDS, split_sentences, stem, words
from tether.text._tables import RowContext, cells, is_table_line, row_context, table_start

_RULE_LINE = re.compile(r"^\s*([*=\-~^#+`'\"._|:]\s*){3,}$")


def is_answer_like(text: str) -> bool:
    """False for spans that cannot answer anything: headings (underlined or '#'), rules, table borders."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not any(c.isalnum() for c in text):
        return False
    if any(_RULE_LINE.match(ln) for ln in lines):
        return False
    return not all(ln.lstrip().startswith("#") for ln in lines)


_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]")
_LIST_QUOTE_CHARS = 1500  # a list quoted after its lead-in stops at this many characters (whole items)


_ECHO_WORDS = 4  # a full sentence this long that adds no word to a (non yes/no) question only echoes it


def restates(text: str, question_stems: Iterable[str], *, polar: bool = False) -> bool:
    """True for a span that only restates a question: a question itself (a FAQ heading, a table-of-contents
    line: it ends with "?"), a title-like line (no closing full stop) with no content word the question does
    not already have, or a sentence of at least four content words, none new, to a question that is not a yes/no
    one (``polar``: there a sentence in the question's own words confirms it). An echo of the question answers
    nothing, and it is what an injected instruction looks like when the question repeats it. A short sentence
    may answer in the question's own words ('It is written as "..."'): kept."""
    body = text.strip().rstrip("*_`\"'”’)").rstrip()
    if body.endswith("?"):
        return True
    own = {stem(w) for w in words(text) if w not in STOPWORDS}
    if body.endswith((".", "!", ":", ";")):
        return not polar and len(own) >= _ECHO_WORDS and own <= set(question_stems)
    return bool(own) and own <= set(question_stems)


@dataclass
class Candidate:
    """One sentence of a retrieved chunk, placed in its document, with its support probability."""

    hit: Hit
    start: int  # offsets in the document text
    end: int
    text: str
    features: list[float]
    probability: float
    reading: str = ""  # how it was read, when not as quoted: a table row with its header ("City: Lisbon; ...")

    @property
    def read(self) -> str:
        """What the answer says for this candidate: its reading, else its exact text."""
        return self.reading or self.text


def _citation(n: int, c: Candidate) -> Citation:
    return Citation(
        n=n,
        doc_id=c.hit.doc_id,
        path=c.hit.path,
        title=c.hit.title,
        section=c.hit.section,
        start=c.start,
        end=c.end,
        quote=c.text,
    )


class _VectorCache:
    """Embeddings of sentences already seen (a bounded LRU: re-asked questions cost no model time)."""

    def __init__(self, embedder: Embedder, size: int = 50_000) -> None:
        self.embedder = embedder
        self.size = size
        self._d: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Vectors of ``texts`` in order; unseen texts are embedded (outside the lock) and remembered.

        Another thread may evict a text between the first look and the last: the vectors this call holds
        stand in for it (never a KeyError), and it is remembered again.
        """
        with self._lock:
            known = {t: self._d[t] for t in dict.fromkeys(texts) if t in self._d}
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:  # the model runs outside the lock
            known.update(zip(todo, self.embedder.embed(todo), strict=True))
        with self._lock:
            for t, v in known.items():
                self._d[t] = v
                self._d.move_to_end(t)
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        if not texts:
            return np.zeros((0, self.embedder.dim), np.float32)
        return np.stack([known[t] for t in texts])


def with_list(c: Candidate) -> Candidate:
    """A sentence that leads in to a list ("... in two steps:") is quoted with the list items after it in its
    chunk (whole items, up to :data:`_LIST_QUOTE_CHARS`): the lead-in alone answers nothing."""
    if not c.text.rstrip().endswith(":"):
        return c
    text = c.hit.text
    lead_end = c.end - c.hit.start
    end = lead_end
    for s, e in split_sentences(text):
        if s < end:
            continue
        if text[end:s].strip() or not _LIST_ITEM.match(text[s:e]) or e - lead_end > _LIST_QUOTE_CHARS:
            break
        end = e
    if end == lead_end:
        return c
    return replace(c, end=c.hit.start + end, text=text[c.start - c.hit.start : end])


class _TableHeaders:
    """Where a chunk starts inside a table, the header is in the document before it: the header of the table
    holding a chunk's start is read from the document once and remembered by chunk id (ids are never reused)."""

    def __init__(self, store: Store, size: int = 16_384) -> None:
        self.store = store
        self.size = size
        self._headers: OrderedDict[int, list[str] | None] = OrderedDict()
        self._lock = threading.Lock()

    def context(self, hit: Hit, pos: int) -> RowContext | None:
        """The table row at ``pos`` of ``hit.text`` with its header."""
        local = row_context(hit.text, pos)
        if local is None or hit.start == 0 or table_start(hit.text, pos) > 0:
            return local  # not a row, or its whole table block is inside the chunk
        header = self._header_before(hit)
        if header is None:
            return local
        return RowContext(header=header, row=local.row, is_header=False, is_separator=local.is_separator)

    def _header_before(self, hit: Hit) -> list[str] | None:
        with self._lock:
            if hit.chunk_id in self._headers:
                self._headers.move_to_end(hit.chunk_id)
                return self._headers[hit.chunk_id]
        header: list[str] | None = None
        try:
            doc = self.store.document_text(hit.doc_id)
        except KeyError:  # deleted since it was retrieved
            doc = ""
        if doc[hit.start : hit.end] == hit.text:  # else replaced since it was retrieved: the chunk alone
            first = table_start(doc, hit.start)
            if first < hit.start:
                end = doc.find("\n", first)
                header = cells(doc[first : end if end >= 0 else len(doc)])
        with self._lock:
            self._headers[hit.chunk_id] = header
            while len(self._headers) > self.size:
                self._headers.popitem(last=False)
        return header


def _context(hit: Hit) -> str:
    """What the reader reads above a sentence: the document's title, else its innermost section."""
    return hit.title or (hit.section[-1] if hit.section else "")


class ExtractiveAnswerer:
    """The offline answerer: quote the sentences that answer, or say "not in the documents".

    Each sentence of the top retrieved chunks is scored by a small learned support model; the best
    one is cited if its probability reaches the calibrated threshold, otherwise Tether abstains.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        settings: AnswerSettings,
        model: SupportModel,
        reader: Reader | None = None,
        *,
        detector: InjectionDetector | None = None,
        screen_orders: bool = False,
        shares_with: ExtractiveAnswerer | None = None,
    ) -> None:
        if uses_reader(model) != (reader is not None):
            raise ValueError(
                "a support model fitted with the reader's score needs that reader, and only such a model can use one"
            )
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.model = model
        self.reader = reader
        self.detector = detector  # a sentence it flags as an injection is never a candidate (docs/safety.md)
        self.screen_orders = screen_orders  # nor is an order to the model (safety.order_to_model), score or not
        self._local = threading.local()  # reader_ms: this thread's last reader pass (for the trace)
        # ``shares_with``: another answerer over the same index (the router's probe and the configured answerer)
        # whose sentence embeddings, IDF and table headers this one reuses rather than computes again
        self._vectors: _VectorCache = shares_with._vectors if shares_with is not None else _VectorCache(embedder)
        self._idf: StoreIdf = shares_with._idf if shares_with is not None else StoreIdf(store)
        self._tables: _TableHeaders = shares_with._tables if shares_with is not None else _TableHeaders(store)

    def question_idf(self, question: str) -> tuple[dict[str, float], float]:
        """IDF over this index of the question's words, and the IDF of a word the index never holds."""
        return self._idf.idf(words(question))

    @property
    def threshold(self) -> float:
        t = self.settings.threshold
        return self.model.threshold if t is None else t

    def candidates(self, question: str, hits: list[Hit], question_vector: npt.NDArray[np.float32]) -> list[Candidate]:
        """Every sentence of ``hits`` with its features and support probability, best first.

        A table row is read with its header (``Column: value; ...``) and scored as such; its citation quotes
        the row's own span. Header and separator rows are not candidates. With a reader, only the sentences its
        support model shortlists (the best few by the features alone) are read, and only they are candidates.
        """
        idf, max_idf = self._idf.idf(words(question))
        q = question_terms(question, idf, max_idf)
        polar = is_polar(question)
        spans: list[tuple[int, Hit, int, int, str]] = []
        for rank, hit in enumerate(hits):
            for s, e in split_sentences(hit.text):
                text = hit.text[s:e]
                if not is_answer_like(text) or restates(text, q.stems, polar=polar):
                    continue
                if is_table_line(text):
                    ctx = self._tables.context(hit, s)
                    if ctx is None or ctx.is_header or ctx.is_separator:
                        continue
                    text = ctx.reading() or text
                spans.append((rank, hit, s, e, text))
        if not spans:
            return []
        sent_vecs = self._vectors.get([text for *_, text in spans])
        if self.detector is not None or self.screen_orders:
            texts = [text for *_, text in spans]
            flags = [self.screen_orders and order_to_model(t) is not None for t in texts]
            if self.detector is not None:
                scores = self.detector.scores(texts, sent_vecs)
                flags = [f or p >= self.detector.sentence_threshold for f, p in zip(flags, scores, strict=True)]
            keep = [i for i, f in enumerate(flags) if not f]
            self._local.injections = len(spans) - len(keep)
            if len(keep) < len(spans):
                spans, sent_vecs = [spans[i] for i in keep], sent_vecs[keep]
                if not spans:
                    return []
        passage_vecs = self._vectors.get([h.text for h in hits])
        cos_s = sent_vecs @ question_vector
        cos_p = passage_vecs @ question_vector
        xs = [
            features(q, text, hit.text, float(cos_s[i]), float(cos_p[rank]), rank)
            for i, (rank, hit, _, _, text) in enumerate(spans)
        ]
        if self.reader is not None:
            keep = shortlist(self.model, xs)
            spans, xs = [spans[i] for i in keep], [xs[i] for i in keep]
            t0 = time.perf_counter()
            read = self.reader.scores(question, [(_context(hit), text) for _, hit, _, _, text in spans])
            self._local.reader_ms = (time.perf_counter() - t0) * 1000
            xs = [[*x, r] for x, r in zip(xs, read, strict=True)]
        out = []
        for (_, hit, s, e, text), x in zip(spans, xs, strict=True):
            quote = hit.text[s:e]
            reading = text if text != quote else ""
            out.append(
                Candidate(hit, hit.start + s, hit.start + e, quote, x, self.model.sentence.probability(x), reading)
            )
        out.sort(key=lambda c: -c.probability)
        return out

    def _reader_detail(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.detector is not None or self.screen_orders:
            out["injection_sentences_skipped"] = getattr(self._local, "injections", 0)
        if self.reader is None:
            return out
        return {**out, "reader": self.reader.name, "reader_ms": round(getattr(self._local, "reader_ms", 0.0), 2)}

    def support(self, cands: list[Candidate]) -> float:
        """Probability that citing the best candidate answers the question correctly."""
        x = answer_features([c.probability for c in cands], [c.features for c in cands])
        if self.reader is not None:
            x += reader_answer_features([c.features[-1] for c in cands])
        return self.model.answer.probability(x)

    def answer(
        self,
        question: str,
        hits: list[Hit],
        question_vector: npt.NDArray[np.float32],
        *,
        config_hash: str,
        trace: list[TraceEvent] | None = None,
    ) -> Answer:
        t0 = time.perf_counter()
        trace = list(trace or [])
        th = self.threshold
        self._local.injections = 0
        cands = self.candidates(question, hits, question_vector)
        best = self.support(cands) if cands else 0.0
        trace.append(
            TraceEvent(
                stage="extractive",
                detail={
                    **self._reader_detail(),
                    "candidates": len(cands),
                    "support": round(best, 4),
                    "threshold": th,
                    "top": [
                        {"path": c.hit.path, "start": c.start, "end": c.end, "p": round(c.probability, 4)}
                        for c in cands[:5]
                    ],
                },
                ms=(time.perf_counter() - t0) * 1000,
            )
        )
        if not cands or best < th:
            reason = (
                "nothing was retrieved"
                if not hits
                else f"best evidence has support {best:.2f}, below the calibrated threshold {th:.2f}"
            )
            return Answer(
                question=question,
                text=self.settings.not_found_text,
                abstained=True,
                nearest=_citation(1, cands[0]) if cands else None,
                support=best,
                threshold=th,
                reason=reason,
                config_hash=config_hash,
                trace=trace,
            )
        chosen = [with_list(cands[0])]
        for c in cands[1:]:
            if len(chosen) >= self.settings.max_sentences:
                break
            if c.probability < max(0.5, 0.8 * cands[0].probability):
                continue
            w = with_list(c)
            apart = [o.hit.doc_id != w.hit.doc_id or w.end <= o.start or w.start >= o.end for o in chosen]
            if all(apart):
                chosen.append(w)
            elif all(ok or (w.start <= o.start and o.end <= w.end) for ok, o in zip(apart, chosen, strict=True)):
                # A list lead-in quoted with its list holds sentences already chosen (list items): the list takes
                # the place of the first of them and the others go, so no text is quoted twice.
                first = next(i for i, ok in enumerate(apart) if not ok)
                chosen = [w if i == first else o for i, o in enumerate(chosen) if i == first or apart[i]]
        citations = []
        parts = []
        for n, c in enumerate(chosen, 1):
            citations.append(_citation(n, c))
            parts.append(f"{' '.join(c.read.split())} [{n}]")
        label = yes_no(question, chosen[0].read)  # "Yes."/"No." only when the cited evidence settles it
        if label is not None:
            trace[-1].detail["yes_no"] = label
        return Answer(
            question=question,
            text=" ".join([f"{label}." if label else "", *parts]).strip(),
            abstained=False,
            citations=citations,
            support=best,
            threshold=th,
            config_hash=config_hash,
            trace=trace,
        )
