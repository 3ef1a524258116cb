"""The Grain loader's batches: shapes, epochs, process sharding, dynamic masking, devices."""

import dataclasses
import subprocess
import sys

import grain.python as grain
import jax
import numpy as np
import pytest

from albertprep.core import records
from albertprep.loaders import FEATURE_NAMES, AlbertLoader, LoaderConfig, PreparedDataset, batch_digest
from albertprep.loaders.source import PreparedShardsSource

SEED = 7


@pytest.fixture(scope="module")
def dataset(small_prepared):
    return PreparedDataset.open(small_prepared)


@pytest.fixture(scope="module")
def stored(dataset):
    """The raw records by key, and each record's stored features' digest → key."""
    source = PreparedShardsSource(dataset)
    raw = [source[k] for k in range(len(source))]
    keys = {batch_digest(records.decode_features(r, dataset.layout)): k for k, r in enumerate(raw)}
    assert len(keys) == len(raw), "two records with the same features: rows could not be told apart"
    return raw, keys


def load(dataset, **config):
    with iter(AlbertLoader(dataset, LoaderConfig(**config))) as batches:
        return list(batches)


def take(dataset, count, **config):
    with iter(AlbertLoader(dataset, LoaderConfig(**config))) as batches:
        return [next(batches) for _ in range(count)]


def rows(batches):
    for batch in batches:
        for i in range(len(batch["input_ids"])):
            yield {name: array[i] for name, array in batch.items()}


def keys_of(batches, stored):
    return [stored[1][batch_digest(row)] for row in rows(batches)]


def test_batches_are_fixed_shape_albert_features(dataset):
    batch = take(dataset, 1, batch_size=8, seed=SEED)[0]
    assert sorted(batch) == sorted(FEATURE_NAMES)
    shapes = {name: (array.shape, array.dtype) for name, array in batch.items()}
    assert shapes == {
        "input_ids": ((8, 128), np.int32), "input_mask": ((8, 128), np.int32), "segment_ids": ((8, 128), np.int32),
        "masked_lm_positions": ((8, 20), np.int32), "masked_lm_ids": ((8, 20), np.int32),
        "masked_lm_weights": ((8, 20), np.float32), "sentence_order_label": ((8,), np.int32),
    }
    assert set(np.unique(batch["sentence_order_label"]).tolist()) <= {0, 1}


def test_an_epoch_is_every_stored_instance_once(dataset, stored):
    keys = keys_of(load(dataset, batch_size=4, seed=SEED, num_epochs=1, drop_remainder=False), stored)
    assert sorted(keys) == list(range(dataset.num_records))


def _exact_batch(n: int) -> int:
    """A batch size that ends exactly at each epoch's end (the fixture's size
    follows the corpus stage's output, so it is not hard-coded)."""
    return next(b for b in (5, 4, 3, 6, 7, 2, 1) if n % b == 0)


def test_each_epoch_is_a_new_seeded_shuffle(dataset, stored):
    n = dataset.num_records
    batch = _exact_batch(n)
    keys = keys_of(load(dataset, batch_size=batch, seed=SEED, num_epochs=3), stored)
    epochs = [keys[e * n:(e + 1) * n] for e in range(3)]
    assert all(sorted(epoch) == list(range(n)) for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2] != epochs[0]
    assert epochs[0] != sorted(epochs[0])
    # Grain's IndexSampler over all records, unsharded, gives the order
    sampler = grain.IndexSampler(n, grain.NoSharding(), shuffle=True, num_epochs=3, seed=SEED)
    assert keys == [sampler[g].record_key for g in range(3 * n)]
    assert keys_of(load(dataset, batch_size=batch, seed=SEED, num_epochs=3), stored) == keys
    assert keys_of(load(dataset, batch_size=batch, seed=SEED + 1, num_epochs=1), stored) != epochs[0]


def test_endless_repetition(dataset, stored):
    n = dataset.num_records
    keys = keys_of(take(dataset, 100, batch_size=4, seed=SEED, num_epochs=None), stored)
    assert sorted(keys[:n]) == sorted(keys[n:2 * n]) == list(range(n))
    assert AlbertLoader(dataset, LoaderConfig(batch_size=4, num_epochs=None)).num_batches is None


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_drop_remainder(dataset, drop_remainder):
    n = dataset.num_records
    batch = next(b for b in (4, 5, 7, 3) if n % b)  # one that leaves a remainder
    sizes = [batch] * (n // batch) + ([] if drop_remainder else [n % batch])
    loader = AlbertLoader(dataset, LoaderConfig(batch_size=batch, num_epochs=1, drop_remainder=drop_remainder))
    with iter(loader) as batches:
        assert [len(b["input_ids"]) for b in batches] == sizes
    assert loader.num_batches == len(sizes)


@pytest.mark.parametrize("process_count", [2, 3])
def test_processes_share_each_epoch_disjointly(dataset, stored, process_count):
    """With batches of one, process p reads positions p, p + P, ...; position g is in epoch g // N."""
    n = dataset.num_records
    per_process = [keys_of(load(dataset, batch_size=1, seed=SEED, num_epochs=2, process_index=p,
                                 process_count=process_count), stored) for p in range(process_count)]
    assert len({len(keys) for keys in per_process}) == 1  # the same number of steps everywhere
    read = len(per_process[0]) * process_count  # global positions read: the last 2n mod P are dropped
    assert 2 * n - process_count < read <= 2 * n
    for epoch in range(2):
        seen = [key for p, keys in enumerate(per_process) for k, key in enumerate(keys)
                if (k * process_count + p) // n == epoch]
        whole = min(n, read - epoch * n)  # positions of this epoch that were read
        assert len(seen) == len(set(seen)) == whole  # no record twice in an epoch
        if whole == n:
            assert sorted(seen) == list(range(n))


@pytest.mark.parametrize("process_count, dynamic", [(2, False), (3, True)])
def test_a_global_batch_is_the_same_whatever_the_process_count(dataset, process_count, dynamic):
    """The processes' batches side by side, as make_array_from_process_local_data
    lays them out, are the one-process batches, row for row, masks included;
    over two epochs, so the rounds cross an epoch's end."""
    n, per_process = dataset.num_records, 4
    global_batch = per_process * process_count
    steps = 2 * n // global_batch
    one = take(dataset, steps, batch_size=global_batch, seed=SEED, num_epochs=2, dynamic_masking=dynamic)
    parts = [take(dataset, steps, batch_size=per_process, seed=SEED, num_epochs=2, dynamic_masking=dynamic,
                  process_index=p, process_count=process_count) for p in range(process_count)]
    for step in range(steps):
        for name, array in one[step].items():
            np.testing.assert_array_equal(np.concatenate([part[step][name] for part in parts]), array)


@pytest.mark.parametrize("dynamic", [False, True])
def test_worker_processes_yield_the_same_batches_in_the_same_order(dataset, stored, dynamic):
    """Each Grain worker makes whole batches, round robin: the batches of 2 and
    3 workers are those of none, in order, masks included."""
    config = dict(batch_size=4, seed=SEED, num_epochs=1, drop_remainder=False, dynamic_masking=dynamic)
    inline = [batch_digest(b) for b in load(dataset, **config)]
    assert len(inline) == AlbertLoader(dataset, LoaderConfig(**config)).num_batches == -(-dataset.num_records // 4)
    for workers in (2, 3):
        assert [batch_digest(b) for b in load(dataset, **config, worker_count=workers)] == inline, workers
    if not dynamic:  # (rows are told apart by their stored masks)
        assert sorted(keys_of(load(dataset, **config, worker_count=2), stored)) == list(range(dataset.num_records))


def remask(raw, dataset, vocab, epoch, key, seed=SEED):
    """What dynamic masking must yield for a record, straight from albertprep.core.records."""
    instance = records.decode(raw[key])
    ids, positions, masked = records.mask_instance(instance.original_ids(), instance.word_starts, instance.len_a,
                                                   records.rng_for(seed, epoch, key), dataset.masking, vocab)
    return records.to_features(dataclasses.replace(instance, input_ids=ids, masked_positions=positions,
                                                   masked_ids=masked), dataset.layout)


def test_dynamic_masks_are_seeded_by_seed_epoch_and_instance(dataset, stored):
    raw, _ = stored
    n = dataset.num_records
    vocab = dataset.masking_vocab()
    got = list(rows(load(dataset, batch_size=_exact_batch(n), seed=SEED, num_epochs=2, dynamic_masking=True)))
    sampler = grain.IndexSampler(n, grain.NoSharding(), shuffle=True, num_epochs=2, seed=SEED)
    by_epoch = [{}, {}]
    for g, row in enumerate(got):
        key = sampler[g].record_key
        assert batch_digest(row) == batch_digest(remask(raw, dataset, vocab, g // n, key))
        by_epoch[g // n][key] = row
    differs_between_epochs = sum(not np.array_equal(by_epoch[0][k]["masked_lm_positions"],
                                                    by_epoch[1][k]["masked_lm_positions"]) for k in range(n))
    differs_from_stored = sum(not np.array_equal(by_epoch[0][k]["masked_lm_positions"],
                                                 records.decode_features(raw[k], dataset.layout)["masked_lm_positions"])
                              for k in range(n))
    assert differs_between_epochs > 0.9 * n and differs_from_stored > 0.9 * n


def test_dynamic_masks_keep_the_instance_and_albert_proportions(dataset, stored):
    raw, _ = stored
    masked = maskable = 0
    replacements = np.zeros(3)
    for row in rows(load(dataset, batch_size=5, seed=SEED, num_epochs=2, dynamic_masking=True)):
        weights = row["masked_lm_weights"] > 0
        positions, originals = row["masked_lm_positions"][weights], row["masked_lm_ids"][weights]
        original_ids = row["input_ids"].copy()
        original_ids[positions] = originals
        length = int(row["input_mask"].sum())
        assert any(np.array_equal(original_ids[:length], records.decode(r).original_ids()) for r in raw)
        masked += len(positions)
        maskable += length - 3
        shown = row["input_ids"][positions]
        replacements += [(shown == 4).sum(), ((shown != 4) & (shown != originals)).sum(), (shown == originals).sum()]
    statistics = dataset.manifest.splits["train"].statistics
    assert masked / maskable == pytest.approx(statistics["masked_fraction"], abs=0.005)
    assert replacements / replacements.sum() == pytest.approx([0.8, 0.1, 0.1], abs=0.04)


def test_dynamic_masks_do_not_depend_on_the_worker_count(dataset, stored):
    raw, _ = stored
    vocab = dataset.masking_vocab()
    expected = sorted(batch_digest(remask(raw, dataset, vocab, 0, k)) for k in range(dataset.num_records))
    batches = load(dataset, batch_size=4, seed=SEED, num_epochs=1, drop_remainder=False, dynamic_masking=True,
                   worker_count=2)
    assert sorted(batch_digest(row) for row in rows(batches)) == expected


def test_batches_are_placed_with_the_given_sharding(dataset):
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data", None))
    config = LoaderConfig(batch_size=8, seed=SEED)
    with iter(AlbertLoader(dataset, config, sharding=sharding)) as batches:
        placed = [next(batches) for _ in range(3)]
    for host, device in zip(take(dataset, 3, batch_size=8, seed=SEED), placed):
        for name in FEATURE_NAMES:
            assert isinstance(device[name], jax.Array)
            assert device[name].sharding.spec == jax.sharding.PartitionSpec(*("data", None)[:host[name].ndim])
            np.testing.assert_array_equal(np.asarray(device[name]), host[name])


@pytest.mark.parametrize("settings, message", [
    (dict(batch_size=0), "batch_size must be at least 1"),
    (dict(batch_size=4, seed=-1), "seed must be in"),
    (dict(batch_size=4, num_epochs=0), "num_epochs must be at least 1"),
    (dict(batch_size=4, process_index=0), "give both process_index and process_count"),
    (dict(batch_size=4, process_index=2, process_count=2), "process_index 2 is not in"),
])
def test_bad_configurations_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        LoaderConfig(**settings)


def test_masking_with_more_predictions_than_the_layout_is_refused(dataset):
    with pytest.raises(ValueError, match="exceeds the layout's 20"):
        AlbertLoader(dataset, LoaderConfig(batch_size=4, dynamic_masking=True,
                                           masking=records.MaskingConfig(max_predictions_per_seq=30)))


def test_a_split_too_small_for_a_batch_yields_none(dataset):
    loader = AlbertLoader(dataset, LoaderConfig(batch_size=200, num_epochs=1))
    assert loader.num_batches == 0
    with iter(loader) as batches:
        assert list(batches) == []


SCRIPT = """
from albertprep.loaders import AlbertLoader, LoaderConfig, PreparedDataset
{guard}
    batches = iter(AlbertLoader(PreparedDataset.open({directory!r}),
                                LoaderConfig(batch_size=4, seed=1, dynamic_masking=True, worker_count=2)))
    print(next(batches)["input_ids"].shape)
"""


def test_an_iterator_left_open_ends_quietly(small_prepared, tmp_path):
    """The README's example with workers, never closed: nothing on stderr at
    exit (no __del__ errors, no leaked shared memory)."""
    script = tmp_path / "example.py"
    script.write_text(SCRIPT.format(guard='if __name__ == "__main__":', directory=str(small_prepared)))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "(4, 128)", result.stderr[-2000:]
    assert result.stderr == ""


def test_a_script_without_the_main_guard_is_told_why(small_prepared, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT.format(guard="if True:", directory=str(small_prepared)))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    lines = result.stderr.splitlines()
    assert result.returncode != 0
    assert lines[0].startswith("albertprep loader: worker_count > 0 starts worker processes with spawn")
    assert 'if __name__ == "__main__":' in lines[0] and len(lines) < 30
