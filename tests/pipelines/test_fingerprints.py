"""The dedup stage's fingerprints: normalisation, MinHash estimates, verification, clusters."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from albertprep.pipelines import fingerprints as fp


def _hashes(*pieces: str) -> list[int]:
    return fp.TextWords.of(pieces).hashes.tolist()


def test_words_ignore_case_punctuation_spacing_and_compatibility_forms():
    words = _hashes("Hello,  WORLD! It's a \ufb01ne day…")
    assert words == _hashes("hello world it s a fine day")
    assert len(set(words)) == 7
    assert _hashes("Café — naïve") == _hashes("CAFÉ naïve")  # composed or not, upper or lower
    assert _hashes("straße") == _hashes("STRASSE")  # case folded, not just lowered
    assert _hashes("ab") != _hashes("ba") and _hashes("a b") != _hashes("ab")
    same = fp.exact_key(fp.TextWords.of(["The cat sat on the mat."]).hashes)
    assert fp.exact_key(fp.TextWords.of(["the CAT  sat --", "on the mat"]).hashes) == same
    assert fp.exact_key(fp.TextWords.of(["The cat sat on the hat."]).hashes) != same


def test_words_know_their_sentences_and_long_texts_are_cut_between_words():
    words = fp.TextWords.of(["One two.", "", "Three, four five!"])
    assert words.bounds.tolist() == [0, 2, 2, 5]
    assert words.hashes[words.bounds[2]:words.bounds[3]].tolist() == _hashes("three four five")
    long = " ".join(f"w{i % 1000}" for i in range(400_000))  # over one chunk of code points
    assert fp.TextWords.of([long]).hashes.tolist() == [_hashes(f"w{i}")[0] for i in range(1000)] * 400


def _pair(similarity: float, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two sets of random 64-bit shingles with exactly this Jaccard similarity."""
    union = rng.integers(0, 2**63, size=size, dtype=np.uint64)
    common = int(round(similarity * size))
    rest = size - common
    return union[: common + rest // 2], np.concatenate([union[:common], union[common + rest // 2:]])


def _estimate(a: np.ndarray, b: np.ndarray, num_hashes: int = 112) -> float:
    return fp.estimate_jaccard(fp.sketch(fp.minhash(a, num_hashes)), fp.sketch(fp.minhash(b, num_hashes)))


def test_sketch_estimates_the_jaccard_similarity_within_its_standard_error():
    rng = np.random.default_rng(0)
    for similarity in (0.0, 0.3, 0.6, 0.8, 0.95, 1.0):
        estimates = np.array([_estimate(*_pair(similarity, 2000, rng)) for _ in range(40)])
        error = np.sqrt(max(similarity * (1 - similarity), 0.01) / 112)
        assert abs(estimates.mean() - similarity) < 2 * error, similarity  # unbiased, b-bit chance removed
        assert np.all(np.abs(estimates - similarity) < 5 * error), similarity


def test_verification_passes_pairs_at_the_threshold_and_not_distinct_texts():
    rng = np.random.default_rng(1)
    accept = fp.acceptance(0.8, 112)
    at_threshold = [_estimate(*_pair(0.8, 3000, rng)) >= accept for _ in range(300)]
    assert 0.9 <= np.mean(at_threshold) <= 0.99  # designed for 0.95
    assert not any(_estimate(*_pair(0.4, 3000, rng)) >= accept for _ in range(100))
    # and a pair at the threshold becomes a candidate (shares a band) almost always
    assert fp.candidate_probability(0.8, 16, 7) > 0.97
    assert fp.candidate_probability(0.1, 16, 7) < 1e-5


def test_band_keys_are_equal_exactly_when_the_band_is():
    rng = np.random.default_rng(2)
    signature = fp.minhash(rng.integers(0, 2**63, size=500, dtype=np.uint64), 112)
    other = signature.copy()
    other[3] += 1  # band 0 differs
    a, b = fp.band_keys(signature, 16, 7), fp.band_keys(other, 16, 7)
    assert a[0] != b[0] and a[1:] == b[1:]
    assert len(set(a)) == 16  # bands of equal values still have their own keys


def test_shingles_need_enough_words_and_follow_word_order():
    assert len(fp.ngram_hashes(fp.TextWords.of(["a b c d"]).hashes, 5)) == 0
    forward = fp.ngram_hashes(fp.TextWords.of(["a b c d e f"]).hashes, 5)
    assert len(forward) == 2
    assert not set(forward) & set(fp.ngram_hashes(fp.TextWords.of(["f e d c b a"]).hashes, 5))


def test_fingerprints_are_the_same_in_every_process():
    code = ("from albertprep.pipelines import fingerprints as fp; w = fp.TextWords.of(['one two three four five six']);"
            "s = fp.minhash(fp.ngram_hashes(w.hashes, 5), 112); "
            "print(fp.band_keys(s, 16, 7)[0], fp.exact_key(w.hashes).hex())")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outputs) == 1
    words = fp.TextWords.of(["one two three four five six"])
    signature = fp.minhash(fp.ngram_hashes(words.hashes, 5), 112)
    assert outputs == {f"{fp.band_keys(signature, 16, 7)[0]} {fp.exact_key(words.hashes).hex()}\n"}


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_clusters_keep_the_smallest_id_whatever_the_order_of_pairs(order):
    pairs = [("d", "c"), ("c", "b"), ("x", "y"), ("b", "e")]
    clusters = fp.Clusters()
    for i in order:
        clusters.join(*pairs[i])
    assert clusters.duplicates() == {"c": "b", "d": "b", "e": "b", "y": "x"}


def test_span_keys_are_equal_exactly_for_equal_words():
    words = fp.TextWords.of(["a b c", "a b c", "a c b", "x", "", "a b c d"])
    keys = fp.span_keys(words.hashes, words.bounds[:-1], words.bounds[1:]).tolist()
    assert keys[0] == keys[1] and len(set(keys[1:4] + keys[5:])) == 4
    assert keys[4] == 0  # an empty sentence


def test_lone_surrogates_are_hashed_not_fatal():
    assert len(fp.TextWords.of(["a \ud800 b"]).hashes) == 2  # not a word character: a separator
