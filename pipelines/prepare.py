"""The instance stage as Beam pipelines: documents → vocabulary → shards.

Like the corpus stage, the graphs use only Create, single-output ParDos,
GroupByKey and Flatten, ending in one terminal step, so they run unchanged
on the DaskRunner. Each task (a byte range of a documents file) writes its
records as sorted runs per shard (pipelines/runs.py) and yields small
tagged tuples: ("run", shard, path) for each run and one ("stats", ...) at
its end; the run paths are grouped by shard and each shard is written as
the merge of its runs, shards in parallel; the manifest step gathers the
shard list and the statistics. No step holds a shard in memory, and no
record passes through the runner.

Every random draw comes from a generator seeded by (seed, document id,
duplicate index), keys and splits from stable hashes of ids: the shards are
byte-identical whatever the runner, worker count or order of processing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from albertprep.core import atomic, malloc, records
from albertprep.core.documents import Document
from albertprep.core.layout import COMPLETED, MANIFEST, RUNS, SPLITS, SPM_MODEL, sha256_file
from albertprep.core.manifest import Manifest, ShardEntry, SplitEntry
from albertprep.core.options import setting
from albertprep.core.tokenizer import Tokenizer
from albertprep.pipelines import runners, runs, textformats
from albertprep.pipelines.instances import (
    BPool,
    InstanceBatch,
    InstanceConfig,
    InstanceStats,
    PooledDocument,
    TokenizedDocument,
)

# One record a chunk: cheap random access for Grain. Uncompressed: a record is
# already packed (uint16 ids, bit-packed word starts), and ArrayRecord's
# default zstd on one-record chunks saved 10% of the bytes (363 against 401
# a record at 128) for 5x the CPU to write (12.4 against 2.5 us) and 2.4x to
# read (7.1 against 2.9 us).
ARRAY_RECORD_OPTIONS = "group_size:1,uncompressed"
_LOG = logging.getLogger(__name__)
_PROGRESS_SECONDS = 30.0
# Records a task buffers before it writes them out as runs: the bound on its
# memory, whatever the corpus, dupe factor or shard size.
_RUN_BUFFER_BYTES = 8 << 20
# Tokens of the instances built and masked together (instances.InstanceBatch):
# enough that NumPy's cost per call is spread thin (512 instances at 512, about
# 2,000 at 128), few enough that the batch stays small: at 512 tokens its
# arrays are about 12 MB (twice as many raised the peak RSS at dupe 40 by
# 16 MB for no measurable CPU).
_BATCH_TOKENS = 1 << 18
# Train shards of a small corpus: enough for that many processes to write
# them in parallel (and hosts to read distinct files), whatever the runner.
# A fixed number, not the worker count: the files must not depend on it.
MIN_TRAIN_SHARDS = 8
# The version of the manifest's `config` blocks (PrepareConfig.to_manifest, VocabConfig.to_manifest).
CONFIG_VERSION = 1
DATA_SEED = 12345  # the default seed of everything drawn from the data


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    instances: InstanceConfig = InstanceConfig()
    dupe_factor: int = setting(10, "passes over each document, each with its own instances and masks (ALBERT: 40)")
    seed: int = setting(DATA_SEED, "the data's seed: eval split, instances, masks, vocabulary sample")
    eval_fraction: float = setting(0.01, "share of documents held out for evaluation")
    # 0: sized to about `target_shard_bytes`, at least MIN_TRAIN_SHARDS
    num_shards: int = setting(0, "train shards; 0: about 128 MB each, at least 8")
    target_shard_bytes: int = 128 << 20
    split_bytes: int = 0  # documents read by one task; 0: chosen from their total size (plan_ranges)

    def to_manifest(self, train_shards: int) -> dict:
        """The manifest's `config` block: written field by field, so renaming a
        field here cannot change the on-disk schema without this version changing."""
        instances, masking = self.instances, self.instances.masking
        return {"version": CONFIG_VERSION, "max_seq_length": instances.max_seq_length,
                "short_seq_prob": instances.short_seq_prob, "albert_compat": instances.albert_compat,
                "max_predictions_per_seq": masking.max_predictions_per_seq, "masked_lm_prob": masking.masked_lm_prob,
                "max_ngram": masking.max_ngram, "dupe_factor": self.dupe_factor, "seed": self.seed,
                "eval_fraction": self.eval_fraction, "num_shards": self.num_shards, "train_shards": train_shards,
                "target_shard_bytes": self.target_shard_bytes, "split_bytes": self.split_bytes}


@dataclasses.dataclass(frozen=True)
class ReadRange:
    index: int
    path: str
    start: int
    end: int


def range_bytes(read_range: ReadRange) -> int:
    """A range's weight, for spreading the work (`runners.Distribute`)."""
    return read_range.end - read_range.start


def plan_tasks(ranges: list[ReadRange], split_bytes: int = 0) -> list[tuple[ReadRange, ...]]:
    """The instance stage's tasks: consecutive ranges joined until the next
    would take a task over `split_bytes` (plan_ranges' rule when 0), so a
    task reads about as much as a range of one big file does.

    A task writes one run per shard each time its buffer fills and once
    when it ends, and a shard is the merge of all its runs: a range per
    task made a run per shard of every small documents file, such as
    extract's one file a book. At 2 GB (1,035 books, 1,102 ranges, 57
    shards) that was 63 k run files, a merge of 1,100 a shard, and worker
    peaks that grew with the number of books; a BookCorpus-sized set would
    have been millions. Any grouping gives the same shards (runs.py)."""
    split_bytes = split_bytes or textformats.auto_split(sum(map(range_bytes, ranges)))
    tasks: list[list[ReadRange]] = []
    size = 0
    for read_range in ranges:
        if not tasks or size + range_bytes(read_range) > split_bytes:
            tasks.append([])
            size = 0
        tasks[-1].append(read_range)
        size += range_bytes(read_range)
    return [tuple(task) for task in tasks]


def task_bytes(task: tuple[ReadRange, ...]) -> int:
    """A task's weight, for spreading the work (`runners.Distribute`)."""
    return sum(map(range_bytes, task))


def shard_name(split: str, shard: int, count: int) -> str:
    return f"{split}-{shard:05d}-of-{count:05d}.array_record"


def eval_shard_count(config: PrepareConfig, train_shards: int) -> int:
    return max(1, round(train_shards * config.eval_fraction)) if config.eval_fraction > 0 else 0


def is_eval(config: PrepareConfig, document_id: str) -> bool:
    """The split is chosen per document, so no document is in both."""
    return records.stable_hash(config.seed, "split", document_id) < config.eval_fraction * 2.0**64


def estimate_train_shards(document_bytes: int, config: PrepareConfig) -> int:
    """About `target_shard_bytes` a shard: a record costs ~0.5 bytes per
    character of JSON documents (uint16 ids, ~4.5 characters a token)."""
    estimate = document_bytes * 0.5 * config.dupe_factor * (1 - config.eval_fraction)
    return max(MIN_TRAIN_SHARDS, int(np.ceil(estimate / config.target_shard_bytes)))


def plan_ranges(document_files: list[tuple[str, int]], split_bytes: int = 0) -> list[ReadRange]:
    """Ranges of whole lines (documents) of about `split_bytes` each, else
    of the corpus stage's size rule (up to 64 tasks, 256 KiB to 64 MiB
    each), from the total size alone. Any split gives the same shards; the
    rule gives every worker count enough tasks."""
    split_bytes = split_bytes or textformats.auto_split(sum(size for _, size in document_files))
    ranges = []
    for path, size in sorted(document_files):
        with FileSystems.open(path, compression_type="uncompressed") as f:
            for start, end in textformats.plan_line_ranges(f, size, split_bytes):
                ranges.append(ReadRange(len(ranges), path, start, end))
    return ranges


def _documents(read_range: ReadRange) -> Iterator[Document]:
    with FileSystems.open(read_range.path, compression_type="uncompressed") as f:
        for record in textformats.read_jsonl_records(f, read_range.start, read_range.end):
            if record.error:
                raise ValueError(f"{read_range.path}: record at byte {record.offset}: {record.error}")
            yield Document(record.fields["id"], record.fields["source"], record.fields["title"],
                           tuple(record.fields["sentences"]))


# --- vocabulary -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VocabConfig:
    """ALBERT's SentencePiece settings."""

    vocab_size: int = setting(30000, "pieces of the SentencePiece model")
    sample_sentences: int = setting(10_000_000, "sentences to train on (ALBERT: 10M)")
    character_coverage: float = 0.99995
    do_lower_case: bool = setting(True, "keep case (ALBERT's English model is lower case)", negated="--no-lower-case")
    seed: int = setting(DATA_SEED, "the seed of the sentence sample")
    # The model depends on the thread count (measured: the same bytes run after
    # run for a given count, other bytes for another), so it is fixed, not
    # taken from the machine: 1 unless asked.
    threads: int = setting(1, "training threads: faster; the model is reproducible for a given count",
                           flag="--spm-threads")

    def to_manifest(self) -> dict:
        """The manifest's `tokenizer.vocab_config`, field by field (see PrepareConfig.to_manifest)."""
        return {"version": CONFIG_VERSION, "vocab_size": self.vocab_size, "sample_sentences": self.sample_sentences,
                "character_coverage": self.character_coverage, "do_lower_case": self.do_lower_case,
                "seed": self.seed, "threads": self.threads}


class SampleSentences(runners.StageFn):
    """Keeps each sentence with a probability, decided by a stable hash."""

    def __init__(self, config: VocabConfig, rate: float):
        self._config = config
        self._threshold = rate * 2.0**64

    # Any: the priority is an unsigned 64-bit hash, past the signed range of
    # the VarIntCoder Beam would code an int hint with
    def process(self, keyed: tuple[int, Iterable[ReadRange]]) -> Iterator[tuple[int, tuple[Any, str]]]:
        from albertprep.core.tokenizer import normalize

        for read_range in keyed[1]:
            for document in _documents(read_range):
                for i, sentence in enumerate(document.sentences):
                    priority = records.stable_hash(self._config.seed, document.id, i)
                    if priority < self._threshold:
                        yield 0, (priority, normalize(sentence, self._config.do_lower_case))


class TrainSentencePiece(runners.StageFn):
    """Trains the model once, on one worker, from the sorted sample."""

    def __init__(self, config: VocabConfig, output_dir: str):
        self._config = config
        self._output_dir = output_dir

    def process(self, keyed: tuple[int, Iterable[tuple[Any, str]]]) -> Iterator[str]:
        import io

        import sentencepiece as spm

        sample = [sentence for _, sentence in sorted(keyed[1])][: self._config.sample_sentences]
        model = io.BytesIO()
        started = time.monotonic()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sample),
            model_writer=model,
            model_type="unigram",
            vocab_size=self._config.vocab_size,
            hard_vocab_limit=False,  # a small corpus gets a smaller vocabulary, not an error
            pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
            control_symbols=["[CLS]", "[SEP]", "[MASK]"],
            user_defined_symbols=["(", ")", '"', "-", ".", "–", "£", "€"],
            character_coverage=self._config.character_coverage,
            normalization_rule_name="nmt_nfkc",
            shuffle_input_sentence=False,
            input_sentence_size=0,
            num_threads=self._config.threads,
            minloglevel=2,
        )
        _LOG.info("vocab: trained on %d sentences in %.1fs", len(sample), time.monotonic() - started)
        path = FileSystems.join(self._output_dir, SPM_MODEL)
        with atomic.created(path) as f:
            f.write(model.getvalue())
        yield path


def build_vocab(pipeline: beam.Pipeline, ranges: list[ReadRange], total_sentences: int,
                config: VocabConfig, output_dir: str) -> None:
    rate = min(1.0, config.sample_sentences / max(1, total_sentences))
    (
        pipeline
        | "Ranges" >> runners.Distribute(ranges, range_bytes)
        | "Sample" >> beam.ParDo(SampleSentences(config, rate))
        | "Gather" >> beam.GroupByKey()
        | "Train" >> beam.ParDo(TrainSentencePiece(config, output_dir))
    )


# --- instances --------------------------------------------------------------


def _stats_to_json(stats: InstanceStats) -> dict:
    masking = stats.masking
    return {
        "instances": stats.instances,
        "short_target": stats.short_target,
        "sop_swapped": stats.sop_swapped,
        "random_b": stats.random_b,
        "truncated": stats.truncated,
        "dropped_sentences": stats.dropped_sentences,
        "dropped_tokens": stats.dropped_tokens,
        "length_histogram": stats.length_histogram.tolist() if stats.length_histogram is not None else [],
        "ngram_counts": masking.ngram_counts.tolist(),
        "free_ngram_counts": masking.free_ngram_counts.tolist(),
        "replacement_counts": masking.replacement_counts.tolist(),
        "masked_tokens": masking.masked_tokens,
        "maskable_tokens": masking.maskable_tokens,
    }


_TOKENIZERS: dict[tuple, Tokenizer] = {}


def _worker_tokenizer(model_path: str, do_lower_case: bool, albert_compat: bool) -> Tokenizer:
    """The tokenizer a worker reads from the output directory (where the job
    put the model), not pickled into the graph: a 30k model is 760 KB.
    --albert-compat encodes exactly as ALBERT's script: no quote
    normalisation of ours.

    One per process and model, its tables (pieces, word starts, random ids)
    built once: the DaskRunner sets a DoFn up again for every partition, and
    loading and checking the model and building its tables took about
    0.15 s each time, a third of a Dask worker's time in prepare on a small
    corpus. Keyed by the model's bytes, since a long-lived worker runs one
    job after another."""
    with FileSystems.open(model_path) as f:
        model = f.read()
    key = _tokenizer_key(hashlib.sha256(model).hexdigest(), do_lower_case, tex_quotes=not albert_compat)
    if key not in _TOKENIZERS:
        share_tokenizer(Tokenizer(model, do_lower_case, tex_quotes=not albert_compat))
    return _TOKENIZERS[key]


def _tokenizer_key(sha256: str, do_lower_case: bool, tex_quotes: bool) -> tuple:
    return sha256, do_lower_case, tex_quotes


def share_tokenizer(tokenizer: Tokenizer) -> None:
    """Make `tokenizer` the one this process's stage functions use for its
    model and settings, with the tables it has built: the command that
    planned the job hands over the model it checked, to its in-process
    worker and to the warm workers forked from it (pipelines/warm.py)."""
    _TOKENIZERS.clear()  # one model at a time
    _TOKENIZERS[_tokenizer_key(tokenizer.sha256, tokenizer.do_lower_case, tokenizer.tex_quotes)] = tokenizer


def _tokenized(tokenizer: Tokenizer, document: Document) -> TokenizedDocument:
    return TokenizedDocument.from_joined(*tokenizer.encode_joined(list(document.sentences)),
                                         tokenizer.albert_word_start)


# --- the documents random B segments come from (--albert-compat) ------------

B_POOL_DOCUMENTS = 512  # about this many a split: ALBERT's B statistics need a sample, not the corpus
B_POOL_FILE = "b-pool.pickle"  # in the RUNS directory, gone with it


def b_pool_thresholds(config: PrepareConfig, documents: int) -> dict[str, float]:
    """Hash thresholds that keep about B_POOL_DOCUMENTS documents of each
    split: every document of a small corpus, a uniform sample of a large one."""
    expected = {"train": documents * (1 - config.eval_fraction), "eval": documents * config.eval_fraction}
    return {split: min(1.0, B_POOL_DOCUMENTS / max(1.0, n)) * 2.0**64 for split, n in expected.items()}


class SelectPoolDocuments(runners.StageFn):
    """The documents of a range that the stable hash of their id puts in the pool."""

    def __init__(self, model_path: str, do_lower_case: bool, config: PrepareConfig, thresholds: dict[str, float]):
        self._model_path = model_path
        self._do_lower_case = do_lower_case
        self._config = config
        self._thresholds = thresholds

    def setup(self) -> None:
        super().setup()
        self._tokenizer = _worker_tokenizer(self._model_path, self._do_lower_case, True)

    def process(self, keyed: tuple[int, Iterable[ReadRange]]) -> Iterator[tuple[int, tuple]]:
        config = self._config
        max_tokens = config.instances.max_seq_length - 3
        for read_range in keyed[1]:
            for document in _documents(read_range):
                split = "eval" if is_eval(config, document.id) else "train"
                priority = records.stable_hash(config.seed, "b-pool", document.id)
                if priority < self._thresholds[split]:
                    rng = records.rng_for(config.seed, "b-pool", document.id)
                    pooled = PooledDocument.of(document.id, _tokenized(self._tokenizer, document), rng, max_tokens)
                    yield 0, (SPLITS.index(split), priority, document.id, pooled)


class WritePool(runners.StageFn):
    def __init__(self, path: str):
        self._path = path

    def process(self, keyed: tuple[int, Iterable[tuple]]) -> Iterator[str]:
        pools: dict[str, list[PooledDocument]] = {split: [] for split in SPLITS}
        for split_index, _, _, pooled in sorted(keyed[1], key=lambda item: item[:3]):
            pools[SPLITS[split_index]].append(pooled)
        with atomic.created(self._path) as f:
            f.write(pickle.dumps(pools, protocol=pickle.HIGHEST_PROTOCOL))
        yield self._path


def build_b_pool(pipeline: beam.Pipeline, ranges: list[ReadRange], tokenizer: Tokenizer, config: PrepareConfig,
                 documents: int, output_dir: str) -> None:
    """The B pool of --albert-compat, written for the instance pipeline to read."""
    (
        pipeline
        | "Ranges" >> runners.Distribute(ranges, range_bytes)
        | "Select" >> beam.ParDo(SelectPoolDocuments(FileSystems.join(output_dir, SPM_MODEL),
                                                     tokenizer.do_lower_case, config,
                                                     b_pool_thresholds(config, documents)))
        | "Gather" >> beam.GroupByKey()
        | "Write" >> beam.ParDo(WritePool(FileSystems.join(output_dir, RUNS, B_POOL_FILE)))
    )


class MakeInstances(runners.StageFn):
    """Documents of one range → masked, encoded instances keyed by shard."""

    def __init__(self, model_path: str, do_lower_case: bool, config: PrepareConfig, train_shards: int,
                 runs_dir: str):
        # The model is read on the worker from the output directory (where the
        # job put it), not pickled into the graph: a 30k model is 760 KB.
        self._model_path = model_path
        self._runs_dir = runs_dir
        self._do_lower_case = do_lower_case
        self._config = config
        self._shards = {"train": train_shards, "eval": eval_shard_count(config, train_shards)}
        self._documents = Metrics.counter("albertprep.prepare", "documents")
        self._instances = Metrics.counter("albertprep.prepare", "instances")

    def setup(self) -> None:
        super().setup()
        malloc.keep_large_blocks()  # masking's batch arrays: see albertprep/core/malloc.py
        compat = self._config.instances.albert_compat
        self._tokenizer = _worker_tokenizer(self._model_path, self._do_lower_case, compat)
        self._vocab = self._tokenizer.masking_vocab()
        self._vocab_size = self._tokenizer.vocab_size
        self._pools: dict[str, BPool] = {}
        if compat:
            with FileSystems.open(FileSystems.join(self._runs_dir, B_POOL_FILE)) as f:
                self._pools = {split: BPool(pooled) for split, pooled in pickle.loads(f.read()).items()}

    def process(self, keyed: tuple[int, Iterable[tuple[ReadRange, ...]]]) -> Iterator[tuple]:
        for task in keyed[1]:
            yield from self._process_task(task)

    def _process_task(self, task: tuple[ReadRange, ...]) -> Iterator[tuple]:
        """The ranges of one task (plan_tasks) through one run buffer; its
        runs are named by the task's first range."""
        written: dict[tuple[int, int], list[int]] = {}  # shard: its runs' parts

        def write_run(shard: tuple[int, int], part: int, items: list[tuple[int, bytes]]) -> None:
            with atomic.created(run_path(self._runs_dir, shard, task[0].index, part)) as f:
                runs.write_run(f, items)
            written.setdefault(shard, []).append(part)

        buffer = runs.RunBuffer(_RUN_BUFFER_BYTES, write_run)
        for read_range in task:
            yield self._process_range(read_range, buffer)
        buffer.flush()
        # One element a shard, naming the task and its parts, not one a run
        # file: a task flushes dozens of times, and the runner (the DaskRunner
        # in worker memory) holds every element until the shards are grouped.
        for shard in sorted(written):
            yield "runs", shard, (task[0].index, tuple(written[shard]))

    def _process_range(self, read_range: ReadRange, buffer: runs.RunBuffer) -> tuple:
        """One range's instances into `buffer`; its ("stats", ...) item."""
        config = self._config
        stats = {split: InstanceStats() for split in SPLITS}
        documents = {"read": 0, "used": 0, "no_instances": 0, "train": 0, "eval": 0}
        started = last_report = time.monotonic()
        source = ((d, "eval" if is_eval(config, d.id) else "train", _tokenized(self._tokenizer, d))
                  for d in _documents(read_range))
        batches = {split: InstanceBatch(config.instances) for split in SPLITS}
        # per split, each pass's (stable hash, instances) since the last build: the instances' keys
        passes: dict[str, tuple[list[int], list[int]]] = {split: ([], []) for split in SPLITS}
        seeded = records.Reseeder()

        def build(split: str) -> None:
            built = batches[split].build(self._vocab, stats[split])
            if not len(built):
                return
            hashes, counts = passes[split]
            batch_keys = records.derived_keys(np.array(hashes, np.uint64), np.array(counts, np.int64))
            hashes.clear()
            counts.clear()
            shards = batch_keys % np.uint64(self._shards[split])
            buffer.add_many(SPLITS.index(split), shards, batch_keys, built.encode(self._vocab_size))

        for document, split, tokens in source:
            documents["read"] += 1
            documents[split] += 1
            made = 0
            batch = batches[split]
            for dup in range(config.dupe_factor):
                rng = seeded(config.seed, document.id, dup)
                count = batch.add_pass(tokens, rng, stats[split], self._pools.get(split), document.id)
                if count:  # each instance's key (its shard, its place in it): from the pass's hash and its index
                    passes[split][0].append(records.stable_hash(document.id, dup))
                    passes[split][1].append(count)
                    made += count
                if batch.tokens >= _BATCH_TOKENS:  # per pass: a book alone is thousands of instances
                    build(split)
            documents["used" if made else "no_instances"] += 1
            self._documents.inc()
            self._instances.inc(made)
            if time.monotonic() - last_report > _PROGRESS_SECONDS:
                last_report = time.monotonic()
                elapsed = last_report - started
                total = sum(s.instances for s in stats.values())
                _LOG.info("prepare: range %d: %d documents, %d instances, %.0f instances/s, %.0fs elapsed",
                          read_range.index, documents["read"], total, total / elapsed, elapsed)
        for split in SPLITS:
            build(split)
        with FileSystems.create(FileSystems.join(self._runs_dir, range_done_name(read_range))) as f:
            f.write(b"")  # the job's progress counts the ranges done (their runs are written when the task ends)
        return "stats", read_range.index, {"documents": documents} | {s: _stats_to_json(stats[s]) for s in SPLITS}


def range_done_name(read_range: ReadRange) -> str:
    """Where, under the runs directory, a task marks its range done (gone with the runs)."""
    return f"done/{read_range.index:05d}"


def run_path(runs_dir: str, shard: tuple[int, int], task_index: int, part: int) -> str:
    """One name per (shard, task, flush): a retried task rewrites its own runs.
    A task is named by its first range's index."""
    split_index, shard_index = shard
    return FileSystems.join(runs_dir, f"{SPLITS[split_index]}-{shard_index:05d}",
                            f"{task_index:05d}-{part:05d}.run")


def _merged_runs(paths: list[str]) -> Iterator[tuple[int, bytes]]:
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(FileSystems.open(p, compression_type="uncompressed")) for p in sorted(paths)]
        yield from runs.merged_files(files)


class WriteShard(runners.StageFn):
    """Writes one shard as the merge of its sorted runs, then deletes them."""

    def __init__(self, output_dir: str, shard_counts: dict[str, int]):
        self._output_dir = output_dir
        self._shard_counts = shard_counts

    def process(self, keyed: tuple[tuple[int, int], Iterable[tuple[int, tuple[int, ...]]]]) -> Iterator[tuple]:
        """`keyed`: the shard, and each task's (index, parts) that wrote runs to it."""
        (split_index, shard), tasks = keyed
        split = SPLITS[split_index]
        name = shard_name(split, shard, self._shard_counts[split])
        runs_dir = FileSystems.join(self._output_dir, RUNS)
        paths = sorted({run_path(runs_dir, (split_index, shard), task, part)
                        for task, parts in tasks for part in parts})  # a set: a retried task may be sent twice
        written = write_shard(self._output_dir, name, _merged_runs(paths))
        FileSystems.delete(paths)
        yield "shard", split, written


def write_shard(output_dir: str, name: str, keyed_records: Iterable[tuple[int, bytes]]) -> dict:
    """Writes the records in the order given, streaming. Appears whole or
    not at all (albertprep/core/atomic.py). ArrayRecord writes local files only:
    for a remote output (gs://...) the shard is made in a local temporary
    directory, then uploaded."""
    # imported here: the corpus stage's processes import this module but
    # write no shard, and ArrayRecord is 4 MB of their RSS
    from array_record.python.array_record_module import ArrayRecordWriter

    local = "://" not in output_dir
    directory = output_dir if local else tempfile.mkdtemp()
    try:
        with atomic.local_path(os.path.join(directory, name)) as temporary:
            writer = ArrayRecordWriter(temporary, ARRAY_RECORD_OPTIONS)
            count = 0
            for _, record in keyed_records:
                writer.write(record)
                count += 1
            writer.close()
            digest, size = sha256_file(temporary), os.path.getsize(temporary)
        if not local:
            with open(os.path.join(directory, name), "rb") as source, \
                    atomic.created(FileSystems.join(output_dir, name)) as target:
                shutil.copyfileobj(source, target)
    finally:
        if not local:
            shutil.rmtree(directory, ignore_errors=True)
    return {"file": name, "records": count, "sha256": digest, "bytes": size}


def merge_stats(parts: list[dict]) -> dict:
    """Sums the per-range statistics and derives the manifest's figures."""
    total: dict = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict):
                total[key] = merge_stats([total.get(key, {}), value])
            elif isinstance(value, list):
                old = total.get(key, [])
                width = max(len(old), len(value))
                total[key] = [(old[i] if i < len(old) else 0) + (value[i] if i < len(value) else 0)
                              for i in range(width)]
            else:
                total[key] = total.get(key, 0) + value
    return total


def describe(stats: dict) -> dict:
    """The readable statistics of one split."""
    instances = max(1, stats["instances"])
    lengths = np.array(stats["length_histogram"] or [0])
    ngrams = np.array(stats["ngram_counts"][1:], float)
    free = np.array(stats["free_ngram_counts"][1:], float)
    replacements = np.array(stats["replacement_counts"], float)
    return {
        "instances": stats["instances"],
        "mean_length": float((lengths * np.arange(len(lengths))).sum() / instances),
        "length_histogram": stats["length_histogram"],
        "short_target_fraction": stats["short_target"] / instances,
        "truncated_fraction": stats["truncated"] / instances,
        "sop": {"swapped": stats["sop_swapped"], "random_b": stats["random_b"],
                "natural": stats["instances"] - stats["sop_swapped"] - stats["random_b"],
                "label_1_fraction": (stats["sop_swapped"] + stats["random_b"]) / instances},
        "masked_fraction": stats["masked_tokens"] / max(1, stats["maskable_tokens"]),
        "masked_per_instance": stats["masked_tokens"] / instances,
        "ngram_histogram": {str(n + 1): int(c) for n, c in enumerate(ngrams)},
        "ngram_fractions_when_free": {str(n + 1): float(c / max(1, free.sum())) for n, c in enumerate(free)},
        "replacement_fractions": dict(zip(("mask", "random", "keep"),
                                          (replacements / max(1, replacements.sum())).tolist())),
        "dropped_sentences": stats["dropped_sentences"],
        "dropped_tokens": stats["dropped_tokens"],
    }


class WriteManifest(runners.StageFn):
    """Fills in empty shards, writes manifest.json, then the COMPLETED marker."""

    def __init__(self, output_dir: str, shard_counts: dict[str, int], manifest_base: Manifest):
        self._output_dir = output_dir
        self._shard_counts = shard_counts
        self._manifest_base = manifest_base

    def process(self, keyed: tuple[int, Iterable[tuple]]) -> Iterator[Manifest]:
        shards = {split: {} for split in SPLITS}
        stats = {split: [] for split in SPLITS}
        documents = []
        for item in keyed[1]:
            if item[0] == "shard":
                shards[item[1]][item[2]["file"]] = item[2]
            else:
                documents.append(item[2]["documents"])
                for split in SPLITS:
                    stats[split].append(item[2][split])
        splits = {}
        for split in SPLITS:
            count = self._shard_counts[split]
            files = []
            for shard in range(count):
                name = shard_name(split, shard, count)
                files.append(shards[split].get(name) or write_shard(self._output_dir, name, []))
            merged = merge_stats(stats[split]) if stats[split] else None
            splits[split] = SplitEntry(tuple(ShardEntry(**f) for f in files),
                                                       describe(merged) if merged else None)
        runs_dir = FileSystems.join(self._output_dir, RUNS)
        if FileSystems.exists(runs_dir):  # what is left of it: empty directories
            FileSystems.delete([runs_dir])
        manifest = dataclasses.replace(self._manifest_base, documents=merge_stats(documents), splits=splits)
        with atomic.created(FileSystems.join(self._output_dir, MANIFEST)) as f:
            f.write(manifest.encode())
        with FileSystems.create(FileSystems.join(self._output_dir, COMPLETED)) as f:
            f.write(b"")
        yield manifest


def build_instances(pipeline: beam.Pipeline, tasks: list[tuple[ReadRange, ...]], tokenizer: Tokenizer,
                    config: PrepareConfig, train_shards: int, output_dir: str,
                    manifest_base: Manifest) -> None:
    """`tasks` from plan_tasks."""
    shard_counts = {"train": train_shards, "eval": eval_shard_count(config, train_shards)}
    made = (
        pipeline
        | "Tasks" >> runners.Distribute(runners.heaviest_first(tasks, task_bytes), task_bytes)
        | "MakeInstances" >> beam.ParDo(MakeInstances(FileSystems.join(output_dir, SPM_MODEL),
                                                      tokenizer.do_lower_case, config, train_shards,
                                                      FileSystems.join(output_dir, RUNS)))
    )
    shards = (
        made
        # the hint: Beam infers Tuple[Any, ...] from the slice, which its
        # GroupByKey (2.78 on) refuses as not a key-value pair
        | "Runs" >> beam.FlatMap(lambda item: [item[1:]] if item[0] == "runs" else [])
        .with_output_types(tuple[tuple[int, int], tuple[int, tuple[int, ...]]])
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShard(output_dir, shard_counts))
    )
    stats = made | "Stats" >> beam.Filter(lambda item: item[0] == "stats")
    (
        (shards, stats)
        | "Both" >> beam.Flatten()
        | "KeyAll" >> beam.Map(lambda item: (0, item))
        | "GatherAll" >> beam.GroupByKey()
        | "WriteManifest" >> beam.ParDo(WriteManifest(output_dir, shard_counts, manifest_base))
    )
