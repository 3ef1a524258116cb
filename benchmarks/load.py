"""Loader throughput at sequence length 512, against reading the raw shards.

Prepares the nine books (max_seq_length 512, dupe factor 5: about 8000
instances in 4 shards) unless --prepared names a prepared directory, then
measures examples/s of the Grain loader (batches of 128, endless, shuffled)
for worker_count 0, 1 and 2, with stored and with dynamic masks, each after
a warm-up that excludes the workers' start. In the same run: the batched
read rate of the raw ArrayRecord shards (ArrayRecordReader.read of shuffled
positions, 128 at a time, no decoding), so loader / raw says what Grain and
decoding cost. Target: one worker process sustains at least 5,000
examples/s (three times what one H100 consumes training ALBERT-base).

    python benchmarks/load.py [--seconds 5] [--prepared DIR] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pathlib
import sys
import tempfile
import time

import numpy as np
from array_record.python.array_record_module import ArrayRecordReader

from albertprep import cli
from albertprep.loaders import AlbertLoader, LoaderConfig, PreparedDataset

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET = 5000  # examples/s, one worker process


def prepare(corpora: pathlib.Path, output: pathlib.Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # the command's own report
        code = cli.main(["prepare", str(corpora / "books"), "--output", str(output),
                         "--spm-model", str(corpora / "spm" / "albert-en-30k-clean.model"),
                         "--max-seq-length", "512", "--dupe-factor", "5", "--num-shards", "4", "--eval-fraction", "0"])
    assert code == 0


def raw_read_rate(dataset: PreparedDataset, batch_size: int, seconds: float) -> float:
    """Records/s reading shuffled positions in batches, as bytes only."""
    readers = [ArrayRecordReader(shard.path) for shard in dataset.shards if shard.records]
    sizes = [shard.records for shard in dataset.shards if shard.records]
    offsets = np.cumsum([0] + sizes)
    rng = np.random.default_rng(0)
    read = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        order = rng.permutation(offsets[-1])
        for begin in range(0, len(order), batch_size):
            keys = order[begin:begin + batch_size]
            shard_of = np.searchsorted(offsets, keys, side="right") - 1
            for shard in np.unique(shard_of):
                positions = (keys[shard_of == shard] - offsets[shard]).tolist()
                read += len(readers[shard].read(positions))
    elapsed = time.perf_counter() - started
    for reader in readers:
        reader.close()
    return read / elapsed


def loader_rate(dataset: PreparedDataset, config: LoaderConfig, seconds: float, warmup: int = 5) -> float:
    with iter(AlbertLoader(dataset, config)) as batches:
        for _ in range(warmup):  # the workers' start and their first buffers
            next(batches)
        examples = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            examples += len(next(batches)["input_ids"])
        return examples / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured per configuration")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--prepared", type=pathlib.Path, help="a prepared directory to read instead")
    default_corpora = os.environ.get("ALBERTPREP_CORPORA", ROOT.parent / "shared" / "corpora")
    parser.add_argument("--corpora", type=pathlib.Path, default=default_corpora)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.prepared
        if directory is None:
            directory = pathlib.Path(tmp) / "prepared"
            started = time.perf_counter()
            prepare(args.corpora, directory)
            print(f"prepared the books in {time.perf_counter() - started:.1f}s")
        dataset = PreparedDataset.open(directory)
        length = dataset.layout.max_seq_length
        mean_length = dataset.manifest.splits[dataset.split].statistics["mean_length"]
        print(f"{dataset.num_records} instances in {len(dataset.shards)} shards, max_seq_length {length} "
              f"(mean {mean_length:.0f} tokens), batch size {args.batch_size}, {os.cpu_count()} CPUs")
        raw = raw_read_rate(dataset, args.batch_size, args.seconds)
        print(f"raw ArrayRecord batched reads: {raw:,.0f} records/s\n")
        print(f"{'workers':>7} {'masks':>8} {'examples/s':>11} {'of raw':>7}")
        rates = {}
        for workers in (0, 1, 2):
            for dynamic in (False, True):
                config = LoaderConfig(batch_size=args.batch_size, seed=1, dynamic_masking=dynamic,
                                      worker_count=workers)
                rate = rates[workers, dynamic] = loader_rate(dataset, config, args.seconds)
                print(f"{workers:>7} {'dynamic' if dynamic else 'stored':>8} {rate:>11,.0f} {rate / raw:>7.2f}")
    one_worker = rates[1, False]
    print(f"\none worker, stored masks: {one_worker:,.0f} examples/s (target >= {TARGET:,}: "
          f"{'met' if one_worker >= TARGET else 'NOT met'}); with dynamic masks {rates[1, True]:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
