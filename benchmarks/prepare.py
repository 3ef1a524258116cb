"""Prepare-stage throughput on the books, against SentencePiece alone.

Prints instances/s and input MB/s of the whole prepare stage (documents →
masked instances → sorted ArrayRecord shards + manifest, local runner, one
process), and in the same run the time SentencePiece takes to encode the
same sentences with ALBERT's normalisation: tokenising is the irreducible
work, so their ratio says what everything else costs (aim: >= 0.5). Then
the bytes a record takes against the same instance as ALBERT's
tf.train.Example (padded to max_seq_length, as ALBERT writes them).

    python benchmarks/prepare.py [--dupe-factor 10] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
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
    parser.add_argument("--dupe-factor", type=int, default=10)
    default_corpora = os.environ.get("ALBERTPREP_CORPORA", ROOT.parent / "shared" / "corpora")
    parser.add_argument("--corpora", type=pathlib.Path, default=default_corpora)
    args = parser.parse_args()
    model = args.corpora / "spm" / "albert-en-30k-clean.model"
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        documents_dir = pathlib.Path(tmp) / "documents"
        assert cli.main(["extract", str(args.corpora / "books"), "--output", str(documents_dir)]) == 0
        summary = json.loads((documents_dir / "summary.json").read_text())
        sentences = [s for name in summary["outputs"]["jsonl"]
                     for d in read_documents_jsonl(str(documents_dir / name)) for s in d.sentences]
        input_mb = sum((documents_dir / name).stat().st_size for name in summary["outputs"]["jsonl"]) / 1e6

        tokenizer = Tokenizer.from_file(str(model))
        started = time.perf_counter()
        tokens = sum(len(ids) for ids in tokenizer.encode(sentences))
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
        for shard in manifest["splits"]["train"]["shards"]:
            for record in ArrayRecordReader(str(output / shard["file"])).read_all():
                record_bytes += len(record)
                example_bytes += len(tfrecord.albert_example(records.decode_features(record, layout)))
                sample += 1
        shard_bytes = sum(s["bytes"] for s in manifest["splits"]["train"]["shards"])

    print(f"books: {len(sentences)} sentences, {tokens} tokens, {input_mb:.1f} MB of documents; "
          f"dupe_factor {args.dupe_factor}: {instances} instances")
    print(f"prepare stage:          {prepare_seconds:7.2f} s  {instances / prepare_seconds:9.0f} instances/s  "
          f"{input_mb / prepare_seconds:6.2f} input MB/s")
    print(f"SentencePiece encoding: {encode_seconds:7.2f} s  {tokens / encode_seconds:9.0f} tokens/s")
    print(f"ratio encoding / whole stage: {encode_seconds / prepare_seconds:.2f} (target >= 0.5)")
    print(f"bytes per instance: record {record_bytes / sample:.0f} (in shards, with ArrayRecord framing "
          f"{shard_bytes / sample:.0f}), ALBERT tf.train.Example {example_bytes / sample:.0f}: "
          f"{example_bytes / record_bytes:.1f}x smaller")


if __name__ == "__main__":
    sys.exit(main())
