"""The instance record format and ALBERT's n-gram masking: one owner.

The pipeline writes records with `encode`; the loader reads them with
`decode_features` and, for dynamic masking, masks again with `mask_instance`.
Nothing here imports Beam, so the loader pulls in only NumPy.

A record stores what cannot be derived, compactly (little-endian):

    offset  size       field
    0       1          format version (RECORD_VERSION)
    1       1          flags: bit 0 set = token ids are uint32, else uint16
    2       2          L, tokens in `[CLS] A [SEP] B [SEP]` (unpadded)
    4       2          len(A)
    6       1          sentence-order label: 1 = swapped, 0 = natural order
    7       1          M, masked positions
    8       L*w        input ids, masked (w = 2 or 4 bytes)
            ceil(L/8)  word-start bits (numpy packbits, little bit order)
            M*2        masked positions, ascending (uint16)
            M*w        original ids at those positions

input_mask, segment_ids and masked_lm_weights are derived when decoding.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import itertools
import struct

import numpy as np

from albertprep.core.options import setting

RECORD_VERSION = 1
# The seven features of an instance, in google-research/albert's order (its
# `next_sentence_labels` is our `sentence_order_label`): named once, here.
FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
                 "masked_lm_weights", "sentence_order_label")
_HEADER = struct.Struct("<BBHHBB")
_FLAG_UINT32 = 1

# Replacement kinds of a masked position, in the order ALBERT draws them.
MASK, RANDOM, KEEP = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Instance:
    """One ALBERT example before padding: ids hold the masked input."""

    input_ids: np.ndarray  # [L] int, [CLS] A [SEP] B [SEP]
    word_starts: np.ndarray  # [L] bool
    len_a: int
    sop_label: int
    masked_positions: np.ndarray  # [M] ascending
    masked_ids: np.ndarray  # [M] original ids at masked_positions

    def original_ids(self) -> np.ndarray:
        ids = self.input_ids.copy()
        ids[self.masked_positions] = self.masked_ids
        return ids


def encode(instance: Instance, vocab_size: int) -> bytes:
    wide = vocab_size > 1 << 16
    dtype = "<u4" if wide else "<u2"
    length = len(instance.input_ids)
    masked = len(instance.masked_positions)
    if length >= 1 << 16 or masked >= 1 << 8:
        raise ValueError(f"instance too long for the record format: {length} tokens, {masked} masked")
    return b"".join((
        _HEADER.pack(RECORD_VERSION, _FLAG_UINT32 if wide else 0, length, instance.len_a, instance.sop_label, masked),
        np.asarray(instance.input_ids, dtype).tobytes(),
        np.packbits(np.asarray(instance.word_starts, bool), bitorder="little").tobytes(),
        np.asarray(instance.masked_positions, "<u2").tobytes(),
        np.asarray(instance.masked_ids, dtype).tobytes(),
    ))


def decode(record: bytes) -> Instance:
    version, flags, length, len_a, sop_label, masked = _HEADER.unpack_from(record)
    if version != RECORD_VERSION:
        raise ValueError(f"record format version {version}, this code reads {RECORD_VERSION}")
    width = 4 if flags & _FLAG_UINT32 else 2
    dtype = "<u4" if width == 4 else "<u2"
    offset = _HEADER.size
    ids = np.frombuffer(record, dtype, length, offset)
    offset += length * width
    bits = np.frombuffer(record, np.uint8, (length + 7) // 8, offset)
    word_starts = np.unpackbits(bits, count=length, bitorder="little").astype(bool)
    offset += len(bits)
    positions = np.frombuffer(record, "<u2", masked, offset)
    offset += masked * 2
    masked_ids = np.frombuffer(record, dtype, masked, offset)
    return Instance(ids, word_starts, len_a, sop_label, positions, masked_ids)


@dataclasses.dataclass(frozen=True)
class FeatureLayout:
    """The padded shapes of ALBERT's features."""

    max_seq_length: int = 512
    max_predictions_per_seq: int = 20


def to_features(instance: Instance, layout: FeatureLayout) -> dict[str, np.ndarray]:
    """The padded feature dict of google-research/albert's TF examples."""
    length = len(instance.input_ids)
    input_ids = np.zeros(layout.max_seq_length, np.int32)
    input_ids[:length] = instance.input_ids
    input_mask = np.zeros(layout.max_seq_length, np.int32)
    input_mask[:length] = 1
    segment_ids = np.zeros(layout.max_seq_length, np.int32)
    segment_ids[instance.len_a + 2 : length] = 1
    masked = len(instance.masked_positions)
    positions = np.zeros(layout.max_predictions_per_seq, np.int32)
    positions[:masked] = instance.masked_positions
    ids = np.zeros(layout.max_predictions_per_seq, np.int32)
    ids[:masked] = instance.masked_ids
    weights = np.zeros(layout.max_predictions_per_seq, np.float32)
    weights[:masked] = 1.0
    return {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
        "masked_lm_positions": positions,
        "masked_lm_ids": ids,
        "masked_lm_weights": weights,
        "sentence_order_label": np.int32(instance.sop_label),
    }


def decode_features(record: bytes, layout: FeatureLayout) -> dict[str, np.ndarray]:
    return to_features(decode(record), layout)


# --- randomness -------------------------------------------------------------


def rng_for(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator seeded by (seed, document id, duplicate index, ...) alone.

    Nothing depends on processing order or on a global RNG, so every runner
    and worker count draws the same numbers for the same document.
    """
    digest = hashlib.sha256("\x00".join(map(str, (seed, *parts))).encode("utf-8")).digest()
    return np.random.Generator(np.random.PCG64(np.frombuffer(digest, np.uint32)))


def stable_hash(*parts: str | int) -> int:
    """A 64-bit hash of the parts, the same in every process (unlike hash())."""
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


# --- masking ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    max_predictions_per_seq: int = setting(20, "masked positions per instance, at most (ALBERT: 20)")
    masked_lm_prob: float = setting(0.15, "share of an instance's tokens masked, up to --max-predictions-per-seq")
    max_ngram: int = setting(3, "longest masked span, in words (p(n) ∝ 1/n)")


@dataclasses.dataclass(frozen=True)
class MaskingVocab:
    mask_id: int
    random_ids: np.ndarray  # what a RANDOM replacement draws from: the non-control pieces

    @functools.cached_property
    def random_list(self) -> list[int]:
        """random_ids as Python ints: masking picks one at a time."""
        return self.random_ids.tolist()


@dataclasses.dataclass
class MaskingStats:
    """What masking did, for the manifest's statistics and the tests."""

    ngram_counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))
    # spans that had the whole choice of lengths (max_ngram words left in
    # the segment, budget for any of them): their lengths follow p(n) ∝ 1/n
    free_ngram_counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))
    replacement_counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(3, np.int64))
    masked_tokens: int = 0
    maskable_tokens: int = 0

    def merge(self, other: MaskingStats) -> None:
        self.ngram_counts += other.ngram_counts
        self.free_ngram_counts += other.free_ngram_counts
        self.replacement_counts += other.replacement_counts
        self.masked_tokens += other.masked_tokens
        self.maskable_tokens += other.maskable_tokens


def _words(word_starts: np.ndarray, len_a: int, length: int) -> tuple[list[int], list[int], int]:
    """Word starts and ends, and how many words A has; words never cross [SEP].

    A segment's first token starts a word even if truncation cut the `▁`
    piece before it. A word ends where the next begins, or at its [SEP].
    """
    starts = word_starts.copy()
    starts[[0, len_a + 1, length - 1]] = False  # [CLS], [SEP], [SEP]
    starts[[1, len_a + 2]] = True
    word_start = np.flatnonzero(starts).tolist()
    words_in_a = bisect.bisect_left(word_start, len_a + 1)
    word_end = word_start[1:]
    word_end.append(length - 1)
    word_end[words_in_a - 1] = len_a + 1
    return word_start, word_end, words_in_a


@functools.lru_cache
def _length_cdfs(max_ngram: int) -> list[list[float]]:
    """cdfs[k]: the cumulative p(n) ∝ 1/n over n = 1..k+1."""
    weights = [1.0 / n for n in range(1, max_ngram + 1)]
    cdfs = []
    for k in range(1, max_ngram + 1):
        total = sum(weights[:k])
        cdfs.append(list(itertools.accumulate(w / total for w in weights[:k])))
    return cdfs


def mask_instance(
    original_ids: np.ndarray,
    word_starts: np.ndarray,
    len_a: int,
    rng: np.random.Generator,
    config: MaskingConfig,
    vocab: MaskingVocab,
    stats: MaskingStats | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ALBERT's whole-word n-gram masking: (input ids, positions, original ids).

    As google-research/albert: the budget is min(max_predictions,
    max(1, round(L * masked_lm_prob))); word n-grams start at shuffled
    words, n drawn with p(n) ∝ 1/n, shortened while over budget; each
    masked token becomes [MASK] 80%, a random piece 10%, itself 10%.
    Two deliberate differences: an n-gram never crosses [SEP], and a start
    is rejected when any of its max_ngram-word window is already masked
    (not only its drawn n words), so acceptance does not depend on n and
    masked spans keep the 1/n distribution. Every instance gets exactly its
    budget, as ALBERT's do (see the fill at the end).

    The random numbers are one block drawn up front, a fixed number per
    instance: two per candidate word (its place in the shuffle and its
    n-gram length) and two per masked position (its replacement kind and
    the random piece), which is as reproducible as drawing them one at a
    time and several times faster. The shuffle is Fisher-Yates done lazily:
    only as far as the words visited (about as many as the budget).
    """
    length = len(original_ids)
    word_start, word_end, words_in_a = _words(word_starts, len_a, length)
    num_words = len(word_start)
    max_ngram = config.max_ngram
    budget = min(config.max_predictions_per_seq, max(1, int(round(length * config.masked_lm_prob))))
    cdfs = _length_cdfs(config.max_ngram)
    # Only the draws of the words visited are read (about as many as the
    # budget), so the block stays an array and is read an element at a time.
    draws = rng.random(2 * num_words + 2 * budget)
    kind_draws, pick_draws = draws[2 * num_words:].tolist(), draws[2 * num_words + budget:].tolist()
    random_list = vocab.random_list
    random_count = len(random_list)
    mask_id = vocab.mask_id
    moved: dict[int, int] = {}  # the lazy shuffle: place -> word, where they differ
    covered = bytearray(length)
    replacements: dict[int, int] = {}
    kinds = [0, 0, 0]
    ngram_counts = [0] * (max_ngram + 1)
    free_counts = [0] * (max_ngram + 1)

    def take(index: int) -> None:
        covered[index] = 1
        slot = len(replacements)
        draw = kind_draws[slot]
        if draw < 0.8:
            kinds[MASK] += 1
            replacements[index] = mask_id
        elif draw < 0.9:
            kinds[RANDOM] += 1
            replacements[index] = random_list[int(pick_draws[slot] * random_count)]
        else:
            kinds[KEEP] += 1
            replacements[index] = -1

    masked = shuffled = 0
    for step in range(num_words):
        if masked >= budget:
            break
        shuffled = step + 1
        swap = step + int(draws[step] * (num_words - step))  # Fisher-Yates, one place at a time
        w = moved.get(swap, swap)
        moved[swap] = moved.get(step, step)
        last_of_segment = words_in_a - 1 if w < words_in_a else num_words - 1
        available = min(max_ngram, last_of_segment - w + 1)
        start, window_end = word_start[w], word_end[w + available - 1]
        if 1 in covered[start:window_end]:
            continue
        drawn = n = bisect.bisect_right(cdfs[available - 1], draws[num_words + step]) + 1
        while n > 0 and masked + (word_end[w + n - 1] - start) > budget:
            n -= 1
        if n == 0:
            continue
        end = word_end[w + n - 1]
        ngram_counts[n] += 1
        if available == max_ngram and masked + (window_end - start) <= budget:
            free_counts[drawn] += 1
        for index in range(start, end):
            take(index)
        masked += end - start
    if masked < budget:
        # Every word left is longer than the budget left, or its window is
        # taken (short instances of long words: URLs, numbers, names). The
        # budget is met anyway, as ALBERT's always is: the words are visited
        # again in the shuffled order and their unmasked pieces taken from
        # the start, so only the last span can end inside a word.
        order = [moved.get(place, place) for place in range(num_words)]
        for step in range(shuffled, num_words):  # the rest of the shuffle first
            swap = step + int(draws[step] * (num_words - step))
            order[step], order[swap] = order[swap], order[step]
        for w in order:
            if len(replacements) >= budget:
                break
            for index in range(word_start[w], word_end[w]):
                if len(replacements) >= budget:
                    break
                if not covered[index]:
                    take(index)
    positions = sorted(replacements)
    input_ids = np.array(original_ids, copy=True)
    changed = [p for p in positions if replacements[p] >= 0]
    input_ids[changed] = [replacements[p] for p in changed]
    if stats is not None:
        for n in range(1, max_ngram + 1):
            if ngram_counts[n]:
                stats.ngram_counts[n] += ngram_counts[n]
            if free_counts[n]:
                stats.free_ngram_counts[n] += free_counts[n]
        stats.replacement_counts += kinds
        stats.masked_tokens += len(positions)
        stats.maskable_tokens += length - 3
    positions_array = np.array(positions, np.int64)
    return input_ids, positions_array, np.asarray(original_ids)[positions_array]
