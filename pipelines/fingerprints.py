"""Fingerprints of text for the dedup stage: one implementation of each.

- `TextWords`: the normalisation every comparison uses, and a 64-bit hash
  of each word. Text is NFKC-normalised and case folded, then cut into runs
  of word characters (Unicode letters and digits, and `_`: what `\\w`
  matches), so punctuation, spacing, case, compatibility forms and encoding
  do not make two texts differ. Hashing is vectorised over code points (a
  polynomial hash of each word, mixed): one pass of NumPy over the text,
  not a Python call per word.
- `exact_key`: 128 bits of the words; equal keys are exact duplicates.
- `minhash`: a MinHash signature of the set of word n-grams ("shingles"),
  `bands` x `rows` values; `band_keys` for locality-sensitive hashing (two
  documents become candidates when one band is equal); `sketch` keeps the
  low 8 bits of each value (b-bit minwise hashing, Li & Koenig 2010), what a
  candidate pair is verified with.
- `ngram_hashes`: hashes of every word n-gram, shingles and decontamination alike.

Every hash is a keyed BLAKE2b or a fixed-constant function, never Python's
hash() (salted per process): the same text gets the same fingerprint in
every process, runner and run. Nothing here imports Beam.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import unicodedata
from collections.abc import Sequence

import numpy as np

# Odd constants that weight the words of an n-gram by position.
_POSITION = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                      0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
                      0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                      0x8EBC6AF09C88C6E3, 0x589965CC75374CC3, 0x1D8E4E27C47D124F, 0xDB4F0B9175AE2165],
                     dtype=np.uint64)
_BASE = 0x100000001B3  # the polynomial's base (FNV's prime): odd, so invertible modulo 2**64
_CHUNK = 1 << 20  # code points hashed at once: bounds the arrays, whatever the text's length


def _inverse(odd: int) -> int:
    inverse = odd  # Newton's iteration for the inverse modulo 2**64
    for _ in range(6):
        inverse = inverse * (2 - odd * inverse) % (1 << 64)
    return inverse


def _powers(base: int, count: int) -> np.ndarray:
    powers = np.empty(count, dtype=np.uint64)
    powers[0] = 1
    with np.errstate(over="ignore"):
        powers[1:] = base
        return np.cumprod(powers, dtype=np.uint64)


_POWERS = _INVERSE_POWERS = None
_IS_WORD = None  # per code point below 2**16; every code point above is a word character


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    global _POWERS, _INVERSE_POWERS, _IS_WORD
    if _IS_WORD is None:
        _POWERS = _powers(_BASE, _CHUNK + 1)
        _INVERSE_POWERS = _powers(_inverse(_BASE), _CHUNK + 1)
        _IS_WORD = np.array([chr(c).isalnum() or c == 95 for c in range(1 << 16)], dtype=bool)
    return _POWERS, _INVERSE_POWERS, _IS_WORD


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _chunk_words(code_points: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, start offset) of each word of a chunk of at most _CHUNK code points."""
    powers, inverse_powers, is_word_table = _tables()
    n = len(code_points)
    is_word = np.ones(n, dtype=bool)
    low = code_points < 0x10000
    is_word[low] = is_word_table[code_points[low]]
    edges = np.diff(np.concatenate(([False], is_word, [False])).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(code_points.astype(np.uint64) * powers[:n], out=prefix[1:])
        raw = (prefix[ends] - prefix[starts]) * inverse_powers[starts]
        lengths = (ends - starts).astype(np.uint64)
        return _mix(raw ^ (lengths * np.uint64(0x9E3779B97F4A7C15))), starts + offset


def _cut(code_points: np.ndarray, limit: int) -> int:
    """Where to end a chunk of at most `limit` code points: after its last
    space or newline, so no word is cut (anywhere, if it has none)."""
    if len(code_points) <= limit:
        return len(code_points)
    window = code_points[:limit]
    spaces = np.flatnonzero((window == 32) | (window == 10))
    return int(spaces[-1]) + 1 if len(spaces) else limit


@dataclasses.dataclass(frozen=True)
class TextWords:
    """The words of a text made of pieces (sentences), as hashes, and where
    each piece's words begin: `bounds[i]:bounds[i + 1]` are piece i's."""

    hashes: np.ndarray  # uint64, one per word
    bounds: np.ndarray  # int64, len(pieces) + 1

    @classmethod
    def of(cls, pieces: Sequence[str]) -> TextWords:
        normalized = [normalize(piece) for piece in pieces]
        text = "\n".join(normalized)  # a separator no word crosses: pieces never share a word
        code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        hashes, starts = [], []
        at = 0
        while at < len(code_points):
            end = at + _cut(code_points[at:], _CHUNK)
            chunk_hashes, chunk_starts = _chunk_words(code_points[at:end], at)
            hashes.append(chunk_hashes)
            starts.append(chunk_starts)
            at = end
        word_hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        word_starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        piece_starts = np.cumsum([0] + [len(p) + 1 for p in normalized])
        return cls(word_hashes, np.searchsorted(word_starts, piece_starts).astype(np.int64))


def exact_key(word_hashes: np.ndarray) -> bytes:
    """16 bytes that are equal for texts with the same normalised words."""
    return hashlib.blake2b(word_hashes.astype("<u8").tobytes(), digest_size=16, person=b"exact").digest()


def span_keys(word_hashes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit key of the words [start, end) of each span, all at once:
    the mixed sum of each word's hash mixed with its place in the span, and
    the span's length. Equal spans of words get equal keys; an empty span 0."""
    lengths = (ends - starts).astype(np.int64)
    keys = np.zeros(len(starts), dtype=np.uint64)
    filled = lengths > 0
    if not filled.any():
        return keys
    counts = lengths[filled]
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    place = np.arange(int(counts.sum())) - np.repeat(offsets, counts)  # each word's place in its span
    words = np.repeat(starts[filled], counts) + place
    with np.errstate(over="ignore"):
        mixed = _mix(word_hashes[words] ^ (place.astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)))
        sums = np.add.reduceat(mixed, offsets)
        keys[filled] = _mix(sums + lengths[filled].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    return keys


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
    shingle hashes, by one-permutation hashing (Li, Owen and Zhang 2012):
    each shingle is hashed once, into one of `num_hashes` bins by its high
    bits, and a bin keeps its least low bits. Two sets agree in a bin with
    probability their Jaccard similarity, as with `num_hashes` separate
    permutations, at the cost of one hash a shingle instead of `num_hashes`.
    A bin that no shingle fell in (a short text) takes the value of the
    first filled bin on its own fixed probe sequence ("optimal
    densification", Shrivastava 2017), which keeps that probability."""
    hashed = _mix(shingles ^ _SALT)
    with np.errstate(over="ignore"):
        bins = ((hashed >> np.uint64(32)) * np.uint64(num_hashes)) >> np.uint64(32)
    signature = np.full(num_hashes, _EMPTY, dtype=np.uint64)
    np.minimum.at(signature, bins.astype(np.intp), hashed & np.uint64(0xFFFFFFFF))
    empty = np.flatnonzero(signature == _EMPTY)
    if len(empty):
        filled = signature != _EMPTY
        probes = _probes(num_hashes)[empty]  # empty bins x probe sequence
        hit = filled[probes]
        first = hit.argmax(axis=1)
        source = probes[np.arange(len(empty)), first]
        for row in np.flatnonzero(~hit.any(axis=1)).tolist():  # no probe hit: the next filled bin
            source[row] = next((empty[row] + step) % num_hashes for step in range(1, num_hashes + 1)
                               if filled[(empty[row] + step) % num_hashes])
        signature[empty] = signature[source]
    return signature.astype(np.uint32)


_SALT = np.uint64(0x2545F4914F6CDD1D)
_EMPTY = np.uint64(1 << 32)
_PROBE_COUNT = 64
_PROBE_CACHE: dict[int, np.ndarray] = {}


def _probes(num_hashes: int) -> np.ndarray:
    """Each bin's fixed sequence of other bins to borrow from (a constant of the algorithm)."""
    if num_hashes not in _PROBE_CACHE:
        rng = np.random.Generator(np.random.PCG64(num_hashes))
        _PROBE_CACHE[num_hashes] = rng.integers(0, num_hashes, size=(num_hashes, _PROBE_COUNT))
    return _PROBE_CACHE[num_hashes]


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
