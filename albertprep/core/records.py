"""The instance record format and ALBERT's n-gram masking: one owner.

The pipeline masks a batch of instances with `mask_flat` and writes their
records with `encode_flat` (`encode` for one); the loader reads them with
`decode_features` and, for dynamic masking, masks again with `mask_batch`.
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

import dataclasses
import functools
import hashlib
import itertools
import struct
from typing import NamedTuple

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


def encode_many(instances: list[Instance], vocab_size: int) -> list[bytes]:
    """`encode` of each instance, the same bytes (by `encode_flat`)."""
    if not instances:
        return []
    rows = len(instances)
    flat = FlatInstances(np.concatenate([i.input_ids for i in instances]),
                         np.concatenate([i.word_starts for i in instances]),
                         np.fromiter((len(i.input_ids) for i in instances), np.int64, rows),
                         np.fromiter((i.len_a for i in instances), np.int64, rows))
    # encode_flat reads the input ids from the masks: flat.original_ids is not read
    masks = FlatMasks(flat.original_ids, np.concatenate([i.masked_positions for i in instances]),
                      np.concatenate([i.masked_ids for i in instances]),
                      np.fromiter((len(i.masked_positions) for i in instances), np.int64, rows))
    return encode_flat(flat, masks, np.fromiter((i.sop_label for i in instances), np.int64, rows), vocab_size)


_HEADER_DTYPE = np.dtype([("version", "u1"), ("flags", "u1"), ("length", "<u2"), ("len_a", "<u2"),
                          ("sop_label", "u1"), ("masked", "u1")])
assert _HEADER_DTYPE.itemsize == _HEADER.size


def cut(array: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """`array`'s runs of lengths[0], lengths[1], ... laid end to end, as views
    (np.split costs 2 us a piece)."""
    ends = np.cumsum(lengths).tolist()
    return [array[a:b] for a, b in zip([0, *ends[:-1]], ends)]


def ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """0..n-1 for each n of `lengths`, end to end: the index within its run of
    each element of runs laid out one after another."""
    total = int(lengths.sum())
    return np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def encode_flat(flat: FlatInstances, masks: FlatMasks, sop_labels: np.ndarray, vocab_size: int) -> list[bytes]:
    """`encode` of each instance of a masked FlatInstances, the same bytes:
    each field converted (and the word starts bit-packed) for all records at
    once, then each record joined from its five slices (1-4 us a record at
    128-512 tokens; a NumPy gather of every byte took twice that)."""
    rows = len(flat.lengths)
    if not rows:
        return []
    wide = vocab_size > 1 << 16
    dtype, width = ("<u4", 4) if wide else ("<u2", 2)
    lengths, masked = flat.lengths, masks.counts
    if lengths.max() >= 1 << 16 or masked.max() >= 1 << 8:
        raise ValueError(f"instance too long for the record format: {lengths.max()} tokens, {masked.max()} masked")
    header = np.zeros(rows, _HEADER_DTYPE)
    header["version"], header["flags"] = RECORD_VERSION, _FLAG_UINT32 if wide else 0
    header["length"], header["len_a"], header["sop_label"], header["masked"] = lengths, flat.len_a, sop_labels, masked
    # Word-start bits: each record's own bytes, so each row padded to a whole
    # byte; packed as a grid of rows as wide as the longest (a scatter of every
    # bit to its padded place took twice as long).
    stride = (int(lengths.max()) + 7) // 8
    grid = np.zeros((rows, 8 * stride), bool)
    grid[np.arange(8 * stride) < lengths[:, None]] = flat.word_starts
    packed = np.packbits(grid, axis=1, bitorder="little").tobytes()
    headers, ids = header.tobytes(), masks.input_ids.astype(dtype).tobytes()
    positions, originals = masks.positions.astype("<u2").tobytes(), masks.originals.astype(dtype).tobytes()
    out = []
    join, size = b"".join, _HEADER.size
    h = t0 = m0 = b0 = 0
    for t1, packed_bytes, m1 in zip((np.cumsum(lengths) * width).tolist(), ((lengths + 7) // 8).tolist(),
                                    np.cumsum(masked).tolist()):
        out.append(join((headers[h:h + size], ids[t0:t1], packed[b0:b0 + packed_bytes], positions[2 * m0:2 * m1],
                         originals[width * m0:width * m1])))
        h, t0, m0, b0 = h + size, t1, m1, b0 + stride
    return out


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


def _digest(parts: tuple) -> bytes:
    return hashlib.sha256("\x00".join(map(str, parts)).encode("utf-8")).digest()


def _pcg_state(digest: bytes) -> dict:
    # PCG64 takes any 128-bit state and any odd increment: both come straight
    # from the sha256 of the seed parts, already uniform, so no SeedSequence
    # (which costs ~20 us a generator) is needed to spread them.
    return {"bit_generator": "PCG64", "state": {"state": int.from_bytes(digest[:16], "little"),
                                                "inc": int.from_bytes(digest[16:], "little") | 1},
            "has_uint32": 0, "uinteger": 0}


def rng_for(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator seeded by (seed, document id, duplicate index, ...) alone.

    Nothing depends on processing order or on a global RNG, so every runner
    and worker count draws the same numbers for the same document.
    """
    bits = np.random.PCG64()
    bits.state = _pcg_state(_digest((seed, *parts)))
    return np.random.Generator(bits)


class Reseeder:
    """`rng_for`'s generators, one at a time: calling it reseeds one generator
    in place (3 us) instead of making a new one (25-35 us, a cost paid per
    document pass or per record). The generator it returned last is the one
    it returns next, reseeded: use each before asking for the next."""

    def __init__(self):
        self._bits = np.random.PCG64()
        self._rng = np.random.Generator(self._bits)

    def __call__(self, seed: int, *parts: str | int) -> np.random.Generator:
        self._bits.state = _pcg_state(_digest((seed, *parts)))
        return self._rng


def stable_hash(*parts: str | int) -> int:
    """A 64-bit hash of the parts, the same in every process (unlike hash())."""
    return int.from_bytes(_digest(parts)[:8], "little")


def derived_keys(keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """counts[i] 64-bit keys derived from each keys[i] (uint64), end to end:
    SplitMix64's output function of key + (k + 1) * golden gamma for k <
    count, in one NumPy pass. A document pass's instances take their keys
    (shard and order) from the pass's stable_hash this way, a batch of passes
    at once: a sha256 per instance cost 2 us."""
    with np.errstate(over="ignore"):
        steps = (ragged_arange(counts) + 1).astype(np.uint64)
        z = np.repeat(keys.astype(np.uint64), counts) + steps * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


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
        self.ngram_counts = _added(self.ngram_counts, other.ngram_counts)
        self.free_ngram_counts = _added(self.free_ngram_counts, other.free_ngram_counts)
        self.replacement_counts += other.replacement_counts
        self.masked_tokens += other.masked_tokens
        self.maskable_tokens += other.maskable_tokens


def _added(total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`total` plus `counts`, the shorter read as zeros past its end: the
    n-gram counts hold max_ngram + 1 entries, 4 until a max_ngram over 3
    needs more."""
    if len(counts) > len(total):
        total = np.concatenate([total, np.zeros(len(counts) - len(total), total.dtype)])
    total[:len(counts)] += counts
    return total


@functools.lru_cache
def _length_cdfs(max_ngram: int) -> list[list[float]]:
    """cdfs[k]: the cumulative p(n) ∝ 1/n over n = 1..k+1."""
    weights = [1.0 / n for n in range(1, max_ngram + 1)]
    cdfs = []
    for k in range(1, max_ngram + 1):
        total = sum(weights[:k])
        cdfs.append(list(itertools.accumulate(w / total for w in weights[:k])))
    return cdfs


@functools.lru_cache
def _cdf_columns(max_ngram: int) -> tuple[np.ndarray, ...]:
    """columns[k][r]: the cumulative p(n) up to n = k + 1 for a window of
    r + 1 words, inf past the window; read a column at a time (mask_flat),
    made once per max_ngram, not once per batch."""
    table = np.full((max_ngram, max_ngram), np.inf)
    for r, cdf in enumerate(_length_cdfs(max_ngram)):
        table[r, :len(cdf)] = cdf
    columns = tuple(np.ascontiguousarray(table[:, k]) for k in range(max_ngram))
    for column in columns:
        column.flags.writeable = False  # shared by every call
    return columns


def mask_budget(length: int, config: MaskingConfig) -> int:
    """Masked positions of an instance of `length` tokens, exactly: ALBERT's
    min(max_predictions, max(1, round(L * masked_lm_prob)))."""
    return min(config.max_predictions_per_seq, max(1, int(round(length * config.masked_lm_prob))))


def masking_draws(word_starts: np.ndarray, config: MaskingConfig) -> int:
    """How many uniform draws masking an instance takes: two per word (its
    place in the shuffle and its n-gram length) and two per masked position
    (its replacement kind and the random piece). `word_starts` as the
    instance has it: [CLS] and [SEP] start no word, each segment's first
    token starts one."""
    return 2 * int(np.count_nonzero(word_starts)) + 2 * mask_budget(len(word_starts), config)


class ToMask(NamedTuple):  # a NamedTuple: made once per instance, a dataclass costs 1-2 us more
    """One instance before masking: `[CLS] A [SEP] B [SEP]` ids, word starts
    as `masking_draws` describes them, len(A), and its block of
    `masking_draws` uniform draws from the instance's own generator."""

    original_ids: np.ndarray
    word_starts: np.ndarray
    len_a: int
    draws: np.ndarray


class FlatInstances(NamedTuple):
    """Instances end to end: instance r is tokens [offsets[r], offsets[r] +
    lengths[r]) of `original_ids` and `word_starts` (as `masking_draws`
    describes them), `[CLS] A [SEP] B [SEP]` with A of len_a[r] tokens."""

    original_ids: np.ndarray  # [T]
    word_starts: np.ndarray  # [T] bool
    lengths: np.ndarray  # [R]
    len_a: np.ndarray  # [R]

    @property
    def offsets(self) -> np.ndarray:
        return np.cumsum(self.lengths) - self.lengths


class FlatMasks(NamedTuple):
    """What masking gave a FlatInstances: the masked input ids, aligned with
    its tokens; per instance, counts[r] positions (ascending, from the
    instance's start) and the original ids there, the instances' in turn."""

    input_ids: np.ndarray  # [T]
    positions: np.ndarray  # [M]
    originals: np.ndarray  # [M]
    counts: np.ndarray  # [R]


def fixed_draw_block(config: MaskingConfig) -> tuple[int, int]:
    """The (shuffle steps, positions) of a fixed-size block of draws
    (`mask_flat`'s `block`): its 2 * steps + 2 * positions draws are taken at
    once, so a caller needs no word count to know how many to take. An
    instance meets its budget of at most max_predictions positions in at most
    that many accepted spans, and a step is rarely refused: on real prose no
    instance took more than 23 steps at 128 or 512 (of 8,560 and 2,388), so
    twice the budget and 8 is room to spare. An instance that needs more
    goes to the fill (see `mask_flat`)."""
    return 2 * config.max_predictions_per_seq + 8, config.max_predictions_per_seq


@functools.lru_cache
def _budget_table(config: MaskingConfig, longest: int) -> np.ndarray:
    return np.array([mask_budget(length, config) for length in range(longest + 1)], np.int64)


def mask_batch(batch: list[ToMask], config: MaskingConfig, vocab: MaskingVocab,
               stats: MaskingStats | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`mask_flat` of a list of instances, each with its own compact block of
    draws: (input ids, positions, original ids at them) of each."""
    if not batch:
        return []
    rows = len(batch)
    flat = FlatInstances(np.concatenate([np.asarray(item.original_ids) for item in batch]),
                         np.concatenate([item.word_starts for item in batch]),
                         np.fromiter((len(item.original_ids) for item in batch), np.int64, rows),
                         np.fromiter((item.len_a for item in batch), np.int64, rows))
    draw_counts = np.fromiter((len(item.draws) for item in batch), np.int64, rows)
    masks = mask_flat(flat, np.concatenate([item.draws for item in batch]), np.cumsum(draw_counts) - draw_counts,
                      config, vocab, stats)
    return list(zip(cut(masks.input_ids, flat.lengths), cut(masks.positions, masks.counts),
                    cut(masks.originals, masks.counts)))


def mask_flat(flat: FlatInstances, draws: np.ndarray, draw_at: np.ndarray, config: MaskingConfig,
              vocab: MaskingVocab, stats: MaskingStats | None = None,
              block: tuple[int, int] | None = None) -> FlatMasks:
    """ALBERT's whole-word n-gram masking of each instance, for a batch at once.

    As google-research/albert: the budget is `mask_budget`; word n-grams
    start at shuffled words, n drawn with p(n) ∝ 1/n, shortened while over
    budget; each masked token becomes [MASK] 80%, a random piece 10%, itself
    10%. Two deliberate differences: an n-gram never crosses [SEP], and a
    start is rejected when any of its max_ngram-word window is already
    masked (not only its drawn n words), so acceptance does not depend on n
    and masked spans keep the 1/n distribution. Every instance gets exactly
    its budget, as ALBERT's do (see `_fill`).

    Instance r reads only its own block of draws, from draws[draw_at[r]]:
    shuffle draws (one per word), n-gram draws (one per word), kind draws
    (one per masked position), piece draws (one per masked position). With
    `block` None the parts are packed (a block of `masking_draws`); with
    `block` = (steps, positions) (`fixed_draw_block`) each part has that
    many slots, whatever the instance needs, and an instance still short of
    its budget after `steps` steps goes to the fill, which takes the rest of
    its shuffle from a generator seeded by its own block. So an instance's
    masks are the same whatever batch it is in.

    The shuffle is Fisher-Yates, one place a step; each step runs for the
    whole batch at once, in NumPy over the instances still short of their
    budget, on the batch's words laid end to end (no padding): masking one
    instance at a time in Python took about 50 us per 512 tokens.
    """
    rows = len(flat.lengths)
    if not rows:
        return FlatMasks(flat.original_ids.copy(), *(np.zeros(0, np.int64),) * 3)
    max_ngram = config.max_ngram
    lengths, len_a, flat_starts = flat.lengths, flat.len_a, flat.word_starts
    budget = _budget_table(config, int(lengths.max()))[lengths]
    token_offsets = flat.offsets
    # The batch's words end to end (global word numbers): a word ends where
    # the next starts, the last of A at A's [SEP], the last of B at the
    # final [SEP]. max_ngram spare entries at the end keep every window in
    # bounds; a window never reaches past its segment (see `available`).
    word_token = np.flatnonzero(flat_starts)  # a word's first token, in the batch's tokens
    bounds = np.empty(2 * rows, np.int64)
    bounds[0::2], bounds[1::2] = token_offsets, token_offsets + len_a + 1
    # words a segment (from its first token to the next segment's): a search of the word starts
    counts = np.diff(np.searchsorted(word_token, bounds), append=len(word_token))
    words_in_a, words_in_b = counts[0::2], counts[1::2]
    num_words = words_in_a + words_in_b
    word_offsets = np.cumsum(num_words) - num_words
    total_words = int(num_words.sum())
    word_end = np.empty(total_words + max_ngram, np.int64)
    word_end[:total_words - 1] = word_token[1:]
    word_end[word_offsets + words_in_a - 1] = token_offsets + len_a + 1
    word_end[word_offsets + num_words - 1] = token_offsets + lengths - 1
    word_end[total_words:] = word_end[total_words - 1]
    if block is None:
        word_slots, position_slots = num_words, budget
        block_sizes = 2 * num_words + 2 * budget
        if not (np.array_equal(draw_at[1:] - draw_at[:-1], block_sizes[:-1])
                and int(draw_at[-1] + block_sizes[-1]) == len(draws)):
            raise ValueError("a block of draws does not match its instance (masking_draws)")
        step_limit = num_words
    else:
        word_slots, position_slots = block
        if int(budget.max()) > position_slots or int(draw_at.max()) + 2 * (word_slots + position_slots) > len(draws):
            raise ValueError(f"an instance needs more draws than a block of {block} holds")
        step_limit = np.minimum(num_words, word_slots)
    shuffle_at = draw_at
    ngram_at = draw_at + word_slots
    kind_at = draw_at + 2 * word_slots
    piece_at = kind_at + position_slots
    order = np.arange(total_words)  # the shuffles, in place: place -> word (global numbers)
    covered = np.zeros(total_words + max_ngram, bool)  # by word: spans are whole words until the fill
    masked = np.zeros(rows, np.int64)
    steps = np.zeros(rows, np.int64)
    span_rows, span_starts, span_ends = [], [], []  # each step's spans, in the order taken
    ngram_counts = np.zeros(max_ngram + 1, np.int64)
    free_counts = np.zeros(max_ngram + 1, np.int64)
    cdf_columns = _cdf_columns(max_ngram)
    live = np.arange(rows)
    for step in range(int(step_limit.max())):
        live = live[(masked[live] < budget[live]) & (step < step_limit[live])]
        if not len(live):
            break
        steps[live] = step + 1
        first_word, words = word_offsets[live], num_words[live]
        here = first_word + step
        swap = here + (draws[shuffle_at[live] + step] * (words - step)).astype(np.int64)
        w = order[swap]
        order[swap] = order[here]
        order[here] = w
        local = w - first_word
        in_a = words_in_a[live]
        available = np.minimum(max_ngram, np.where(local < in_a, in_a, words) - local)
        start = word_token[w]
        left = budget[live] - masked[live]
        drawn_at = draws[ngram_at[live] + step]
        cdf_row = available - 1
        # The window of n = 1..max_ngram words, a column (n = k + 1) at a
        # time: NumPy reduces a short last axis slowly (25 us over 2,000 x 3
        # where three column operations take 3), and this loop runs 20-odd
        # times a batch. A span is free if none of its words is covered; its
        # drawn length counts the cdf steps its draw passes; and, since ends
        # grow with n, the n-grams within the budget left are the shortest
        # ones: n is the drawn length, shortened to their number.
        free = np.ones(len(live), bool)
        drawn = np.ones(len(live), np.int64)
        fitting = np.zeros(len(live), np.int64)
        ends = []  # the end of the n-gram, for each n
        for k in range(max_ngram):
            word = w + k
            free &= ~(covered[word] & (k < available))
            drawn += drawn_at >= cdf_columns[k][cdf_row]
            ends.append(word_end[word])
            fitting += ends[k] - start <= left
        n = np.minimum(drawn, fitting)
        taken = free & (n > 0)
        if not taken.any():
            continue
        rows_taken, w, start, n = live[taken], w[taken], start[taken], n[taken]
        end = last_end = ends[0][taken]
        covered[w] = True  # every span taken holds its first word
        for k in range(1, max_ngram):
            last_end = ends[k][taken]
            longer = n > k
            end = np.where(longer, last_end, end)
            covered[w[longer] + k] = True
        ngram_counts += np.bincount(n, minlength=max_ngram + 1)
        whole_window = (available[taken] == max_ngram) & (last_end - start <= left[taken])
        free_counts += np.bincount(drawn[taken][whole_window], minlength=max_ngram + 1)
        span_rows.append(rows_taken)
        span_starts.append(start)
        span_ends.append(end)
        masked[rows_taken] += end - start
    # Masked tokens in the order taken: span by span, each span's tokens in
    # order, then the fill's; a token's slot is its place in that order.
    if span_rows:
        by_row = np.argsort(np.concatenate(span_rows), kind="stable")
        span_row = np.concatenate(span_rows)[by_row]
        span_start = np.concatenate(span_starts)[by_row]
        span_length = np.concatenate(span_ends)[by_row] - span_start
    else:
        span_row = span_start = span_length = np.zeros(0, np.int64)
    token_row = np.repeat(span_row, span_length)
    token = np.repeat(span_start - np.cumsum(span_length) + span_length, span_length) + np.arange(len(token_row))
    short = np.flatnonzero(masked < budget)
    if len(short):  # rare: see _fill
        extra = []
        for row in short.tolist():
            at, words, shuffled = int(shuffle_at[row]), int(num_words[row]), int(steps[row])
            slots = min(words, word_slots) if block else words  # the row's shuffle draws in its block
            rest = draws[at + shuffled: at + slots]
            if slots < words:  # the places past the block's: from the block's own generator
                seeded = np.random.Generator(np.random.PCG64(np.frombuffer(draws[at: at + 4].tobytes(), np.uint32)))
                rest = np.concatenate([rest, seeded.random(words - max(shuffled, word_slots))])
            extra.append(_fill(token[token_row == row], order, word_token, word_end, int(word_offsets[row]),
                               words, shuffled, rest, int(budget[row] - masked[row])))
        token_row = np.concatenate([token_row, np.repeat(short, [len(e) for e in extra])])
        token = np.concatenate([token, *extra])
        by_row = np.argsort(token_row, kind="stable")
        token_row, token = token_row[by_row], token[by_row]
    taken_count = np.bincount(token_row, minlength=rows)
    slot = np.arange(len(token)) - np.repeat(np.cumsum(taken_count) - taken_count, taken_count)
    kind_draw = draws[kind_at[token_row] + slot]
    piece_draw = draws[piece_at[token_row] + slot]
    is_mask, is_random = kind_draw < 0.8, (kind_draw >= 0.8) & (kind_draw < 0.9)
    kinds = np.array([is_mask.sum(), is_random.sum(), len(kind_draw) - is_mask.sum() - is_random.sum()])
    # The masked ids laid over the originals (a token is masked once, so in
    # any order); then each row's positions ascending: rows hold consecutive
    # token numbers, so the masked tokens in ascending order are the rows'
    # positions row after row (marked and found, not sorted).
    original_ids = np.asarray(flat.original_ids)
    input_ids = original_ids.copy()
    random_ids = vocab.random_ids
    input_ids[token[is_mask]] = vocab.mask_id
    input_ids[token[is_random]] = random_ids[(piece_draw[is_random] * len(random_ids)).astype(np.int64)]
    marked = np.zeros(len(original_ids), bool)
    marked[token] = True
    ascending = np.flatnonzero(marked)
    if len(ascending) != len(token):
        raise AssertionError("a token was masked twice")
    if stats is not None:
        stats.ngram_counts = _added(stats.ngram_counts, ngram_counts)  # (no n-gram of 0 words: entry 0 stays 0)
        stats.free_ngram_counts = _added(stats.free_ngram_counts, free_counts)
        stats.replacement_counts += kinds
        stats.masked_tokens += len(token)
        stats.maskable_tokens += int((lengths - 3).sum())
    return FlatMasks(input_ids, ascending - np.repeat(token_offsets, taken_count), original_ids[ascending], taken_count)


def _fill(taken: np.ndarray, order: np.ndarray, word_start: np.ndarray, word_end: np.ndarray, offset: int,
          num_words: int, shuffled: int, rest: np.ndarray, left: int) -> np.ndarray:
    """The rest of one instance's budget (`left` tokens) when every word
    left is longer than the budget left, or its window is taken (short
    instances of long words: URLs, numbers, names). The budget is met
    anyway, as ALBERT's always is: the words are visited again in the
    shuffled order (the shuffle finished first) and their unmasked pieces
    taken from the start, so only the last span can end inside a word. Rare,
    so one instance at a time; tokens and words are the batch's numbers, and
    `rest` holds the shuffle draws of places `shuffled` on."""
    order = order[offset: offset + num_words].tolist()
    for step in range(shuffled, num_words):
        swap = step + int(rest[step - shuffled] * (num_words - step))
        order[step], order[swap] = order[swap], order[step]
    covered = set(taken.tolist())
    extra = []
    for w in order:
        for index in range(int(word_start[w]), int(word_end[w])):
            if len(extra) == left:
                return np.array(extra, np.int64)
            if index not in covered:
                covered.add(index)
                extra.append(index)
    return np.array(extra, np.int64)


def mask_instance(
    original_ids: np.ndarray,
    word_starts: np.ndarray,
    len_a: int,
    rng: np.random.Generator,
    config: MaskingConfig,
    vocab: MaskingVocab,
    stats: MaskingStats | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`mask_batch` of one instance, its draws taken from `rng`. Word starts
    may be any; [CLS] and [SEP] are made to start no word and each
    segment's first token to start one, as `mask_batch` expects."""
    length = len(original_ids)
    starts = np.array(word_starts, bool, copy=True)
    starts[[0, len_a + 1, length - 1]] = False
    starts[[1, len_a + 2]] = True
    draws = rng.random(masking_draws(starts, config))
    return mask_batch([ToMask(np.asarray(original_ids), starts, len_a, draws)], config, vocab, stats)[0]
