import numpy as np
import pytest

from albertprep.core import records
from albertprep.core.records import Instance, MaskingConfig, MaskingStats, MaskingVocab, mask_instance

VOCAB = MaskingVocab(mask_id=4, random_ids=np.arange(5, 100))


def _instance(length=40, len_a=15, wide=False, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 1 << 17 if wide else 30000, length)
    ids[[0, len_a + 1, length - 1]] = [2, 3, 3]
    word_starts = rng.random(length) < 0.7
    masked = np.array(sorted(rng.choice(np.arange(1, len_a + 1), 3, replace=False)))
    return Instance(ids, word_starts, len_a, 1, masked, ids[masked] + 1)


@pytest.mark.parametrize("wide", [False, True])
def test_encode_decode_round_trip(wide):
    instance = _instance(wide=wide)
    record = records.encode(instance, vocab_size=1 << 17 if wide else 30000)
    decoded = records.decode(record)
    for field in ("input_ids", "word_starts", "masked_positions", "masked_ids"):
        np.testing.assert_array_equal(getattr(decoded, field), getattr(instance, field))
    assert (decoded.len_a, decoded.sop_label) == (instance.len_a, instance.sop_label)
    assert records.encode(decoded, vocab_size=1 << 17 if wide else 30000) == record
    assert len(record) == 8 + 40 * (4 if wide else 2) + 5 + 3 * 2 + 3 * (4 if wide else 2)


@pytest.mark.parametrize("wide", [False, True])
def test_encode_many_gives_each_instance_its_own_record(wide):
    """The batch encoder writes the bytes `encode` writes, instance by
    instance, across lengths that do and do not fill their last bit byte."""
    instances = [_instance(length, len_a, wide, seed)
                 for seed, (length, len_a) in enumerate([(40, 15), (8, 3), (17, 5), (64, 30), (9, 4)])]
    vocab_size = 1 << 17 if wide else 30000
    assert records.encode_many(instances, vocab_size) == [records.encode(i, vocab_size) for i in instances]
    assert records.encode_many([], vocab_size) == []


def test_features_are_albert_padded_features():
    instance = _instance()
    features = records.to_features(instance, records.FeatureLayout(64, 5))
    assert features["input_ids"].shape == (64,) and features["input_ids"].dtype == np.int32
    assert features["input_mask"].sum() == 40 and features["input_mask"][39] == 1 and features["input_mask"][40] == 0
    np.testing.assert_array_equal(features["segment_ids"][:40], [0] * 17 + [1] * 23)
    assert features["segment_ids"][40:].sum() == 0
    np.testing.assert_array_equal(features["masked_lm_weights"], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(features["masked_lm_positions"][:3], instance.masked_positions)
    assert features["sentence_order_label"] == 1


def test_a_record_of_another_version_is_refused():
    record = bytearray(records.encode(_instance(), 30000))
    record[0] = 9
    with pytest.raises(ValueError, match="version 9"):
        records.decode(bytes(record))


def test_rng_depends_only_on_its_seed_parts():
    a = records.rng_for(1, "doc", 0).random(4)
    assert np.array_equal(a, records.rng_for(1, "doc", 0).random(4))
    assert not np.array_equal(a, records.rng_for(1, "doc", 1).random(4))
    assert not np.array_equal(a, records.rng_for(2, "doc", 0).random(4))


def test_ngrams_never_cross_sep():
    # A and B are one word each: any span longer than one word would cross [SEP]
    ids = np.array([2, 10, 11, 3, 12, 13, 3])
    word_starts = np.array([0, 1, 0, 0, 1, 0, 0], bool)
    stats = MaskingStats()
    config = MaskingConfig(max_predictions_per_seq=20, masked_lm_prob=1.0, max_ngram=3)
    for seed in range(50):
        _, positions, _ = mask_instance(ids, word_starts, 2, np.random.default_rng(seed), config, VOCAB, stats)
        assert set(positions.tolist()) <= {1, 2, 4, 5}
    assert stats.ngram_counts[2:].sum() == 0 and stats.ngram_counts[1] > 0


def test_a_max_ngram_over_three_counts_every_span_length():
    """--max-ngram 5 masks spans of 4 and 5 words and counts them (the
    counts had room for 3 and failed the stage with a broadcast error),
    and counts merged with the default's keep every length."""
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 30000, 128)
    ids[[0, 64, 127]] = [2, 3, 3]
    word_starts = np.ones(128, bool)  # every token a word: room for any span
    config = MaskingConfig(max_predictions_per_seq=20, masked_lm_prob=0.15, max_ngram=5)
    stats = MaskingStats()
    for seed in range(50):
        mask_instance(ids, word_starts, 63, np.random.default_rng(seed), config, VOCAB, stats)
    assert len(stats.ngram_counts) == 6 and stats.ngram_counts[0] == 0 and (stats.ngram_counts[1:] > 0).all()
    assert stats.masked_tokens == 50 * 19 == (stats.ngram_counts * np.arange(6)).sum()
    merged = MaskingStats()
    merged.merge(stats)
    merged.merge(stats)
    np.testing.assert_array_equal(merged.ngram_counts, 2 * stats.ngram_counts)
    np.testing.assert_array_equal(merged.free_ngram_counts, 2 * stats.free_ngram_counts)


def test_masking_keeps_whole_words_and_the_budget():
    rng = np.random.default_rng(7)
    length, len_a = 120, 50
    ids = rng.integers(5, 100, length)
    ids[[0, len_a + 1, length - 1]] = [2, 3, 3]
    word_starts = rng.random(length) < 0.6
    config = MaskingConfig()
    for seed in range(100):
        masked_ids, positions, originals = mask_instance(
            ids, word_starts, len_a, np.random.default_rng(seed), config, VOCAB)
        assert len(positions) <= min(20, round(length * 0.15)) and len(positions) >= 1
        assert np.all(np.diff(positions) > 0)
        assert not set(positions.tolist()) & {0, len_a + 1, length - 1}
        np.testing.assert_array_equal(originals, ids[positions])
        untouched = np.setdiff1d(np.arange(length), positions)
        np.testing.assert_array_equal(masked_ids[untouched], ids[untouched])
        # whole words: a masked continuation piece has its word's start masked too
        starts = word_starts.copy()
        starts[[1, len_a + 2]] = True
        masked = set(positions.tolist())
        for p in masked:
            if not starts[p]:
                assert p - 1 in masked
            if p + 1 < length - 1 and p + 1 != len_a + 1 and not starts[p + 1]:
                assert p + 1 in masked  # ...and the rest of the word


def _to_mask(seed: int, config: MaskingConfig) -> records.ToMask:
    """A random instance as the instance stage assembles one, with its draws."""
    rng = np.random.default_rng(seed)
    length = int(rng.integers(8, 300))
    len_a = int(rng.integers(1, length - 3))
    ids = rng.integers(5, 30000, length)
    ids[[0, len_a + 1, length - 1]] = [2, 3, 3]
    word_starts = rng.random(length) < rng.uniform(0.05, 0.9)  # some instances of very long words
    word_starts[[0, len_a + 1, length - 1]] = False
    word_starts[[1, len_a + 2]] = True
    return records.ToMask(ids, word_starts, len_a, rng.random(records.masking_draws(word_starts, config)))


def test_an_instance_is_masked_the_same_in_any_batch():
    """Masks come from the instance's own draws alone: a batch, the same
    batch reversed, and each instance alone give the same masks, and the
    statistics add up the same."""
    config = MaskingConfig()
    batch = [_to_mask(seed, config) for seed in range(60)]
    together, reversed_stats, alone_stats = MaskingStats(), MaskingStats(), MaskingStats()
    masked = records.mask_batch(batch, config, VOCAB, together)
    backwards = records.mask_batch(batch[::-1], config, VOCAB, reversed_stats)[::-1]
    alone = [records.mask_batch([item], config, VOCAB, alone_stats)[0] for item in batch]
    for item, a, b, c in zip(batch, masked, backwards, alone):
        for x, y, z in zip(a, b, c):
            np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(x, z)
        assert len(a[1]) == records.mask_budget(len(item.original_ids), config)  # the exact budget, always
    for stats in (reversed_stats, alone_stats):
        np.testing.assert_array_equal(stats.ngram_counts, together.ngram_counts)
        np.testing.assert_array_equal(stats.replacement_counts, together.replacement_counts)
        assert stats.masked_tokens == together.masked_tokens
    assert together.masked_tokens == sum(len(m[1]) for m in masked)


@pytest.mark.parametrize("seed", range(8))
def test_the_fill_takes_the_first_word_of_the_shuffle(seed):
    """Four words of five pieces and a budget of three: no word fits, so the
    fill takes the first three pieces of the word the shuffle put first,
    the one its first draw picked (Fisher-Yates: place 0 gets word
    floor(u0 * 4))."""
    config = MaskingConfig()
    ids = np.arange(100, 123)
    ids[[0, 11, 22]] = [2, 3, 3]
    word_starts = np.zeros(23, bool)
    word_starts[[1, 6, 12, 17]] = True
    draws = np.random.default_rng(seed).random(records.masking_draws(word_starts, config))
    _, positions, _ = records.mask_batch([records.ToMask(ids, word_starts, 10, draws)], config, VOCAB)[0]
    first = [1, 6, 12, 17][int(draws[0] * 4)]
    np.testing.assert_array_equal(positions, [first, first + 1, first + 2])


def _flat(items: list[records.ToMask]) -> records.FlatInstances:
    return records.FlatInstances(np.concatenate([i.original_ids for i in items]),
                                 np.concatenate([i.word_starts for i in items]),
                                 np.array([len(i.original_ids) for i in items]), np.array([i.len_a for i in items]))


def test_fixed_blocks_mask_the_same_in_any_batch_and_past_their_steps():
    """The instance stage's layout (records.fixed_draw_block): each instance
    reads a block of the same size. Instances of many one-piece words and
    instances of words longer than the budget (every step refused, so the
    block's steps run out and the fill takes the rest of the shuffle from
    the block's own generator) are masked the same alone, in a batch and in
    a reversed batch, and always get exactly their budget."""
    config = MaskingConfig(max_predictions_per_seq=5)
    block = records.fixed_draw_block(config)
    block_draws = 2 * sum(block)
    items = [_to_mask(seed, config) for seed in range(30)]
    for words in (40, 60):  # words of 6 pieces against a budget of 5: more words than the block's steps
        segment = np.zeros(3 * words, bool)  # words / 2 words of 6 pieces
        segment[::6] = True
        starts = np.concatenate([[False], segment, [False], segment, [False]])
        ids = np.arange(100, 100 + len(starts))
        ids[[0, 3 * words + 1, -1]] = [2, 3, 3]
        items.append(records.ToMask(ids, starts, 3 * words, np.zeros(0)))
    assert max(np.count_nonzero(i.word_starts) for i in items) > block[0]
    blocks = np.random.default_rng(0).random((len(items), block_draws))

    def mask(order: list[int]) -> list[tuple]:
        flat = _flat([items[r] for r in order])
        masks = records.mask_flat(flat, blocks[order].ravel(), np.arange(len(order)) * block_draws, config, VOCAB,
                                  block=block)
        cuts, token_cuts = np.cumsum(masks.counts).tolist(), np.cumsum(flat.lengths).tolist()
        return [(masks.input_ids[t0:t1], masks.positions[m0:m1], masks.originals[m0:m1])
                for t0, t1, m0, m1 in zip([0, *token_cuts], token_cuts, [0, *cuts], cuts)]

    together = mask(list(range(len(items))))
    backwards = mask(list(range(len(items)))[::-1])[::-1]
    for r, item in enumerate(items):
        alone = mask([r])[0]
        for x, y, z in zip(together[r], backwards[r], alone):
            np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(x, z)
        positions = together[r][1]
        assert len(positions) == records.mask_budget(len(item.original_ids), config)
        np.testing.assert_array_equal(together[r][2], item.original_ids[positions])
    for r in (-2, -1):  # the fill: one word's first five pieces, the word the (continued) shuffle put first
        positions = together[r][1]
        assert positions[0] % 6 in (1, 2) and np.array_equal(positions, positions[0] + np.arange(5))


def test_a_reseeded_generator_draws_what_rng_for_draws():
    """records.Reseeder is rng_for without a new generator each time: the
    same numbers, whatever was drawn from it before it was reseeded."""
    reseeded = records.Reseeder()
    for parts in [(1, "doc", 0), (1, "doc", 1), (2, "doc", 0), (1, "other", 0), (1, "doc", 0)]:
        rng = reseeded(*parts)
        np.testing.assert_array_equal(rng.random(7), records.rng_for(*parts).random(7))
        rng.random(3)  # left part-used: the next reseed starts afresh all the same
    assert not np.array_equal(records.rng_for(1, "doc", 0).random(4), records.rng_for(1, "doc", 1).random(4))


def test_derived_keys_are_each_keys_own_and_distinct():
    """Each key's run of derived keys depends on that key alone (a batch of
    passes gets the keys each pass would get alone), and none repeat."""
    keys = np.array([records.stable_hash("a", 0), records.stable_hash("a", 1), 0, 2**64 - 1], np.uint64)
    counts = np.array([3, 0, 5, 2])
    together = records.derived_keys(keys, counts)
    alone = [records.derived_keys(keys[i:i + 1], counts[i:i + 1]) for i in range(len(keys))]
    np.testing.assert_array_equal(together, np.concatenate(alone))
    assert together.dtype == np.uint64 and len(together) == counts.sum() == len(set(together.tolist()))
    assert not set(together.tolist()) & set(keys.tolist())
