"""The dedup stage's fingerprints: normalisation, MinHash estimates, verification, clusters."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from albertprep.pipelines import fingerprints as fp


def test_words_ignore_case_punctuation_spacing_and_compatibility_forms():
    assert fp.words("Hello,  WORLD! It's a \ufb01ne day…") == ["hello", "world", "it", "s", "a", "fine", "day"]
    same = fp.exact_key(fp.words("The cat sat on the mat."))
    assert fp.exact_key(fp.words("the CAT  sat -- on the mat")) == same
    assert fp.exact_key(fp.words("The cat sat on the hat.")) != same


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
    hasher = fp.WordHasher()
    assert len(fp.ngram_hashes(hasher(["a", "b", "c", "d"]), 5)) == 0
    forward = fp.ngram_hashes(hasher(list("abcdef")), 5)
    assert len(forward) == 2
    assert not set(forward) & set(fp.ngram_hashes(hasher(list("fedcba")), 5))


def test_fingerprints_are_the_same_in_every_process():
    code = ("from albertprep.pipelines import fingerprints as fp; h = fp.WordHasher(); "
            "s = fp.minhash(fp.ngram_hashes(h(fp.words('one two three four five six seven eight')), 5), 112); "
            "print(fp.band_keys(s, 16, 7)[0], fp.exact_key(fp.words('x y')).hex())")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outputs) == 1
    hasher = fp.WordHasher()
    signature = fp.minhash(fp.ngram_hashes(hasher(fp.words("one two three four five six seven eight")), 5), 112)
    assert outputs == {f"{fp.band_keys(signature, 16, 7)[0]} {fp.exact_key(fp.words('x y')).hex()}\n"}


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_clusters_keep_the_smallest_id_whatever_the_order_of_pairs(order):
    pairs = [("d", "c"), ("c", "b"), ("x", "y"), ("b", "e")]
    clusters = fp.Clusters()
    for i in order:
        clusters.join(*pairs[i])
    assert clusters.duplicates() == {"c": "b", "d": "b", "e": "b", "y": "x"}
