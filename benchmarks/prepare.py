"""Prepare-stage throughput on the books, against SentencePiece alone.

Prints instances/s and input MB/s of the whole prepare stage (documents →
masked instances → sorted ArrayRecord shards + manifest, local runner, one
process), and in the same run the time SentencePiece takes to encode the
same sentences with ALBERT's normalisation, on one thread: tokenising is the
irreducible work, so their ratio says what everything else costs (aim: >= 0.5
at dupe_factor 1; each further duplicate adds instance work, not tokenising).
Then the bytes a record takes against the same instance as ALBERT's
tf.train.Example (padded to max_seq_length, as ALBERT writes them), and the
time to decode a record into the padded feature dict.

The nine books are extracted --copies times under other names, so Beam's
fixed start-up cost (about 0.35 s) weighs as it would on a real corpus.

    python benchmarks/prepare.py [--copies 4] [--dupe-factor 1] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

from array_record.python.array_record_module import ArrayRecordReader

from pipelines import cli, records, tfrecord
from pipelines.documents import read_documents_jsonl
from pipelines.tokenizer import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dupe-factor", type=int, default=1)
    parser.add_argument("--copies", type=int, default=4)
    default_corpora = os.environ.get("ALBERTPREP_CORPORA", ROOT.parent / "shared" / "corpora")
    parser.add_argument("--corpora", type=pathlib.Path, default=default_corpora)
    args = parser.parse_args()
    model = args.corpora / "spm" / "albert-en-30k-clean.model"
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        books = pathlib.Path(tmp) / "books"
        books.mkdir()
        for copy in range(args.copies):
            for book in sorted((args.corpora / "books").glob("*.txt")):
                shutil.copy(book, books / f"{book.stem}-{copy}.txt")
        documents_dir = pathlib.Path(tmp) / "documents"
        assert cli.main(["extract", str(books), "--output", str(documents_dir)]) == 0
        summary = json.loads((documents_dir / "summary.json").read_text())
        sentences = [s for name in summary["outputs"]["jsonl"]
                     for d in read_documents_jsonl(str(documents_dir / name)) for s in d.sentences]
        input_mb = sum((documents_dir / name).stat().st_size for name in summary["outputs"]["jsonl"]) / 1e6

        tokenizer = Tokenizer.from_file(str(model))
        started = time.perf_counter()
        tokens = sum(len(ids) for ids in tokenizer.encode(sentences, threads=1))
        encode_seconds = time.perf_counter() - started

        output = pathlib.Path(tmp) / "prepared"
        started = time.perf_counter()
        assert cli.main(["prepare", str(documents_dir), "--output", str(output), "--spm-model", str(model),
                         "--dupe-factor", str(args.dupe_factor), "--eval-fraction", "0"]) == 0
        prepare_seconds = time.perf_counter() - started
        manifest = json.loads((output / "manifest.json").read_text())
        instances = manifest["splits"]["train"]["records"]
        layout = records.FeatureLayout(manifest["features"]["max_seq_length"],
                                       manifest["features"]["max_predictions_per_seq"])
        record_bytes = example_bytes = sample = 0
        stored = [r for shard in manifest["splits"]["train"]["shards"]
                  for r in ArrayRecordReader(str(output / shard["file"])).read_all()]
        started = time.perf_counter()
        decoded = [records.decode_features(record, layout) for record in stored]
        decode_seconds = time.perf_counter() - started
        for record, features in zip(stored, decoded):
            record_bytes += len(record)
            example_bytes += len(tfrecord.albert_example(features))
            sample += 1
        shard_bytes = sum(s["bytes"] for s in manifest["splits"]["train"]["shards"])

    print(f"books x {args.copies}: {len(sentences)} sentences, {tokens} tokens, {input_mb:.1f} MB of documents; "
          f"dupe_factor {args.dupe_factor}: {instances} instances")
    print(f"prepare stage:          {prepare_seconds:7.2f} s  {instances / prepare_seconds:9.0f} instances/s  "
          f"{input_mb / prepare_seconds:6.2f} input MB/s")
    print(f"SentencePiece encoding: {encode_seconds:7.2f} s  {tokens / encode_seconds:9.0f} tokens/s")
    print(f"ratio encoding / whole stage: {encode_seconds / prepare_seconds:.2f} (target >= 0.5)")
    print(f"bytes per instance: record {record_bytes / sample:.0f} (in shards, compressed by ArrayRecord "
          f"{shard_bytes / sample:.0f}), ALBERT tf.train.Example {example_bytes / sample:.0f}: "
          f"{example_bytes / record_bytes:.1f}x smaller")
    print(f"decoding a record to the padded feature dict: {decode_seconds / sample * 1e6:.1f} us "
          f"({sample / decode_seconds:.0f} records/s, one core)")


if __name__ == "__main__":
    sys.exit(main())
