import numpy as np
import pytest

from tether.ingest._dedupe import band_keys, estimated_jaccard, lsh_params, signature

PARAGRAPH = (
    "The ingestion pipeline parses every file into blocks, packs the blocks into chunks that fit "
    "the token budget of the embedding model, and removes chunks that repeat text already stored "
    "elsewhere in the corpus, such as licence headers, navigation boilerplate or copied sections of "
    "a README that appear in many files of the same project."
)
OTHER = (
    "Calibration maps the raw support score of a candidate answer to a probability, fitted on a "
    "held-out set of questions with known answers, so that the abstention threshold means the same "
    "thing for every corpus and every embedding model the user might choose to configure."
)


def shares_band(a: np.ndarray, b: np.ndarray, bands: int, rows: int) -> bool:
    return bool(set(band_keys(a, bands, rows)) & set(band_keys(b, bands, rows)))


def test_signature_is_deterministic_uint64() -> None:
    a = signature(PARAGRAPH, 128)
    b = signature(PARAGRAPH, 128)
    assert a.dtype == np.uint64 and a.shape == (128,)
    assert np.array_equal(a, b)
    assert estimated_jaccard(a, b) == 1.0
    # case and punctuation do not matter: shingles are over lowercase words
    assert np.array_equal(signature(PARAGRAPH.upper().replace(",", ""), 128), a)


def test_near_duplicate_found_distinct_not() -> None:
    changed = PARAGRAPH.replace("navigation", "sidebar")
    bands, rows = lsh_params(0.8, 128)
    a, b, c = signature(PARAGRAPH, 128), signature(changed, 128), signature(OTHER, 128)
    assert estimated_jaccard(a, b) > 0.75
    assert estimated_jaccard(a, c) < 0.1
    assert shares_band(a, b, bands, rows)
    assert not shares_band(a, c, bands, rows)


def test_short_texts_use_word_sets() -> None:
    assert estimated_jaccard(signature("hello world", 64), signature("world hello", 64)) == 1.0
    assert estimated_jaccard(signature("hello world", 64), signature("other words", 64)) < 0.2


def test_lsh_params_sane() -> None:
    for threshold in (0.5, 0.8, 0.9):
        bands, rows = lsh_params(threshold, 128)
        assert bands * rows <= 128
        # the S-curve's steepest point (1/b)^(1/r) lies near the threshold
        assert abs((1 / bands) ** (1 / rows) - threshold) < 0.12
    assert lsh_params(0.9, 128)[1] > lsh_params(0.5, 128)[1]
    with pytest.raises(ValueError):
        lsh_params(1.0, 128)


def test_band_keys_shape_and_band_separation() -> None:
    sig = signature(PARAGRAPH, 128)
    keys = band_keys(sig, 16, 8)
    assert len(keys) == 16 and len(set(keys)) == 16
    assert all(isinstance(k, bytes) and len(k) == 10 for k in keys)
    # equal rows in different bands give different keys (band index is part of the key)
    same = np.zeros(128, dtype=np.uint64)
    assert len(set(band_keys(same, 16, 8))) == 16
    with pytest.raises(ValueError):
        band_keys(sig, 20, 8)


def test_estimated_jaccard_length_mismatch() -> None:
    with pytest.raises(ValueError):
        estimated_jaccard(signature("a b c", 64), signature("a b c", 128))


def test_signatures_equal_datasketch_minhash() -> None:
    """The datasketch scheme's batched signatures are datasketch's, value for value (the signatures stored by
    indexes made before the words64 scheme stay comparable)."""
    import random

    from datasketch import MinHash

    from tether.ingest._dedupe import _SCHEME, _SEED, _permutations, _shingles, signatures

    rng = random.Random(4)
    vocab = PARAGRAPH.split() + OTHER.split() + ["naïve", "covid-19", "3.5", "Ünïcode", "中文"]
    texts = ["", "!!!", "one", "two words", "a b c", PARAGRAPH, OTHER, "x " * 3000]
    texts += [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 300))) for _ in range(60)]
    for num_perm in (64, 128, 5):
        # the permutations Tether draws itself are datasketch's for the same seed
        a, b = _permutations(num_perm)
        want = MinHash(num_perm=num_perm, seed=_SEED, scheme=_SCHEME).permutations
        assert a.dtype == b.dtype == np.uint64
        assert np.array_equal(a, want[0]) and np.array_equal(b, want[1])
        got = signatures(texts, num_perm, "datasketch")
        assert got.dtype == np.uint64 and got.shape == (len(texts), num_perm)
        for text, sig in zip(texts, got, strict=True):
            m = MinHash(num_perm=num_perm, seed=_SEED, scheme=_SCHEME)
            shingles = _shingles(text)
            if shingles:
                m.update_batch(list(shingles))
            assert np.array_equal(sig, np.asarray(m.hashvalues, dtype=np.uint64))
            assert np.array_equal(signature(text, num_perm, "datasketch"), sig)


def _shingle_jaccard(a: str, b: str) -> float:
    from tether.ingest._dedupe import _shingles

    x, y = _shingles(a), _shingles(b)
    return len(x & y) / len(x | y) if x | y else 1.0


def test_words64_estimates_the_shingle_jaccard_as_well_as_datasketch() -> None:
    import random

    from tether.ingest._dedupe import signatures

    rng = random.Random(7)
    vocab = (PARAGRAPH + " " + OTHER).lower().replace(",", "").replace(".", "").split()
    errors: dict[str, list[float]] = {"words64": [], "datasketch": []}
    for _ in range(150):
        base = [rng.choice(vocab) for _ in range(rng.randint(30, 120))]
        other = [w if rng.random() > rng.choice((0.02, 0.1, 0.3)) else rng.choice(vocab) + "x" for w in base]
        a, b = " ".join(base), " ".join(other)
        true = _shingle_jaccard(a, b)
        for scheme, errs in errors.items():
            sa, sb = signatures([a, b], 128, scheme)  # type: ignore[arg-type]
            errs.append(estimated_jaccard(sa, sb) - true)
    for errs in errors.values():
        assert abs(float(np.mean(errs))) < 0.02 and float(np.std(errs)) < 0.06  # unbiased, and as tight
    # word order matters (shingles), and a text's signature does not depend on the texts batched with it
    assert estimated_jaccard(signature("a b c d e f", 64), signature("f e d c b a", 64)) < 0.2
    texts = ["", "one", "two words", "a b c", PARAGRAPH, OTHER, "x " * 3000]
    batched = signatures(texts, 64)
    for text, sig in zip(texts, batched, strict=True):
        assert np.array_equal(signatures([text], 64)[0], sig)
    assert np.all(batched[0] == np.iinfo(np.uint64).max)  # no words: the empty set


def test_unknown_scheme_is_an_error() -> None:
    from tether.ingest._dedupe import signatures

    with pytest.raises(ValueError, match="unknown MinHash scheme"):
        signatures(["a b c"], 64, "md5")  # type: ignore[arg-type]
