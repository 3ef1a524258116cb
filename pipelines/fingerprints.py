"""Fingerprints of text for the dedup stage: one implementation of each.

- `words`: the normalisation every comparison uses. NFKC, case folded, and
  cut into Unicode word characters, so punctuation, spacing, quotes, case
  and encoding do not make two texts differ.
- `exact_key`: 128 bits of the normalised words; equal keys are exact duplicates.
- `minhash`: a MinHash signature of the set of word n-grams ("shingles"),
  `bands` x `rows` values; `band_keys` for locality-sensitive hashing (two
  documents become candidates when one band is equal); `sketch` keeps the
  low 8 bits of each value (b-bit minwise hashing, Li & Koenig 2010), what a
  candidate pair is verified with.
- `ngram_hashes`: hashes of every word n-gram, for decontamination.

Every hash is a keyed BLAKE2b or a fixed-constant mix of one, never
Python's hash() (salted per process): the same text gets the same
fingerprint in every process, runner and run. Nothing here imports Beam.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

_WORD = re.compile(r"\w+")
_MASK64 = (1 << 64) - 1
# The multiply-shift family of MinHash functions, h_j(x) = (a_j x + b_j) >> 32
# on 64-bit words: fixed constants of the algorithm, not a data seed, so
# signatures written by one run can be compared with another's.
_FAMILY = np.random.Generator(np.random.PCG64(20210512)).integers(0, 2**63, size=(2, 1024), dtype=np.uint64)
_A = _FAMILY[0] * np.uint64(2) + np.uint64(1)  # odd multipliers
_B = _FAMILY[1]
# Odd constants that weight the words of an n-gram by position.
_POSITION = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                      0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
                      0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                      0x8EBC6AF09C88C6E3, 0x589965CC75374CC3, 0x1D8E4E27C47D124F, 0xDB4F0B9175AE2165],
                     dtype=np.uint64)
_SKETCH_BLOCK = 4096  # shingles hashed at once: 4096 x 112 values, 3.6 MB
_WORD_CACHE_LIMIT = 1 << 20


def words(text: str) -> list[str]:
    """The normalised words of `text`."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def exact_key(document_words: Sequence[str]) -> bytes:
    """16 bytes that are equal for texts with the same normalised words."""
    return hashlib.blake2b(" ".join(document_words).encode("utf-8"), digest_size=16, person=b"exact").digest()


def paragraph_key(paragraph_words: Sequence[str]) -> int:
    """A 64-bit key of one paragraph's normalised words (boilerplate counting)."""
    digest = hashlib.blake2b(" ".join(paragraph_words).encode("utf-8"), digest_size=8, person=b"paragraph")
    return int.from_bytes(digest.digest(), "little")


class WordHasher:
    """64-bit hashes of words, memoised: a corpus repeats its words, and a
    BLAKE2b call costs ten times a dict lookup. The cache is bounded."""

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}

    def __call__(self, document_words: Iterable[str]) -> np.ndarray:
        cache = self._cache
        if len(cache) > _WORD_CACHE_LIMIT:
            cache.clear()
        values = []
        for word in document_words:
            value = cache.get(word)
            if value is None:
                value = cache[word] = int.from_bytes(
                    hashlib.blake2b(word.encode("utf-8"), digest_size=8, person=b"word").digest(), "little")
            values.append(value)
        return np.array(values, dtype=np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit hash of each window of `n` consecutive words (none when there
    are fewer than `n` words)."""
    count = len(word_hashes) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        total = np.zeros(count, dtype=np.uint64)
        for i in range(n):
            total += word_hashes[i:i + count] * _POSITION[i % len(_POSITION)] + np.uint64(i)
        return _mix(total)


def minhash(shingles: np.ndarray, num_hashes: int) -> np.ndarray:
    """The MinHash signature (uint32 x num_hashes) of a non-empty set of
    shingle hashes: for each function of the family, its least value."""
    a, b = _A[:num_hashes], _B[:num_hashes]
    signature = np.full(num_hashes, np.iinfo(np.uint64).max, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for at in range(0, len(shingles), _SKETCH_BLOCK):
            block = shingles[at:at + _SKETCH_BLOCK, None]
            np.minimum(signature, ((block * a + b) >> np.uint64(32)).min(axis=0), out=signature)
    return signature.astype(np.uint32)


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One 64-bit key per band of `rows` values; band i's key never equals band j's."""
    data = signature.astype("<u4").tobytes()
    width = 4 * rows
    return [int.from_bytes(hashlib.blake2b(data[i * width:(i + 1) * width], digest_size=8,
                                           person=b"band%d" % i).digest(), "little") for i in range(bands)]


def sketch(signature: np.ndarray) -> bytes:
    """The low 8 bits of each signature value."""
    return (signature & np.uint32(0xFF)).astype(np.uint8).tobytes()


_CHANCE = 1 / 256  # two 8-bit values of unequal minima agree by chance this often


def estimate_jaccard(a: bytes, b: bytes) -> float:
    """The Jaccard similarity of two shingle sets, from their sketches."""
    agree = np.count_nonzero(np.frombuffer(a, np.uint8) == np.frombuffer(b, np.uint8)) / len(a)
    return max(0.0, (agree - _CHANCE) / (1 - _CHANCE))


def acceptance(threshold: float, num_hashes: int) -> float:
    """The least estimate that verifies a candidate pair.

    An estimate from k values has a standard error of about
    sqrt(p (1 - p) / k); a pair whose true similarity is exactly the
    threshold would pass an estimate >= threshold only half the time. So a
    pair passes when its estimate is no more than 1.645 standard errors
    under the threshold: a pair at the threshold passes 95% of the time,
    and one further above almost always. Distinct texts (similarity near 0)
    are nowhere near it."""
    agree = _CHANCE + (1 - _CHANCE) * threshold
    error = math.sqrt(agree * (1 - agree) / num_hashes) / (1 - _CHANCE)
    return max(0.0, threshold - 1.645 * error)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """The chance that two sets of this Jaccard similarity share a band."""
    return 1 - (1 - similarity ** rows) ** bands


class Clusters:
    """Connected components of verified pairs (union-find), each led by its
    smallest id: what is kept of a cluster does not depend on the order the
    pairs come in. Holds only the ids that are in some pair."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def _root(self, item: str) -> str:
        parent = self._parent
        root = item
        while parent.get(root, root) != root:
            root = parent[root]
        while item != root:  # path compression
            parent[item], item = root, parent[item]
        return root

    def join(self, a: str, b: str) -> None:
        ra, rb = self._root(a), self._root(b)
        self._parent.setdefault(ra, ra)
        self._parent.setdefault(rb, rb)
        if ra != rb:
            low, high = (ra, rb) if ra < rb else (rb, ra)
            self._parent[high] = low

    def duplicates(self) -> dict[str, str]:
        """Every id that is not its cluster's smallest -> that smallest id."""
        return {item: root for item in sorted(self._parent) if (root := self._root(item)) != item}
