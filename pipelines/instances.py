"""ALBERT instances from tokenised documents: segments A/B and sentence order.

google-research/albert's create_instances_from_document, with its defaults
(max_seq_length 512, short_seq_prob 0.1): a chunk of whole sentences is
filled to a target length and split at a random sentence boundary into A
and B; the target is drawn for each instance (shorter with probability
short_seq_prob); over-long pairs lose tokens from a random end of the
longer side. Sentence order: A and B swapped with probability 0.5,
label 1 = swapped, 0 = natural order.

Strict SOP (the default): B always comes from the same document. A chunk
that holds a single sentence keeps growing until it holds two; a document
that ends with a lone sentence drops it (counted). With `albert_compat`,
a single-sentence chunk takes B from a random other document of the corpus
and split (never across the train/eval line), labelled 1, as ALBERT's
script does with its in-memory documents; that makes label 1 mean "swapped
or random" again. The documents B comes from are a `BPool`: a bounded
sample of the corpus, chosen by a stable hash of the ids, so B is the same
whatever the runner or split and no task holds the corpus. The target
length is drawn once per document pass in compat mode, as ALBERT does, and
again for each instance by default.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import NamedTuple

import numpy as np

from albertprep.core.options import setting
from albertprep.core.records import (
    FlatInstances,
    FlatMasks,
    Instance,
    MaskingConfig,
    MaskingStats,
    MaskingVocab,
    cut,
    encode_flat,
    fixed_draw_block,
    mask_flat,
)
from albertprep.core.tokenizer import SPECIAL_PIECES

CLS, SEP = SPECIAL_PIECES["[CLS]"], SPECIAL_PIECES["[SEP]"]


@dataclasses.dataclass(frozen=True)
class InstanceConfig:
    max_seq_length: int = setting(512, "tokens per instance, [CLS] and both [SEP] included")
    short_seq_prob: float = setting(0.1, "share of targets drawn shorter than --max-seq-length, in [2, max]")
    albert_compat: bool = setting(False, "follow ALBERT's script: one target length per document pass, and a "
                                  "one-sentence chunk takes B from another document, labelled 1")
    masking: MaskingConfig = MaskingConfig()


@dataclasses.dataclass
class InstanceStats:
    instances: int = 0
    short_target: int = 0  # instances whose target length was drawn short
    sop_swapped: int = 0
    random_b: int = 0  # albert_compat: B from another document
    truncated: int = 0
    dropped_sentences: int = 0  # lone last sentences (strict SOP)
    dropped_tokens: int = 0
    length_histogram: np.ndarray | None = None
    masking: MaskingStats = dataclasses.field(default_factory=MaskingStats)

    def histogram(self, max_seq_length: int) -> np.ndarray:
        """The length histogram, made empty on first use."""
        if self.length_histogram is None:
            self.length_histogram = np.zeros(max_seq_length + 1, np.int64)
        return self.length_histogram

    def merge(self, other: InstanceStats) -> None:
        for field in ("instances", "short_target", "sop_swapped", "random_b", "truncated",
                      "dropped_sentences", "dropped_tokens"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        if other.length_histogram is not None:
            if self.length_histogram is None:
                self.length_histogram = np.zeros_like(other.length_histogram)
            self.length_histogram += other.length_histogram
        self.masking.merge(other.masking)


@dataclasses.dataclass(frozen=True)
class TokenizedDocument:
    """A document's tokens in one array; sentence i is ids[bounds[i]:bounds[i+1]].

    A chunk of consecutive sentences is then one slice, so segments A and B
    are views into these arrays, never copies built sentence by sentence.
    """

    ids: np.ndarray
    word_starts: np.ndarray
    bounds: np.ndarray  # [sentences + 1] token offsets

    @classmethod
    def from_sentences(cls, sentences: list[np.ndarray], word_start: np.ndarray) -> TokenizedDocument:
        """From per-sentence ids; sentences that tokenised to nothing are dropped."""
        ids = np.concatenate(sentences) if sentences else np.zeros(0, np.int64)
        return cls.from_joined(ids, np.array([len(s) for s in sentences], np.int64), word_start)

    @classmethod
    def from_joined(cls, ids: np.ndarray, lengths: np.ndarray, word_start: np.ndarray) -> TokenizedDocument:
        """From all the sentences' ids end to end and each one's count
        (Tokenizer.encode_joined); sentences that tokenised to nothing are dropped."""
        kept = lengths[lengths > 0]
        bounds = np.zeros(len(kept) + 1, np.int64)
        np.cumsum(kept, out=bounds[1:])
        return cls(ids, word_start[ids], bounds)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def end_reaching(self, start: int, tokens: int) -> int:
        """The end (exclusive) of the fewest sentences from `start` on that
        hold at least `tokens` tokens: at least one, at most the document's end."""
        reach = int(np.searchsorted(self.bounds, self.bounds[start] + tokens, side="left"))
        return max(min(reach, len(self)), start + 1)


@dataclasses.dataclass(frozen=True)
class PooledDocument:
    """A document B may come from: whole, or (a long one) as windows.

    ALBERT's B starts at a uniformly drawn sentence of a uniformly drawn
    document and runs until it has enough tokens. A whole document keeps
    every start; a long one keeps `windows` starts drawn the same way, each
    with the sentences after it up to a full sequence, so the pool stays
    small whatever the documents' lengths.
    """

    id: str
    pieces: tuple[TokenizedDocument, ...]
    whole: bool

    @classmethod
    def of(cls, document_id: str, tokens: TokenizedDocument, rng: np.random.Generator, max_tokens: int,
           windows: int = 8) -> PooledDocument:
        if len(tokens.ids) <= windows * max_tokens:
            return cls(document_id, (tokens,), True)
        bounds = tokens.bounds
        pieces = []
        for start in rng.integers(len(tokens), size=windows).tolist():
            end = tokens.end_reaching(start, max_tokens)
            lo, hi = int(bounds[start]), int(bounds[end])
            pieces.append(TokenizedDocument(tokens.ids[lo:hi], tokens.word_starts[lo:hi],
                                            bounds[start:end + 1] - lo))
        return cls(document_id, tuple(pieces), False)


class BPool:
    """The documents random B segments come from (albert_compat)."""

    def __init__(self, documents: list[PooledDocument]):
        self.documents = [d for d in documents if len(d.pieces[0])]  # as ALBERT, no empty documents
        self._place = {d.id: i for i, d in enumerate(self.documents)}

    def __len__(self) -> int:
        return len(self.documents)

    def draw(self, own_id: str, wanted: int, pick: float, start: float):
        """A random other document's sentences from a random one on, until
        `wanted` tokens: (document, (lo, hi)); `pick` and `start` are uniform
        draws. ALBERT's script retries ten times not to pick the document
        itself and takes it when that fails; drawing among the others is that
        without the rare miss, and the document itself is taken only when the
        pool holds no other (a corpus of one book). (None, None) for an
        empty pool."""
        own = self._place.get(own_id, -1)
        others = len(self.documents) - (own >= 0)
        if others <= 0:
            if own < 0:
                return None, None
            pooled = self.documents[own]
        else:
            index = int(pick * others)
            pooled = self.documents[index + 1 if 0 <= own <= index else index]
        if pooled.whole:
            document = pooled.pieces[0]
            first = int(start * len(document))
        else:
            document = pooled.pieces[int(start * len(pooled.pieces))]
            first = 0
        end = document.end_reaching(first, max(wanted, 1))
        return document, (int(document.bounds[first]), int(document.bounds[end]))


def truncate_pairs(len_a: np.ndarray, len_b: np.ndarray, max_tokens: int,
                   draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ALBERT's truncate_seq_pair for many pairs at once: the tokens cut from
    (the front of A, the back of A, the front of B, the back of B).

    As ALBERT: one token at a time from the longer side (B on a tie), from
    its front or back with equal odds, one uniform draw a token (front when
    < 0.5). Pair r reads its `excess` draws in turn from `draws`, after
    those of the pairs before it. Which side each step hits depends on the
    lengths alone, so the steps are laid out at once: the longer side down
    to the other, then turns, the other side first.

    The fronts are counted by running sums over all the pairs' draws:
    a pair's fronts are a difference of two, and those of its second side
    (its steps lead, lead + 2, ...: one parity of the batch's draw numbers)
    a difference of the running sum of that parity. Nothing is laid out a
    step at a time.
    """
    excess = np.maximum(len_a + len_b - max_tokens, 0)
    a_first = len_a > len_b
    lead = np.minimum(excess, np.where(a_first, len_a - len_b, len_b - len_a + 1))
    cut_second = (excess - lead + 1) // 2  # steps lead, lead + 2, ... of each pair
    cut_first = excess - cut_second
    ends = np.cumsum(excess)
    starts = ends - excess
    front = draws[:int(ends[-1]) if len(ends) else 0] < 0.5
    fronts = np.concatenate([[0], np.cumsum(front)])  # fronts among the draws before each
    even_front = front.copy()
    even_front[1::2] = False
    even_fronts = np.concatenate([[0], np.cumsum(even_front)])
    odd_fronts = fronts - even_fronts
    second_from = starts + lead  # a pair's first step on its second side, as a draw number of the batch
    front_all = fronts[ends] - fronts[starts]
    front_second = np.where(second_from % 2 == 0, even_fronts[ends] - even_fronts[second_from],
                            odd_fronts[ends] - odd_fronts[second_from])
    front_first = front_all - front_second
    cut_a, front_a = np.where(a_first, cut_first, cut_second), np.where(a_first, front_first, front_second)
    cut_b, front_b = excess - cut_a, front_all - front_a
    return front_a, cut_a - front_a, front_b, cut_b - front_b


# A document pass draws its uniforms in two blocks, whatever it makes:
# 1. DRAWS_PER_SLOT for each of its sentences (an instance takes at least one,
#    so there is a slot for every instance it can make): instance k reads slot
#    k's (short target?, short length, split point, swap, B's document, B's
#    first sentence), each only if it needs it; with albert_compat the target
#    is slot 0's for the whole pass.
# 2. once the pass's instances are known: the truncation draws of each in turn
#    (one per token over max), then a fixed block of masking draws for each
#    (records.fixed_draw_block).
# The first block's places depend on nothing drawn; the second is taken once
# the loop is done, so a batch of passes is then cut and masked in NumPy at
# once. A pass uses the slots of the instances it makes, a fifth to a
# twentieth of its sentences': the first block is drawn SLOTS_DRAWN slots at
# a time as the loop reaches them, and the generator is advanced past the
# rest (PCG64's advance: one step a double), which leaves it where drawing
# them all would.
DRAWS_PER_SLOT = 6
SLOTS_DRAWN = 32


class BuiltInstances(NamedTuple):
    """A batch's instances, masked, end to end (records.FlatInstances and FlatMasks)."""

    flat: FlatInstances
    masks: FlatMasks
    sop_labels: np.ndarray

    def __len__(self) -> int:
        return len(self.sop_labels)

    def encode(self, vocab_size: int) -> list[bytes]:
        return encode_flat(self.flat, self.masks, self.sop_labels, vocab_size)

    def instances(self) -> list[Instance]:
        flat, masks = self.flat, self.masks
        return [Instance(*fields) for fields in zip(
            cut(masks.input_ids, flat.lengths), cut(flat.word_starts, flat.lengths), flat.len_a.tolist(),
            self.sop_labels.tolist(), cut(masks.positions, masks.counts), cut(masks.originals, masks.counts))]


class InstanceBatch:
    """The instances of many document passes, cut, assembled and masked together.

    `add_pass` runs ALBERT's create_instances_from_document loop for one
    pass: the chunks, the split point, the order and B, as plain Python over
    sentence offsets (what has to be sequential), each instance kept as the
    token ranges of A and B. `build` then truncates, lays out
    `[CLS] A [SEP] B [SEP]` and masks the whole batch in NumPy. An instance
    depends only on its pass's generator, never on the batch it is built in.
    """

    def __init__(self, config: InstanceConfig):
        self.config = config
        self._block = fixed_draw_block(config.masking)
        self._block_draws = 2 * sum(self._block)
        self.clear()

    def clear(self) -> None:
        self._sources: list[TokenizedDocument] = []  # the documents A and B come from
        self._source_at: dict[int, int] = {}  # id(document) -> its first token in the batch's sources
        self._source_tokens = 0
        # each instance's (A's first token, A's end, B's first, B's end, SOP label), end to end
        # in one list: one extend an instance, not five appends
        self._pairs: list[int] = []
        self._truncation_draws: list[np.ndarray] = []
        self._masking_draws: list[np.ndarray] = []
        self.tokens = 0  # of the instances so far, after truncation

    def __len__(self) -> int:
        return len(self._pairs) // 5

    def _source(self, document: TokenizedDocument) -> int:
        at = self._source_at.get(id(document))  # the batch holds the document: its id stays its own
        if at is None:
            at = self._source_at[id(document)] = self._source_tokens
            self._sources.append(document)
            self._source_tokens += len(document.ids)
        return at

    def add_pass(self, document: TokenizedDocument, rng: np.random.Generator, stats: InstanceStats,
                 pool: BPool | None = None, own_id: str = "") -> int:
        """The instances of one pass over `document` (one duplicate), added;
        their number. `rng` is the pass's own, seeded by (seed, document id,
        duplicate index). With albert_compat, B may be borrowed from another
        document of `pool` than `own_id` (this document); without one, a lone
        sentence is dropped."""
        config = self.config
        max_tokens = config.max_seq_length - 3
        compat = config.albert_compat
        short_prob = config.short_seq_prob
        stats.histogram(config.max_seq_length)  # made even when the pass makes nothing
        bounds = document.bounds.tolist()
        sentences = len(bounds) - 1
        if not sentences:
            return 0
        slot_draws = DRAWS_PER_SLOT * sentences
        u = rng.random(min(slot_draws, DRAWS_PER_SLOT * SLOTS_DRAWN)).tolist()
        own = self._source(document)
        add = self._pairs.extend
        last = sentences - 1
        bisect_left = bisect.bisect_left
        made = excess = short = swapped = tokens = 0
        target, is_short = (2 + int(u[1] * (max_tokens - 1)), 1) if u[0] < short_prob else (max_tokens, 0)
        first = 0  # the chunk is sentences first..i
        while first < sentences:
            slot = DRAWS_PER_SLOT * made
            if slot == len(u):  # the next slots (the loop takes one a step at most)
                u += rng.random(min(slot_draws - slot, DRAWS_PER_SLOT * SLOTS_DRAWN)).tolist()
            if made and not compat:  # ALBERT draws the target once for the whole document pass
                target, is_short = (2 + int(u[slot + 1] * (max_tokens - 1)), 1) if u[slot] < short_prob \
                    else (max_tokens, 0)
            # the first i at which the chunk reaches the target, else the last sentence
            i = bisect_left(bounds, bounds[first] + target, first + 1) - 1
            if i > last:
                i = last
            if i == first and not compat:  # strict SOP needs two sentences: keep filling
                if i == last:
                    stats.dropped_sentences += 1
                    stats.dropped_tokens += bounds[i + 1] - bounds[first]
                    break
                i += 1
            start, first = first, i + 1
            lo, hi = bounds[start], bounds[i + 1]
            if i == start:  # one sentence (albert_compat): B from a random other document
                b_document, b = pool.draw(own_id, target - (hi - lo), u[slot + 4], u[slot + 5]) if pool \
                    else (None, None)
                if b_document is None:
                    stats.dropped_sentences += 1
                    stats.dropped_tokens += hi - lo
                    continue
                at = self._source(b_document)
                add((own + lo, own + hi, at + b[0], at + b[1], 1))
                stats.random_b += 1
                length = hi - lo + b[1] - b[0]
            else:
                split = bounds[start + 1 + int(u[slot + 2] * (i - start))]
                if u[slot + 3] < 0.5:  # swapped: label 1
                    add((own + split, own + hi, own + lo, own + split, 1))
                    swapped += 1
                else:
                    add((own + lo, own + split, own + split, own + hi, 0))
                length = hi - lo
            if length > max_tokens:
                excess += length - max_tokens
                tokens += max_tokens + 3
            else:
                tokens += length + 3
            made += 1
            short += is_short
        rng.bit_generator.advance(slot_draws - len(u))
        if made:
            rest = rng.random(excess + made * self._block_draws)
            self._truncation_draws.append(rest[:excess])
            self._masking_draws.append(rest[excess:])
        self.tokens += tokens
        stats.instances += made
        stats.short_target += short
        stats.sop_swapped += swapped
        return made

    def build(self, vocab: MaskingVocab, stats: InstanceStats) -> BuiltInstances:
        """The batch's instances, truncated, assembled and masked; the batch is emptied."""
        config = self.config
        rows = len(self)
        histogram = stats.histogram(config.max_seq_length)
        if not rows:
            empty = np.zeros(0, np.int64)
            self.clear()
            return BuiltInstances(FlatInstances(empty, np.zeros(0, bool), empty, empty),
                                  FlatMasks(empty, empty, empty, empty), empty)
        source_ids = np.concatenate([d.ids for d in self._sources]).astype(np.int64, copy=False)
        source_starts = np.concatenate([d.word_starts for d in self._sources])
        a_lo, a_hi, b_lo, b_hi, labels = np.array(self._pairs, np.int64).reshape(rows, 5).T
        front_a, back_a, front_b, back_b = truncate_pairs(a_hi - a_lo, b_hi - b_lo, config.max_seq_length - 3,
                                                          np.concatenate(self._truncation_draws))
        stats.truncated += int(np.count_nonzero(front_a + back_a + front_b + back_b))
        a_lo, a_hi, b_lo, b_hi = a_lo + front_a, a_hi - back_a, b_lo + front_b, b_hi - back_b
        len_a, len_b = a_hi - a_lo, b_hi - b_lo
        lengths = len_a + len_b + 3
        offsets = np.cumsum(lengths) - lengths
        # An instance is five runs of the sources laid end to end: [CLS], A,
        # [SEP], B, [SEP] (the three markers read source 0, then are written
        # over). Each token's place in the sources is a running sum of steps:
        # 1 within a run, a jump at a run's first token; so one cumsum and
        # one gather lay the whole batch out (a ragged arange and two repeats
        # took twice as long).
        ones, marker = np.ones(rows, np.int64), np.zeros(rows, np.int64)
        run_from = np.stack([marker, a_lo, marker, b_lo, marker], 1).ravel()
        run_length = np.stack([ones, len_a, ones, len_b, ones], 1).ravel()
        nonempty = run_length > 0
        run_from, run_length = run_from[nonempty], run_length[nonempty]
        jump = run_from.copy()  # from the previous run's last source token (the first run: from 0)
        jump[1:] -= run_from[:-1] + run_length[:-1] - 1
        step = np.ones(int(lengths.sum()), np.int64)
        step[np.cumsum(run_length) - run_length] = jump
        source = np.cumsum(step)
        ids = source_ids[source]
        ids[offsets] = CLS
        ids[offsets + len_a + 1] = SEP
        ids[offsets + lengths - 1] = SEP
        word_starts = source_starts[source]
        word_starts[offsets] = word_starts[offsets + len_a + 1] = word_starts[offsets + lengths - 1] = False
        word_starts[offsets + 1] = word_starts[offsets + len_a + 2] = True  # a segment starts a word, even when cut
        flat = FlatInstances(ids, word_starts, lengths, len_a)
        masks = mask_flat(flat, np.concatenate(self._masking_draws), np.arange(rows) * self._block_draws,
                          config.masking, vocab, stats.masking, self._block)
        histogram += np.bincount(lengths, minlength=len(histogram))
        self.clear()
        return BuiltInstances(flat, masks, labels)


def create_instances(
    document: TokenizedDocument,
    rng: np.random.Generator,
    config: InstanceConfig,
    vocab: MaskingVocab,
    stats: InstanceStats,
    pool: BPool | None = None,
    own_id: str = "",
) -> list[Instance]:
    """The instances of one pass over a document, masked: a batch of one pass
    (`InstanceBatch`). A job builds many passes in one batch instead, which
    is the same instances, faster."""
    batch = InstanceBatch(config)
    batch.add_pass(document, rng, stats, pool, own_id)
    return batch.build(vocab, stats).instances()
