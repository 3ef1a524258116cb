import numpy as np

from albertprep.core.records import MaskingVocab
from albertprep.pipelines.instances import (
    BPool,
    InstanceConfig,
    InstanceStats,
    PooledDocument,
    TokenizedDocument,
    create_instances,
    truncate_pairs,
)

VOCAB = MaskingVocab(mask_id=4, random_ids=np.arange(5, 1000))


WORD_START = np.ones(30000, bool)


def _document(*sentences: tuple[int, int]) -> TokenizedDocument:
    """Sentences given as (length, first id): ids count up from there."""
    return TokenizedDocument.from_sentences([np.arange(first, first + n) for n, first in sentences], WORD_START)


def _albert_truncate(len_a, len_b, max_tokens, draws):
    """google-research/albert's truncate_seq_pair, one token at a time."""
    a, b = list(range(len_a)), list(range(100, 100 + len_b))
    for draw in draws:
        if len(a) + len(b) <= max_tokens:
            break
        trunc = a if len(a) > len(b) else b
        if draw < 0.5:
            del trunc[0]
        else:
            trunc.pop()
    return a, b


CASES = [(30, 3, 10), (3, 30, 10), (12, 12, 5), (50, 49, 60), (7, 2, 3), (4, 4, 20)]


def test_truncation_is_albert_truncate_seq_pair():
    """All pairs at once, each reading its own draws in turn, cut exactly as
    ALBERT's one-token-at-a-time loop cuts it with the same draws."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        lengths = np.array(CASES * 3)
        len_a, len_b, max_tokens = lengths[:, 0], lengths[:, 1], 10
        excess = np.maximum(len_a + len_b - max_tokens, 0)
        draws = rng.random(int(excess.sum()))
        cuts = truncate_pairs(len_a, len_b, max_tokens, draws)
        at = 0
        for r in range(len(lengths)):
            a, b = _albert_truncate(int(len_a[r]), int(len_b[r]), max_tokens, draws[at:at + excess[r]])
            at += excess[r]
            front_a, back_a, front_b, back_b = (int(c[r]) for c in cuts)
            assert a == list(range(front_a, len_a[r] - back_a))
            assert b == list(range(100 + front_b, 100 + len_b[r] - back_b))


def _make(document, seed=0, **config):
    stats = InstanceStats()
    instances = create_instances(document, np.random.default_rng(seed), InstanceConfig(**config), VOCAB, stats)
    return instances, stats


def test_b_never_comes_from_another_document_in_strict_mode():
    document = _document(*[(5, 10 * i + 10) for i in range(40)])
    tokens = set(document.ids.tolist())
    for seed in range(10):
        instances, stats = _make(document, seed, max_seq_length=32, short_seq_prob=0.0)
        assert instances and stats.random_b == 0
        for instance in instances:
            assert set(instance.original_ids().tolist()) - {2, 3} <= tokens
            a = instance.original_ids()[1: instance.len_a + 1]
            b = instance.original_ids()[instance.len_a + 2: -1]
            # natural order: A's sentences precede B's; swapped: the reverse
            assert (a.max() < b.min()) if instance.sop_label == 0 else (b.max() < a.min())


def test_a_lone_last_sentence_is_dropped_and_counted():
    document = _document((20, 10), (20, 40), (20, 70))
    instances, stats = _make(document, max_seq_length=40 + 3, short_seq_prob=0.0)
    assert len(instances) == 1 and stats.dropped_sentences == 1 and stats.dropped_tokens == 20
    single, stats = _make(_document((8, 10)), max_seq_length=64)
    assert single == [] and stats.dropped_sentences == 1


def _pool(*documents):
    return BPool([PooledDocument(f"d{i}", (d,), True) for i, d in enumerate(documents)])


def test_albert_compat_borrows_b_from_another_document():
    documents = [_document((6, 500)), _document((8, 10)), _document((6, 600))]  # the document itself is d1
    pool = _pool(*documents)
    config = InstanceConfig(max_seq_length=64, albert_compat=True)
    borrowed = set()
    for seed in range(20):
        stats = InstanceStats()
        instances = create_instances(documents[1], np.random.default_rng(seed), config, VOCAB, stats, pool, "d1")
        assert len(instances) == 1 and instances[0].sop_label == 1 and stats.random_b == 1
        b = instances[0].original_ids()[instances[0].len_a + 2: -1]
        assert b.min() >= 500  # never from itself
        borrowed.add(int(b.min()) // 100)
    assert borrowed == {5, 6}  # from either other document
    # a corpus of one document (a book alone) borrows from the document itself, as ALBERT's
    # script does when it finds no other: nothing is dropped
    book = _document((8, 10), (5, 300), (6, 400))
    stats = InstanceStats()
    config = InstanceConfig(max_seq_length=12, albert_compat=True)
    instances = create_instances(book, np.random.default_rng(0), config, VOCAB, stats, _pool(book), "d0")
    assert instances and stats.dropped_sentences == 0 and stats.random_b > 0
    alone, stats = _make(_document((8, 10)), albert_compat=True)  # no pool at all: dropped, counted
    assert alone == [] and stats.dropped_sentences == 1


def test_a_long_pooled_document_keeps_windows_that_start_b_where_albert_would():
    """A document longer than `windows` full sequences is kept as windows:
    each starts at a drawn sentence and holds the sentences after it up to
    a full sequence, and every B drawn from it is a run of whole sentences
    that starts a window."""
    long_document = _document(*[(5, 1000 + 10 * i) for i in range(400)])  # 2,000 tokens
    pooled = PooledDocument.of("long", long_document, np.random.default_rng(3), max_tokens=61, windows=4)
    assert not pooled.whole and len(pooled.pieces) == 4
    starts = {int(p.ids[0]) for p in pooled.pieces}
    for piece in pooled.pieces:
        assert 61 <= len(piece.ids) <= 61 + 5 and piece.bounds[0] == 0 and piece.bounds[-1] == len(piece.ids)
    short = PooledDocument.of("short", _document((5, 10)), np.random.default_rng(3), max_tokens=61, windows=4)
    assert short.whole
    pool = BPool([pooled, short])
    for seed in range(30):
        document, (lo, hi) = pool.draw("short", 20, *np.random.default_rng(seed).random(2))
        assert lo == 0 and int(document.ids[0]) in starts and hi - lo >= 20
        assert hi in document.bounds.tolist()


def test_short_targets_and_lengths():
    document = _document(*[(7, 10 * i + 10) for i in range(2000)])
    short = made = 0
    for seed in range(10):  # ~110 instances a pass: one pass alone spreads the share by +-0.03
        instances, stats = _make(document, seed, max_seq_length=128)
        assert all(len(i.input_ids) <= 128 for i in instances)
        assert stats.length_histogram.sum() == len(instances) == stats.instances
        short, made = short + stats.short_target, made + stats.instances
    assert abs(short / made - 0.1) < 0.03
