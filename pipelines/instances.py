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
    Instance,
    MaskingConfig,
    MaskingStats,
    MaskingVocab,
    ToMask,
    mask_batch,
    masking_draws,
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
        sentences = [s for s in sentences if len(s)]
        bounds = np.zeros(len(sentences) + 1, np.int64)
        np.cumsum([len(s) for s in sentences], out=bounds[1:])
        ids = np.concatenate(sentences) if sentences else np.zeros(0, np.int64)
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

    def draw(self, own_id: str, wanted: int, rng: np.random.Generator):
        """A random other document's sentences from a random one on, until
        `wanted` tokens: (document, (lo, hi)). ALBERT's script retries ten
        times not to pick the document itself and takes it when that fails;
        drawing among the others is that without the rare miss, and the
        document itself is taken only when the pool holds no other (a
        corpus of one book). (None, None) for an empty pool."""
        own = self._place.get(own_id, -1)
        others = len(self.documents) - (own >= 0)
        if others <= 0:
            if own < 0:
                return None, None
            pooled = self.documents[own]
        else:
            pick = int(rng.integers(others))
            pooled = self.documents[pick + 1 if 0 <= own <= pick else pick]
        if pooled.whole:
            document = pooled.pieces[0]
            start = int(rng.integers(len(document)))
        else:
            document = pooled.pieces[int(rng.integers(len(pooled.pieces)))]
            start = 0
        end = document.end_reaching(start, max(wanted, 1))
        return document, (int(document.bounds[start]), int(document.bounds[end]))


def _truncate_pair(document: TokenizedDocument, a: tuple[int, int], b_document: TokenizedDocument,
                   b: tuple[int, int], max_tokens: int, rng: np.random.Generator):
    """ALBERT's truncate_seq_pair on token ranges a and b: one token at a time
    from the longer side (B on a tie), from its front or back with equal
    odds, one draw a token.

    Which side each step hits depends on the lengths alone, so the steps
    are laid out at once: the longer side down to the other, then turns.
    """
    (a_lo, a_hi), (b_lo, b_hi) = a, b
    len_a, len_b = a_hi - a_lo, b_hi - b_lo
    excess = len_a + len_b - max_tokens
    if excess > 0:
        # Steps 0..lead-1 hit the longer side ("first"); from `lead` on the
        # sides alternate, the other side first: it takes steps lead, lead+2...
        a_first = len_a > len_b
        lead = min(excess, len_a - len_b if a_first else len_b - len_a + 1)
        front = rng.random(excess) < 0.5
        cut_second = (excess - lead + 1) // 2
        front_second = int(np.count_nonzero(front[lead::2]))
        cut_first, front_first = excess - cut_second, int(np.count_nonzero(front)) - front_second
        if a_first:
            cut_a, front_a, cut_b, front_b = cut_first, front_first, cut_second, front_second
        else:
            cut_a, front_a, cut_b, front_b = cut_second, front_second, cut_first, front_first
        a_lo, a_hi = a_lo + front_a, a_hi - (cut_a - front_a)
        b_lo, b_hi = b_lo + front_b, b_hi - (cut_b - front_b)
    return (document.ids[a_lo:a_hi], document.word_starts[a_lo:a_hi],
            b_document.ids[b_lo:b_hi], b_document.word_starts[b_lo:b_hi], excess > 0)


def _target_length(config: InstanceConfig, rng: np.random.Generator) -> tuple[int, bool]:
    max_tokens = config.max_seq_length - 3
    if rng.random() < config.short_seq_prob:
        return int(rng.integers(2, max_tokens + 1)), True
    return max_tokens, False


class Segmented(NamedTuple):  # a NamedTuple: made once per instance, a dataclass costs 1-2 us more
    """An instance before masking: its tokens and draws, and its SOP label."""

    to_mask: ToMask
    sop_label: int

    def masked(self, ids: np.ndarray, positions: np.ndarray, originals: np.ndarray) -> Instance:
        item = self.to_mask
        return Instance(ids, item.word_starts, item.len_a, self.sop_label, positions, originals)


def mask_segmented(segmented: list[Segmented], config: InstanceConfig, vocab: MaskingVocab,
                   stats: InstanceStats) -> list[Instance]:
    """The instances, masked in one batch (records.mask_batch)."""
    results = mask_batch([s.to_mask for s in segmented], config.masking, vocab, stats.masking)
    return [s.masked(*result) for s, result in zip(segmented, results)]


def create_instances(
    document: TokenizedDocument,
    rng: np.random.Generator,
    config: InstanceConfig,
    vocab: MaskingVocab,
    stats: InstanceStats,
    pool: BPool | None = None,
    own_id: str = "",
) -> list[Instance]:
    """The instances of one document (one duplicate), masked: `segment_document`
    and `mask_segmented`. A job masks many documents' instances in one batch
    instead, which is the same instances, faster."""
    return mask_segmented(segment_document(document, rng, config, stats, pool, own_id), config, vocab, stats)


def segment_document(
    document: TokenizedDocument,
    rng: np.random.Generator,
    config: InstanceConfig,
    stats: InstanceStats,
    pool: BPool | None = None,
    own_id: str = "",
) -> list[Segmented]:
    """The instances of one document (one duplicate), before masking; each
    holds the draws its masking will read.

    `rng` is seeded by (seed, document id, duplicate index). With
    albert_compat, B may be borrowed from another document of `pool` than
    `own_id` (this document); without one, a lone sentence is dropped.
    """
    max_tokens = config.max_seq_length - 3
    if stats.length_histogram is None:
        stats.length_histogram = np.zeros(config.max_seq_length + 1, np.int64)
    bounds = document.bounds.tolist()
    sentences = len(bounds) - 1
    instances: list[Segmented] = []
    target, short = _target_length(config, rng)
    first = 0  # the chunk is sentences first..i
    while first < sentences:
        # the first i at which the chunk reaches the target, else the last sentence
        i = min(bisect.bisect_left(bounds, bounds[first] + target, first + 1) - 1, sentences - 1)
        if i == first and not config.albert_compat:  # strict SOP needs two sentences: keep filling
            if i == sentences - 1:
                stats.dropped_sentences += 1
                stats.dropped_tokens += bounds[i + 1] - bounds[first]
                break
            i += 1
        chunk_length = bounds[i + 1] - bounds[first]
        chunk = i + 1 - first
        label = 0
        if chunk == 1:  # albert_compat: B from a random other document
            a = (bounds[first], bounds[i + 1])
            b_document, b = pool.draw(own_id, target - chunk_length, rng) if pool else (None, None)
            if b_document is None:
                stats.dropped_sentences += 1
                stats.dropped_tokens += chunk_length
                first = i + 1
                continue
            label = 1
            stats.random_b += 1
        else:
            split = bounds[first + int(rng.integers(1, chunk))]
            a, b, b_document = (bounds[first], split), (split, bounds[i + 1]), document
            if rng.random() < 0.5:
                a, b, label = b, a, 1
                stats.sop_swapped += 1
        ids_a, ws_a, ids_b, ws_b, truncated = _truncate_pair(document, a, b_document, b, max_tokens, rng)
        instance = _assemble(ids_a, ws_a, ids_b, ws_b, label, rng, config)
        instances.append(instance)
        stats.instances += 1
        stats.short_target += short
        stats.truncated += truncated
        stats.length_histogram[len(instance.to_mask.original_ids)] += 1
        first = i + 1
        if not config.albert_compat:  # ALBERT draws the target once for the whole document pass
            target, short = _target_length(config, rng)
    return instances


def _assemble(ids_a, ws_a, ids_b, ws_b, label, rng, config) -> Segmented:
    len_a, len_b = len(ids_a), len(ids_b)
    ids = np.empty(len_a + len_b + 3, np.int64)
    ids[0], ids[len_a + 1], ids[-1] = CLS, SEP, SEP
    ids[1: len_a + 1], ids[len_a + 2: -1] = ids_a, ids_b
    word_starts = np.zeros(len(ids), bool)
    word_starts[1: len_a + 1], word_starts[len_a + 2: -1] = ws_a, ws_b
    word_starts[1] = word_starts[len_a + 2] = True  # a segment starts a word, even when truncated
    # The masking draws are taken here, in the document's sequence of draws,
    # so an instance's masks do not depend on the batch it is masked in.
    draws = rng.random(masking_draws(word_starts, config.masking))
    return Segmented(ToMask(ids, word_starts, len_a, draws), label)
