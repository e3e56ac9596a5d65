"""A small rule-based parse of one question: tagged tokens and noun-phrase chunks with their prepositions.

No model: closed word lists (``_lexicon``) and the words around each token decide its part. Good enough to find
the slots of a short question ("in Lisbon", "employees", "2023") and its main noun phrase; not a general parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tether.memory import _lexicon as lx
from tether.text import stem

_TOKEN_RE = re.compile(r"[$€£]?\w+(?:[.\-'/]\w+)*%?|[,;:!?()]")
_CONTRACTIONS = {
    "what's": "what is",
    "where's": "where is",
    "who's": "who is",
    "how's": "how is",
    "when's": "when is",
    "it's": "it is",
    "that's": "that is",
    "there's": "there is",
    "here's": "here is",
    "i'm": "I am",
    "i've": "I have",
    "i'd": "I would",
    "i'll": "I will",
    "we're": "we are",
    "we've": "we have",
    "they're": "they are",
    "they've": "they have",
    "you're": "you are",
    "you've": "you have",
    "isn't": "is not",
    "aren't": "are not",
    "wasn't": "was not",
    "weren't": "were not",
    "don't": "do not",
    "doesn't": "does not",
    "didn't": "did not",
    "can't": "can not",
    "cannot": "can not",
    "won't": "will not",
    "shouldn't": "should not",
    "wouldn't": "would not",
    "couldn't": "could not",
    "haven't": "have not",
    "hasn't": "has not",
    "hadn't": "had not",
}
_CONTRACTION_RE = re.compile(r"\b(?:" + "|".join(re.escape(k) for k in _CONTRACTIONS) + r")\b", re.IGNORECASE)
_DUMMY_ADJ = lx.word_set(
    "possible allowed ok okay necessary required mandatory true worth safe better best legal permitted normal "
    "acceptable advisable important fine late early enough hard easy free compulsory forbidden prohibited common "
    "usual recommended likely wise appropriate customary reasonable expected feasible realistic difficult "
    "against illegal"
)
_DUMMY_SKIP = lx.word_set("be is was not really still also ever considered generally always too even")
_DUMMY_VERBS = lx.word_set("take takes took cost costs matter matters make makes hurt")
_SAY = lx.word_set(
    "say says said mean means true sure know think possible state states confirm ensure require requires so "
    "correct given"
)
_NOT_PLURAL_ENDINGS = ("ss", "us", "is", "ics", "ous", "'s")


def expand_contractions(text: str) -> str:
    """``What's`` -> ``What is``, ``don't`` -> ``do not`` (the first letter's case is kept)."""

    def repl(m: re.Match[str]) -> str:
        word = m.group(0)
        out = _CONTRACTIONS[word.lower()]
        if word[0].isupper() and out[0].islower():
            out = out[0].upper() + out[1:]
        return out

    return _CONTRACTION_RE.sub(repl, text.replace("’", "'"))


@dataclass
class Tok:
    text: str
    low: str
    start: int
    end: int
    kind: str = "noun"
    name: bool = False  # a proper name, acronym or code identifier


@dataclass
class Phrase:
    """A noun-phrase chunk ``toks[start:end]`` (determiners included), its head and its preposition, if any."""

    start: int
    end: int
    head: int
    prep: int | None = None
    cat: str | None = None  # people | time | num | name | None
    words: list[int] = field(default_factory=list)  # indexes of its non-determiner tokens


@dataclass
class Parsed:
    text: str
    toks: list[Tok]
    phrases: list[Phrase]

    def span(self, i: int, j: int) -> str:
        """The text of ``toks[i:j]`` as written (a sentence-initial common word lower-cased)."""
        if i >= j:
            return ""
        out = self.text[self.toks[i].start : self.toks[j - 1].end]
        first = self.toks[i]
        if i == 0 and not first.name and out[:1].isupper() and first.text != "I":
            out = out[0].lower() + out[1:]
        return out

    def phrase_text(self, ph: Phrase, with_det: bool = True) -> str:
        return self.span(ph.start if with_det else ph.words[0], ph.end)

    def head_stem(self, ph: Phrase) -> str:
        return noun_stem(self.toks[ph.head].low)

    def content(self) -> list[Tok]:
        return [t for t in self.toks if t.kind in ("noun", "num")]


def noun_stem(word: str) -> str:
    word = word.removesuffix("'s")
    return stem(word)


def is_plural(word: str) -> bool:
    w = word.lower()
    if w in ("staff", "people", "children", "personnel", "folks", "police", "team"):
        return w != "team"
    return w.endswith("s") and not w.endswith(_NOT_PLURAL_ENDINGS) and len(w) > 3


def _is_name(text: str, first: bool, next_low_word: bool) -> bool:
    core = text.lstrip("$€£")
    if not core or not core[0].isalnum():
        return False
    if "_" in core or (any(c.isdigit() for c in core) and any(c.isalpha() for c in core)):
        return True
    if len(core) >= 2 and core.isupper():
        return True
    if any(c.isupper() for c in core[1:]) and any(c.islower() for c in core):
        return True  # CamelCase
    if core[0].isupper():
        if first and (core.lower() in lx.GENERIC_NOUNS or is_people(core)):
            return False
        return not first or not next_low_word
    return False


def _number_kind(low: str) -> str | None:
    if lx.QUARTER_RE.match(low) or low in lx.MONTHS or low in lx.WEEKDAYS:
        return "time"
    if lx.NUMBER_RE.match(low) or low in lx.NUMBER_WORDS:
        return "num"
    return None


def tokenize(text: str) -> list[Tok]:
    return [Tok(m.group(0), m.group(0).lower(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def _base_kind(t: Tok) -> str:
    low = t.low
    if t.text in ",;:!?()":
        return "punct"
    if t.text != "I" and len(t.text) >= 2 and t.text.isupper() and t.text.isalpha():
        return "noun"  # IT, US, HR: acronyms, not pronouns
    if low in lx.WH:
        return "wh"
    if low == "there":
        return "there"
    if low in lx.DEICTIC:
        return "deictic"
    if low == "her":
        return "her"
    if low in lx.AUX:
        return "aux"
    if low in ("not", "never"):
        return "neg"
    if low in lx.PRONOUNS:
        return "pron"
    if low in lx.DETERMINERS:
        return "det"
    if low in lx.PREPOSITIONS:
        return "prep"
    if low in lx.CONJUNCTIONS:
        return "conj"
    if _number_kind(low):
        return "num"
    if low in lx.SUBORDINATORS:
        return "sub"
    if low in lx.PREDICATE_ADJECTIVES:
        return "adj"
    if low in lx.ADVERBS:
        return "adv"
    if low in lx.VERBS:
        return "verb"
    if low in lx.AMBIGUOUS:
        return "amb"
    return "noun"


def parse(text: str) -> Parsed:
    """Tag the tokens of ``text`` (contractions are expected to be expanded) and chunk its noun phrases."""
    toks = tokenize(text)
    base = [_base_kind(t) for t in toks]
    n = len(toks)
    words_idx = [i for i, k in enumerate(base) if k != "punct"]
    first_word = words_idx[0] if words_idx else -1
    for i, t in enumerate(toks):
        nxt_low = i + 1 < n and base[i + 1] not in ("punct",) and toks[i + 1].text[:1].islower()
        t.name = base[i] in ("noun", "num", "amb", "adv", "verb") and _is_name(t.text, i == first_word, nxt_low)
        if t.name and base[i] in ("amb", "adv", "verb") and i != first_word:
            base[i] = "noun"
    # the clause's shape decides ambiguous verb/noun words
    lead = next((toks[i].low for i in words_idx if base[i] == "aux"), "")  # the first auxiliary
    do_support = lead in lx.DO_SUPPORT
    be_clause = lead in lx.BE
    verb_seen = False
    for i, t in enumerate(toks):
        k = base[i]
        prev = toks[i - 1].kind if i > 0 else ""
        nxt = base[i + 1] if i + 1 < n else ""
        if k == "punct":
            verb_seen = False
        elif k == "aux" and t.low == "may" and prev == "prep":
            k = "num"  # the month
        elif k == "det" and t.text == "A" and prev == "noun":
            k, t.name = "noun", True  # "building A"
        elif k == "det" and t.low == "no" and nxt not in ("noun", "amb", "num", "adv"):
            k = "neg"
        elif k == "her":
            k = "det" if nxt in ("noun", "amb", "num") else "pron"
        elif k == "deictic":
            if (
                prev in ("noun", "verb", "amb")
                and toks[i - 1].low in _SAY
                and nxt not in ("", "punct")
                or prev == "noun"
                and nxt not in ("", "punct", "prep", "adv", "aux")
            ):
                k = "rel"
            elif nxt in ("noun", "num") or (nxt == "amb" and i + 2 < n and base[i + 2] in ("aux", "noun", "prep")):
                k = "det"
            else:
                k = "pron"
        elif k == "there":
            k = "exist" if prev == "aux" or nxt == "aux" else "there"
        elif k == "adv" and nxt in ("noun", "amb") and (t.low in lx.CONTENT_ADVERBS or prev in ("det", "noun", "prep")):
            k = "noun"  # "the first day", "the late fee", "part-time staff"
        elif k == "adv" and t.low in lx.CONTENT_ADVERBS and prev in ("det", "noun"):
            k = "noun"  # "the team offsite"
        elif k == "adj" and nxt in ("noun", "amb", "adj") and prev not in ("noun",):
            k = "noun"  # "the mandatory training"; after a noun it says something of it: "is the policy mandatory"
        elif k == "prep" and t.low == "to" and nxt == "verb":
            k = "inf"
        elif k == "verb" and prev in ("det", "num", "prep", "her") and not t.low.endswith("ing"):
            k = "noun"  # "the number of monitors"
        elif k == "noun" and not t.name and _verb_by_position(toks, i, prev):
            k = "verb"  # an unlisted verb: "who maintains it", "how do I onboard"
        elif k == "amb":
            k = _resolve_ambiguous(toks, base, i, prev, nxt, do_support, be_clause, verb_seen)
        if k == "verb":
            verb_seen = True
        t.kind = k
    return Parsed(text, toks, _chunk(toks))


def _resolve_ambiguous(
    toks: list[Tok], base: list[str], i: int, prev: str, nxt: str, do_support: bool, be_clause: bool, verb_seen: bool
) -> str:
    low = toks[i].low
    is_base = low in lx.AMBIGUOUS_BASES
    participle = low.endswith(("ed", "en")) or low in ("paid", "built", "set", "run", "left")
    if prev in ("det", "prep", "num", "her"):
        if participle and prev == "prep" and nxt in ("", "punct", "prep"):
            return "verb"
        return "noun"
    if prev in ("pron", "inf", "wh", "neg", "exist", "there", "rel"):
        if prev == "wh" and nxt == "aux":
            return "noun"  # "what changes were made"
        return "verb"
    if prev == "aux":
        if participle or low.endswith("ing"):
            return "verb" if nxt not in ("noun", "amb") else "noun"
        return "noun" if nxt in ("noun", "amb") else "verb"
    if prev == "noun":
        if participle and be_clause and nxt not in ("noun", "amb"):
            return "verb"
        next_base = i + 1 < len(toks) and nxt == "amb" and toks[i + 1].low in lx.AMBIGUOUS_BASES
        if is_base and do_support and not verb_seen and nxt != "aux" and not next_base:
            return "verb"
        if not verb_seen and nxt in ("det", "pron", "her") and not participle:
            return "verb"
        return "noun"
    if prev == "verb":
        return "verb" if participle and nxt not in ("noun", "amb") else "noun"
    if prev in ("", "conj", "punct", "adv"):
        return "verb" if nxt in ("det", "pron", "her", "prep") else "noun"
    return "noun" if nxt in ("noun", "amb") else "verb"


def _verb_by_position(toks: list[Tok], i: int, prev: str) -> bool:
    low = toks[i].low
    if prev == "pron" and toks[i - 1].low in lx.SUBJECT_PRONOUNS and toks[i - 1].low != "it":
        return i + 1 >= len(toks) or toks[i + 1].kind != "aux"
    return prev == "wh" and toks[i - 1].low == "who" and low.endswith(("s", "ed")) and not low.endswith("ss")


def _category(toks: list[Tok], start: int, words: list[int], head: int) -> str | None:
    kinds = [_number_kind(toks[i].low) for i in words]
    lows = [toks[i].low for i in range(start, head + 1)]
    if "time" in kinds or (toks[head].low in lx.TIME_UNITS and any(w in lx.RELATIVE_TIME for w in lows[:-1])):
        return "time"  # "Q3", "March", "2024", "next year"
    if "num" in kinds or (toks[head].low in lx.UNITS and lows[0] in ("a", "an")):
        return "num"  # "two weeks", "50 euros", "a month"
    if is_people(toks[head].low):
        return "people"
    if any(toks[i].name for i in words):
        return "name"
    return None


def _chunk(toks: list[Tok]) -> list[Phrase]:
    phrases: list[Phrase] = []
    i = 0
    n = len(toks)
    while i < n:
        k = toks[i].kind
        if k in ("det", "noun", "num"):
            start = i
            while i < n and toks[i].kind == "det":
                i += 1
            words: list[int] = []
            while i < n and toks[i].kind in ("noun", "num"):
                words.append(i)
                i += 1
            if not words:
                continue
            prep = start - 1 if start > 0 and toks[start - 1].kind == "prep" else None
            head = words[-1]
            # "50 euros": the unit is not the head of what is counted, but it is the phrase's end
            phrases.append(Phrase(start, i, head, prep, _category(toks, start, words, head), words))
        else:
            i += 1
    return phrases


def is_people(word: str) -> bool:
    """A noun for a group or kind of people ("contractors", "part-time staff", "new hires")."""
    w = word.lower().removesuffix("'s").removesuffix("'")
    if w in lx.PEOPLE:
        return True
    if w.endswith("ies") and w[:-3] + "y" in lx.PEOPLE:
        return True
    return (w.endswith("es") and w[:-2] in lx.PEOPLE) or (w.endswith("s") and w[:-1] in lx.PEOPLE)


def dummy_it(toks: list[Tok], j: int) -> bool:
    """'it' at ``toks[j]`` points at nothing: "is it possible to ...", "how long does it take to ..."."""
    k = j + 1
    while k < len(toks) and toks[k].low in _DUMMY_SKIP:
        k += 1
    if k < len(toks) and toks[k].low in _DUMMY_ADJ:
        return True
    if k < len(toks) and toks[k].low in _DUMMY_VERBS:
        return any(t.low in ("to", "if", "whether", "when", "for") for t in toks[k + 1 :])
    return False
