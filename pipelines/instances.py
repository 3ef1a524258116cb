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
a single-sentence chunk takes B from a random other document of the same
input file, labelled 1, as ALBERT's script does with its in-memory
documents; that makes label 1 mean "swapped or random" again.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipelines.records import Instance, MaskingConfig, MaskingStats, MaskingVocab, mask_instance
from pipelines.tokenizer import SPECIAL_PIECES

CLS, SEP = SPECIAL_PIECES["[CLS]"], SPECIAL_PIECES["[SEP]"]


@dataclasses.dataclass(frozen=True)
class InstanceConfig:
    max_seq_length: int = 512
    short_seq_prob: float = 0.1
    albert_compat: bool = False
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
class Sentence:
    ids: np.ndarray
    word_starts: np.ndarray


def _truncate_pair(a: list[Sentence], b: list[Sentence], max_tokens: int, rng: np.random.Generator):
    """ALBERT's truncate_seq_pair: one token at a time from the longer side
    (B on a tie), from its front or back with equal odds, one draw a token.

    Which side each step hits depends on the lengths alone, so the steps
    are laid out at once: the longer side down to the other, then turns.
    """
    ids_a = np.concatenate([s.ids for s in a])
    ws_a = np.concatenate([s.word_starts for s in a])
    ids_b = np.concatenate([s.ids for s in b])
    ws_b = np.concatenate([s.word_starts for s in b])
    len_a, len_b = len(ids_a), len(ids_b)
    excess = len_a + len_b - max_tokens
    if excess <= 0:
        return ids_a, ws_a, ids_b, ws_b, False
    first, second = (0, 1) if len_a > len_b else (1, 0)  # 0 = A, 1 = B
    lead = min(excess, len_a - len_b if len_a > len_b else len_b - len_a + 1)
    sides = np.full(excess, first, np.int8)
    sides[lead:][::2] = second
    front = rng.random(excess) < 0.5
    cut_a, front_a = int((sides == 0).sum()), int((front & (sides == 0)).sum())
    cut_b, front_b = excess - cut_a, int((front & (sides == 1)).sum())
    a_slice = slice(front_a, len_a - (cut_a - front_a))
    b_slice = slice(front_b, len_b - (cut_b - front_b))
    return ids_a[a_slice], ws_a[a_slice], ids_b[b_slice], ws_b[b_slice], True


def _target_length(config: InstanceConfig, rng: np.random.Generator) -> tuple[int, bool]:
    max_tokens = config.max_seq_length - 3
    if rng.random() < config.short_seq_prob:
        return int(rng.integers(2, max_tokens + 1)), True
    return max_tokens, False


def create_instances(
    document: list[Sentence],
    rng: np.random.Generator,
    config: InstanceConfig,
    vocab: MaskingVocab,
    stats: InstanceStats,
    other_documents: list[list[Sentence]] | None = None,
) -> list[Instance]:
    """The instances of one document (one duplicate), masked.

    `rng` is seeded by (seed, document id, duplicate index); `other_documents`
    (albert_compat only) are the documents B may be borrowed from.
    """
    max_tokens = config.max_seq_length - 3
    if stats.length_histogram is None:
        stats.length_histogram = np.zeros(config.max_seq_length + 1, np.int64)
    instances: list[Instance] = []
    target, short = _target_length(config, rng)
    chunk: list[Sentence] = []
    chunk_length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i].ids)
        last = i == len(document) - 1
        if not (last or chunk_length >= target):
            i += 1
            continue
        if len(chunk) == 1 and not config.albert_compat:
            if last:
                stats.dropped_sentences += 1
                stats.dropped_tokens += chunk_length
                break
            i += 1  # strict SOP needs two sentences: keep filling
            continue
        a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
        a, b = chunk[:a_end], chunk[a_end:]
        label = 0
        if len(chunk) == 1:  # albert_compat: B from a random other document
            b = _random_b(other_documents, target - chunk_length, rng)
            if not b:
                stats.dropped_sentences += 1
                stats.dropped_tokens += chunk_length
                chunk, chunk_length = [], 0
                i += 1
                continue
            label = 1
            stats.random_b += 1
        elif rng.random() < 0.5:
            a, b, label = b, a, 1
            stats.sop_swapped += 1
        ids_a, ws_a, ids_b, ws_b, truncated = _truncate_pair(a, b, max_tokens, rng)
        instances.append(_assemble(ids_a, ws_a, ids_b, ws_b, label, rng, config, vocab, stats.masking))
        stats.instances += 1
        stats.short_target += short
        stats.truncated += truncated
        stats.length_histogram[len(instances[-1].input_ids)] += 1
        chunk, chunk_length = [], 0
        target, short = _target_length(config, rng)
        i += 1
    return instances


def _random_b(others: list[list[Sentence]] | None, wanted: int, rng: np.random.Generator) -> list[Sentence]:
    candidates = [d for d in (others or []) if d]
    if not candidates:
        return []
    document = candidates[int(rng.integers(len(candidates)))]
    start = int(rng.integers(len(document)))
    taken, length = [], 0
    for sentence in document[start:]:
        taken.append(sentence)
        length += len(sentence.ids)
        if length >= wanted:
            break
    return taken


def _assemble(ids_a, ws_a, ids_b, ws_b, label, rng, config, vocab, masking_stats) -> Instance:
    ids = np.concatenate([[CLS], ids_a, [SEP], ids_b, [SEP]]).astype(np.int64)
    word_starts = np.concatenate([[False], ws_a, [False], ws_b, [False]]).astype(bool)
    len_a = len(ids_a)
    word_starts[1] = word_starts[len_a + 2] = True  # a segment starts a word, even when truncated
    input_ids, positions, originals = mask_instance(ids, word_starts, len_a, rng, config.masking, vocab, masking_stats)
    return Instance(input_ids, word_starts, len_a, label, positions, originals)
