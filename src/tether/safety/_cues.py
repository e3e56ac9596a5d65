"""Lexical cues of a prompt injection: wording that addresses the model that reads a text rather than its reader.

Each cue is a family of phrasings attacks use (override earlier instructions, ask for the system prompt, assign
a new persona, dictate the output, exfiltrate a secret, fake a chat delimiter, hide text). They are features of
the injection detector, not rules: a benign text may use one ("ignore the warning light"), and the detector's
trained weights decide. Counts are capped so that one long text does not outweigh the embedding.
"""

from __future__ import annotations

import math
import re

_F = re.IGNORECASE

_CUES: dict[str, re.Pattern[str]] = {
    "override": re.compile(
        r"\b(ignore|disregard|forget|override|bypass|skip|drop|abandon)\b[^.!?\n]{0,40}?"
        r"\b(previous|prior|above|earlier|preceding|all|any|your|the|original|initial|system)\b[^.!?\n]{0,30}?"
        r"\b(instructions?|rules?|directions?|prompts?|guidelines?|context|constraints?|polic(y|ies)|programming)\b",
        _F,
    ),
    "new_instructions": re.compile(
        r"\b(new|updated|real|actual|additional|secret|hidden|following)\s+(instructions?|task|directive|orders?)\b"
        r"|\binstead,?\s+(you\s+)?(must|should|will)\b|\byour (new|real|only|true) (task|goal|job|purpose)\b",
        _F,
    ),
    "system_prompt": re.compile(
        r"\b(system|initial|original|hidden|developer|pre-?)\s?(prompt|message|instructions?)\b"
        r"|\b(repeat|print|output|reveal|show|display|dump|tell me)\b[^.!?\n]{0,30}\b(above|instructions?|prompt|"
        r"everything|verbatim|configuration)\b",
        _F,
    ),
    "persona": re.compile(
        r"\byou are (now|no longer|going to|free|an? (unfiltered|unrestricted|uncensored))\b|\bact as\b"
        r"|\bpretend (to be|you(?:'re| are))\b|\brole-?play\b|\bfrom now on\b|\bstay in character\b"
        r"|\b(DAN|jailbr[eo]ak|developer mode|god mode|do anything now)\b",
        _F,
    ),
    "addresses_model": re.compile(
        r"\b(as an ai|language model|ai (assistant|model)|chatgpt|gpt-?\d|llm|the assistant|openai|"
        r"dear (ai|assistant|model)|note to (the )?(ai|assistant|model))\b",
        _F,
    ),
    "dictates_output": re.compile(
        r"\b(respond|reply|answer|output|say|print|write|begin|start|end)\b[^.!?\n]{0,25}?"
        r"\b(only|exactly|with the (word|phrase|text)|verbatim|nothing (else|but))\b"
        r"|\b(in|at the (end|start|beginning) of|to) your (answer|response|reply|output|summary)\b"
        r"|\bwhen (you )?(answer|respond|summari[sz]e|reply)\b",
        _F,
    ),
    "secret": re.compile(
        r"\b(password|passcode|access code|api[ _-]?keys?|secret keys?|credentials?|tokens?|private keys?)\b"
        r"|\b(send|forward|post|upload|exfiltrate|leak|email)\b[^.!?\n]{0,40}\b(to|at)\b[^.!?\n]{0,20}"
        r"(https?://|www\.|@|\bserver\b|\burl\b)",
        _F,
    ),
    "delimiter": re.compile(
        r"<\|[a-z_]+\|>|\[/?(INST|SYS|SYSTEM)\]|<</?SYS>>|</?(system|assistant|user|instructions?)>"
        r"|^\s*(#{2,}|-{3,}|={3,})\s*(system|instructions?|admin|end)|\b(END OF (DOCUMENT|TEXT|CONTEXT|INPUT))\b"
        r"|^\s*(system|assistant)\s*:",
        _F | re.MULTILINE,
    ),
    "must_obey": re.compile(
        r"\b(you must|you have to|you will|you should|you need to|do not (tell|mention|reveal|refuse)|"
        r"never (refuse|mention|reveal)|don't (tell|mention|reveal|refuse)|without (any )?(restrictions?|filters?|"
        r"warnings?|censorship))\b",
        _F,
    ),
    "request_verb": re.compile(
        r"^\W*(please\s+|kindly\s+|also\s+|now\s+|then\s+)?(write|provide|show|tell|give|list|include|add|modify|"
        r"recommend|suggest|help|analy[sz]e|summari[sz]e|translate|reply|respond|describe|determine|explain|create|"
        r"generate|compose|draft|send|ignore|forget|enhance|augment|integrate|encode|render|shift|insert|append|"
        r"mention|promote|state|repeat|print|output|answer|rewrite|convert|format|use|begin|start|end|say|"
        r"pretend|act|imagine|calculate|compute|find|identify|classify|rate|evaluate|compare|predict|spread)\b",
        _F | re.MULTILINE,
    ),
    "your_output": re.compile(
        r"\byour (answer|response|reply|output|message|summary|completion|next (answer|response|reply))\b"
        r"|\b(for|to|tell|show|give|help) me\b",
        _F,
    ),
}
_HIDDEN = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_B64 = re.compile(r"\b[A-Za-z0-9+/]{40,}={0,2}")
_YOU = re.compile(r"\b(you|your|yours|yourself)\b", _F)
_WORD = re.compile(r"\w+")

CUE_FEATURES: tuple[str, ...] = (*_CUES, "hidden_chars", "encoded_blob", "you_rate", "log_words")
"""Names of :func:`cue_features`' values, in order."""


def cue_features(text: str) -> list[float]:
    """The cue vector of ``text`` (order of :data:`CUE_FEATURES`): per cue family its match count capped at 3,
    hidden (zero-width or direction) characters, long base64-like runs, the share of words that are "you"/"your",
    and log(1 + words)."""
    out = [float(min(len(p.findall(text)), 3)) for p in _CUES.values()]
    out.append(float(min(len(_HIDDEN.findall(text)), 3)))
    out.append(float(min(len(_B64.findall(text)), 3)))
    n = len(_WORD.findall(text))
    out.append(len(_YOU.findall(text)) / n if n else 0.0)
    out.append(math.log1p(n))
    return out


def has_cue(text: str) -> bool:
    """Whether ``text`` matches any cue family (hidden characters and encoded runs included)."""
    return any(p.search(text) for p in _CUES.values()) or bool(_HIDDEN.search(text) or _B64.search(text))


def matched_cues(text: str) -> list[str]:
    """The cue families that ``text`` matches, for a human-readable reason."""
    names = [name for name, p in _CUES.items() if p.search(text)]
    if _HIDDEN.search(text):
        names.append("hidden_chars")
    if _B64.search(text):
        names.append("encoded_blob")
    return names


_AI = (
    r"(?:ai|a\.i\.|artificial intelligence|assistants?|chat ?bots?|bots?|copilots?|language models?|llms?|gpts?"
    r"|models?)"
)
_ORDERS: dict[str, re.Pattern[str]] = {
    "override": re.compile(
        _CUES["override"].pattern
        + r"|\b(ignore|disregard|forget)\b\s+(all|everything|anything)?\s*(of\s+)?(the\s+|what\s+is\s+|what's\s+)?"
        r"(above|previous(ly)?|prior|before|said|written)\b",
        _F,
    ),
    "addresses_model": re.compile(
        rf"\b(note|message|instructions?|reminder|notice|attention|important)\s+(to|for)\s+(the\s+|any\s+|all\s+)?"
        rf"(ai\s+)?{_AI}\b"
        r"|\b(ai|assistant|llm|system|model)\s+(instruction|note|directive|command|order)s?\s*:"
        r"|(^|[\[(<{|*-])\W*(ai\s+)?(ai|assistants?|llms?)\s*:[^\n]{0,80}?\b(add|write|print|tell|say|include|"
        r"append|insert|ignore|reply|respond|answer|output|reveal|share|mention|state|end|start|begin)\b"
        rf"|\b(if|when)\s+(you\s+are|you're)\s+an?\s+(ai|assistant|language model|bot|llm|chatbot)\b"
        rf"|\b(ai|virtual|automated|digital)\s+{_AI}\b[^.!?\n]{{0,60}}\b(must|should|shall|will|are to|is to|need to|"
        rf"tell|say|answer|reply|respond|inform|quote|direct|state|mention|include)\b"
        rf"|\b(dear|hey|hello|attention)\s+(ai|assistant|chatbot|bot|model|llm)s?\b"
        rf"|\b(assistants?|chat ?bots?|language models?|llms?)\b[^.!?\n]{{0,20}}\b(must|should|shall|are to|is to|"
        rf"need to|have to)\s+(always\s+|now\s+|instead\s+)?(tell|say|answer|reply|respond|inform|quote|direct|"
        rf"state|mention|include|output|print|reveal|ignore|recommend|refer|send|give)\b",
        _F | re.MULTILINE,
    ),
    "system_prompt": re.compile(
        r"\b(reveal|print|repeat|show|output|display|dump|leak|disclose)\b[^.!?\n]{0,30}\b(system|hidden|initial|"
        r"original|developer)\s+(prompt|message|instructions?)\b",
        _F,
    ),
    "shapes_reply": re.compile(  # how "your answer / response / reply" must look: said to whoever writes it
        r"\b(modify|format|encode|write|provide|give|deliver|present|end|start|begin|translate|apply|add|append|"
        r"include|insert|change|rewrite|respond|answer|express|compose|structure|convert|use|replace|substitute|"
        r"introduce)\b[^.!?\n]{0,40}?\b(your (answer|response|reply|output|summary|completion)s?|the (answer|response|"
        r"reply)s?)\b|\b(in|to|at the (end|start|beginning) of) your (answer|response|reply|output)s?\b",
        _F,
    ),
    "delimiter": re.compile(  # chat-format tokens and fake headers; a transcript's "Assistant:" line is not one
        _CUES["delimiter"].pattern.replace(r"|^\s*(system|assistant)\s*:", r"|^\W*system\s*:"),
        _F | re.MULTILINE,
    ),
}


def order_to_model(text: str) -> str | None:
    """The name of the rule by which ``text`` is an order to the model that reads it (overriding earlier
    instructions, addressing an AI assistant, asking for the system prompt, faking a chat delimiter), or None.

    A sentence it names is never quoted as an answer, whatever the detector's score: these phrasings are rare in
    documents written for people (measured in bench/injection_asr.py) and common in attacks.
    """
    for name, p in _ORDERS.items():
        if p.search(text):
            return name
    return None


def repeats_prompt(text: str, prompt: str, n: int = 8) -> bool:
    """Whether ``text`` holds ``n`` words in a row of ``prompt`` (case and spacing ignored): a system-prompt leak."""
    words = prompt.lower().split()
    if len(words) < n:
        return False
    low = " ".join(text.lower().split())
    return any(" ".join(words[i : i + n]) in low for i in range(len(words) - n + 1))
