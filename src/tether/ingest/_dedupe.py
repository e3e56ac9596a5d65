"""Near-duplicate detection: MinHash signatures over word 3-shingles, and LSH banding.

Two schemes hash the shingles; an index records which one its stored signatures use (``minhash_scheme``)
and keeps it, since signatures of different schemes are not comparable:

- ``words64`` (new indexes): each word's 64-bit BLAKE2b hash, cached per process, and a shingle's hash
  mixed from its three words' in numpy; about twice as fast, because a corpus repeats its words.
- ``datasketch`` (indexes made before ``words64``): datasketch's values, SHA-1 of each shingle's text.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from tether.text import words

Scheme = Literal["words64", "datasketch"]
DEFAULT_SCHEME: Scheme = "words64"
LEGACY_SCHEME: Scheme = "datasketch"
"""What an index that records no scheme used (every index made before schemes were recorded)."""

_SEED = 1
_SCHEME = "affine64"  # datasketch's name for the permutations below (the tests compare them with its own)
_SHINGLE = 3
_GRID = 501  # integration points for the LSH error integrals


@lru_cache(maxsize=8)
def _permutations(num_perm: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """The affine permutations ``h -> a * h + b`` modulo 2**64 (``a`` odd, so each is a bijection), drawn
    from numpy's legacy generator seeded with ``_SEED``: the values of ``datasketch.MinHash(num_perm,
    seed=1, scheme="affine64")``, which every stored signature was made with (checked by the tests).
    Drawn here rather than through datasketch, whose import (it pulls in scipy) cost an ingest 0.5 s
    and 50 MB in each process."""
    gen = np.random.RandomState(_SEED)
    a = gen.randint(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = gen.randint(0, 1 << 64, num_perm, dtype=np.uint64)
    return a, b


def _shingles(text: str) -> set[bytes]:
    """Word 3-shingles of ``text`` (the word set when it has fewer than 3 words)."""
    tokens = words(text)
    if len(tokens) < _SHINGLE:
        return {token.encode() for token in tokens}
    return {" ".join(tokens[i : i + _SHINGLE]).encode() for i in range(len(tokens) - _SHINGLE + 1)}


_MAX_U64 = np.uint64(2**64 - 1)
_FMIX = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_BATCH_SHINGLES = 4_000  # shingles hashed against every permutation at once (small enough for the cache)


def _fmix64(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """MurmurHash3's 64-bit finaliser (wrapping arithmetic), the pre-mix of the affine64 scheme."""
    shift, m1, m2 = _FMIX
    h = h ^ (h >> shift)
    h = h * m1
    h = h ^ (h >> shift)
    h = h * m2
    return h ^ (h >> shift)


def signature(text: str, num_perm: int, scheme: Scheme = DEFAULT_SCHEME) -> npt.NDArray[np.uint64]:
    """MinHash signature of ``text`` over lowercase word 3-shingles.

    Deterministic (seed 1, 64-bit affine permutations). A text without words gets the empty-set
    signature (all maximal values), so two word-less texts look identical.

    Args:
        text: The text.
        num_perm: Number of hash permutations (signature length).
        scheme: How shingles are hashed (see the module's docstring); compare only signatures of one scheme.

    Returns:
        ``num_perm`` uint64 hash values.
    """
    out: npt.NDArray[np.uint64] = signatures([text], num_perm, scheme)[0]
    return out


def signatures(texts: list[str], num_perm: int, scheme: Scheme = DEFAULT_SCHEME) -> npt.NDArray[np.uint64]:
    """:func:`signature` of each text, ``[len(texts), num_perm]``, computed together."""
    if scheme == "words64":
        return _words64(texts, num_perm)
    if scheme == "datasketch":
        return _datasketch(texts, num_perm)
    raise ValueError(f"unknown MinHash scheme {scheme!r}")


_WORD_HASHES: dict[str, int] = {}
_MAX_CACHED_WORDS = 1_000_000
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


def _word_hash(word: str) -> int:
    h = _WORD_HASHES.get(word)
    if h is None:
        if len(_WORD_HASHES) >= _MAX_CACHED_WORDS:
            _WORD_HASHES.clear()
        h = _WORD_HASHES[word] = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return h


def _words64(texts: list[str], num_perm: int) -> npt.NDArray[np.uint64]:
    """The ``words64`` scheme: a shingle (w1, w2, w3) hashes to ``fmix64(h1 * M1 + h2 * M2 + h3)`` over the
    words' cached BLAKE2b hashes (a text of fewer than 3 words: ``fmix64(h)`` of each word); then the same
    affine permutations and minimum as ``datasketch``. Repeated shingles change no minimum, so no set is made."""
    a, b = _permutations(num_perm)
    out = np.full((len(texts), num_perm), _MAX_U64, dtype=np.uint64)
    get = _WORD_HASHES.get
    flat: list[int] = []
    lens: list[int] = []
    for text in texts:
        ws = words(text)
        flat.extend([get(w) or _word_hash(w) for w in ws])
        lens.append(len(ws))
    if not flat:
        return out
    h = np.array(flat, dtype=np.uint64)
    n_words = np.array(lens, dtype=np.int64)
    first = np.cumsum(n_words) - n_words  # each text's first word in h
    m1, m2 = _MIX
    # position i holds the shingle starting at word i (those crossing into the next text are never read)
    tri = np.zeros(len(h), dtype=np.uint64)
    if len(h) >= _SHINGLE:
        tri[: len(h) - 2] = _fmix64(h[:-2] * m1 + h[1:-1] * m2 + h[2:])
    single = _fmix64(h)
    count = np.where(n_words >= _SHINGLE, n_words - (_SHINGLE - 1), n_words)  # shingles of each text
    seg = np.cumsum(count) - count
    pos = np.arange(int(count.sum())) - np.repeat(seg, count) + np.repeat(first, count)
    values = np.where(np.repeat(n_words >= _SHINGLE, count), tri[pos], single[pos])
    start = 0
    while start < len(texts):  # texts in groups of about _BATCH_SHINGLES shingles, each against every permutation
        stop = start + 1
        while stop < len(texts) and seg[stop] + count[stop] - seg[start] <= _BATCH_SHINGLES:
            stop += 1
        filled = np.flatnonzero(count[start:stop])
        if len(filled):
            part = values[seg[start] : seg[stop - 1] + count[stop - 1]]
            phv = part[:, None] * a[None, :] + b[None, :]  # uint64 arithmetic wraps: modulo 2**64
            out[start + filled] = np.minimum.reduceat(phv, (seg[start:stop] - seg[start])[filled], axis=0)
        start = stop
    return out


def _datasketch(texts: list[str], num_perm: int) -> npt.NDArray[np.uint64]:
    """The ``datasketch`` scheme: datasketch's values (``MinHash(num_perm, seed=1, scheme="affine64")``
    updated with the shingles): the first 8 bytes of each shingle's SHA-1 as a little-endian integer,
    MurmurHash3's finaliser, then ``a * h + b`` modulo 2**64 for each permutation, and the minimum."""
    a, b = _permutations(num_perm)
    out = np.full((len(texts), num_perm), _MAX_U64, dtype=np.uint64)
    sha1 = hashlib.sha1
    start = 0
    while start < len(texts):
        stop, total = start, 0
        sets: list[set[bytes]] = []
        while stop < len(texts) and (total < _BATCH_SHINGLES or stop == start):
            sets.append(_shingles(texts[stop]))
            total += len(sets[-1])
            stop += 1
        if total:
            digests = b"".join([sha1(sh).digest()[:8] for one in sets for sh in one])
            hv = _fmix64(np.frombuffer(digests, dtype="<u8").astype(np.uint64))
            phv = hv[:, None] * a[None, :] + b[None, :]  # uint64 arithmetic wraps: modulo 2**64
            sizes = np.array([len(one) for one in sets])
            filled = np.flatnonzero(sizes)
            bounds = np.concatenate([[0], np.cumsum(sizes)[:-1]])[filled]
            out[start + filled] = np.minimum.reduceat(phv, bounds, axis=0)
        start = stop
    return out


def estimated_jaccard(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> float:
    """Jaccard similarity estimated from two signatures of the same length.

    Args:
        a: A signature from :func:`signature`.
        b: Another signature with the same ``num_perm``.

    Returns:
        The fraction of equal hash values, in [0, 1].

    Raises:
        ValueError: The signatures differ in length.
    """
    if a.shape != b.shape:
        raise ValueError("signatures of different lengths cannot be compared")
    return float(np.count_nonzero(a == b)) / float(a.size) if a.size else 0.0


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Choose LSH bands and rows for a Jaccard threshold.

    Minimises the equally weighted sum of the false-positive probability mass (similarity below
    ``threshold`` but a shared band, integrated over [0, threshold]) and the false-negative mass
    (similarity above but no shared band, over [threshold, 1]), with ``bands * rows <= num_perm``.

    Args:
        threshold: Jaccard similarity in (0, 1) above which texts count as near-duplicates.
        num_perm: Signature length.

    Returns:
        ``(bands, rows)``.

    Raises:
        ValueError: The threshold is outside (0, 1) or ``num_perm`` is not positive.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be between 0 and 1 (exclusive)")
    if num_perm < 1:
        raise ValueError("num_perm must be positive")
    low = np.linspace(0.0, threshold, _GRID)
    high = np.linspace(threshold, 1.0, _GRID)
    best = (1, num_perm)
    best_error = float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = np.trapezoid(1.0 - (1.0 - low**rows) ** bands, low)
            false_negative = np.trapezoid((1.0 - high**rows) ** bands, high)
            error = float(false_positive + false_negative)
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def band_keys(sig: npt.NDArray[np.uint64], bands: int, rows: int) -> list[bytes]:
    """One LSH bucket key per band: two bytes of band index, then 8 bytes of BLAKE2b of its rows.

    Two signatures share a key exactly when they agree on every row of that band (up to hash
    collisions), so a corpus-wide LSH index can store the keys and look candidates up by them.

    Args:
        sig: A signature from :func:`signature`.
        bands: Number of bands.
        rows: Rows per band (``bands * rows <= len(sig)``).

    Returns:
        ``bands`` keys of 10 bytes each.

    Raises:
        ValueError: The signature is shorter than ``bands * rows``.
    """
    if bands * rows > sig.size:
        raise ValueError(f"signature of {sig.size} values is too short for {bands} bands x {rows} rows")
    raw = np.ascontiguousarray(sig, dtype="<u8")
    return [
        band.to_bytes(2, "big")
        + hashlib.blake2b(raw[band * rows : (band + 1) * rows].tobytes(), digest_size=8).digest()
        for band in range(bands)
    ]
