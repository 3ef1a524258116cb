"""The instance stage: CPU per instance, start-up, peak RSS and the 2-worker speed-up, in one run.

Every prepare runs as its own process (`python -m albertprep prepare`,
from documents the corpus stage made first, so extraction is not counted);
wall time, CPU (user + system, with the worker processes it waits for) and
the peak RSS of its largest process come from wait4().

Printed:
- start-up: a prepare of one short document (imports, runner, vocabulary
  load, manifest): what every run pays before its first instance, with 1
  worker and with 2 (medians of 3);
- CPU-ms per instance on ALBERT's reference corpus (the nine books, one
  sentence per line; `../shared/reference/corpus-9books.txt`) at dupe 40,
  512 and 128, start-up excluded: (CPU of the run - start-up CPU) /
  instances, medians of up to 3 runs. Targets 0.05 and 0.015 ms; ALBERT's
  own script takes about 5.2 and 1.5 ms there;
- peak RSS at dupe 5 and dupe 40, and on the corpus four times over
  (within 20% of each other, under 600 MiB);
- the 2-worker speed-up on the books four times over at dupe 10, default
  flags (target >= 1.7 on 2 cores), medians of --runs paired runs, and that
  both wrote the same shards; beside it the same ratio with each worker
  count's start-up taken off both walls, which says how well the work
  itself splits (on a corpus this small the start-up that does not split
  is a fifth of the 1-worker run);
- bytes per instance against ALBERT's tf.train.Example, and the time to
  decode a record into the padded feature dict.

    python benchmarks/prepare.py [--runs 3] [--corpora ../shared/corpora] [--reference ../shared/reference]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

from _process import compile_project, measure
from array_record.python.array_record_module import ArrayRecordReader

from albertprep.core import manifest, records
from albertprep.tools import tfrecord

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def extract(inputs: list[str], output: pathlib.Path) -> pathlib.Path:
    measure([PYTHON, "-m", "albertprep", "extract", *inputs, "--output", str(output)], cwd=str(ROOT))
    return output


def prepare(documents: pathlib.Path, output: pathlib.Path, model: pathlib.Path, *flags: str) -> tuple:
    """(wall s, CPU s, peak RSS MB, manifest) of one prepare process."""
    shutil.rmtree(output, ignore_errors=True)
    wall, cpu, rss = measure([PYTHON, "-m", "albertprep", "prepare", str(documents), "--output", str(output),
                              "--spm-model", str(model), *flags], cwd=str(ROOT))
    return wall, cpu, rss, manifest.read(str(output))


def instances_of(prepared: manifest.Manifest) -> int:
    return prepared.num_records


def shard_digests(output: pathlib.Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(output.glob("*.array_record"))}


def record_sizes(output: pathlib.Path, prepared: manifest.Manifest) -> str:
    layout = prepared.layout
    stored = [r for shard in prepared.splits["train"].shards
              for r in ArrayRecordReader(str(output / shard.file)).read_all()][:20000]
    started = time.perf_counter()
    decoded = [records.decode_features(record, layout) for record in stored]
    decode_seconds = time.perf_counter() - started
    record_bytes = sum(len(r) for r in stored)
    example_bytes = sum(len(tfrecord.albert_example(f)) for f in decoded)
    return (f"bytes per instance at {layout.max_seq_length}: record {record_bytes / len(stored):.0f}, ALBERT "
            f"tf.train.Example {example_bytes / len(stored):.0f} ({example_bytes / record_bytes:.1f}x); decoding "
            f"a record to the padded feature dict {decode_seconds / len(stored) * 1e6:.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="paired runs of 1 and 2 workers")
    shared = ROOT.parent / "shared"
    parser.add_argument("--corpora", type=pathlib.Path,
                        default=pathlib.Path(os.environ.get("ALBERTPREP_CORPORA", shared / "corpora")))
    parser.add_argument("--reference", type=pathlib.Path, default=shared / "reference")
    args = parser.parse_args()
    model = args.corpora / "spm" / "albert-en-30k-clean.model"
    corpus = args.reference / "corpus-9books.txt"
    compile_project()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        (tmp / "tiny.txt").write_text("".join(corpus.read_text().splitlines(keepends=True)[:30]))
        copies = tmp / "copies"
        copies.mkdir()
        for copy in range(4):
            shutil.copy(corpus, copies / f"corpus-{copy}.txt")
        books = tmp / "books"
        books.mkdir()
        for copy in range(4):
            for book in sorted((args.corpora / "books").glob("*.txt")):
                shutil.copy(book, books / f"{book.stem}-{copy}.txt")
        tiny = extract([f"sentences:{tmp / 'tiny.txt'}"], tmp / "tiny-documents")
        reference = extract([f"sentences:{corpus}"], tmp / "reference-documents")
        four = extract([f"sentences:{copies}"], tmp / "four-documents")
        book_documents = extract([str(books)], tmp / "book-documents")
        out = tmp / "out"
        common = ("--eval-fraction", "0", "--max-predictions-per-seq", "20")

        startup = {workers: [prepare(tiny, out, model, *common, "--workers", str(workers))[:2] for _ in range(3)]
                   for workers in (1, 2)}
        startup_walls = {workers: statistics.median(run[0] for run in runs) for workers, runs in startup.items()}
        startup_cpu = statistics.median(run[1] for run in startup[1])
        print(f"start-up (prepare of one short document): {startup_walls[1]:.2f} s wall, {startup_cpu:.2f} CPU s "
              f"(target <= 2 s); with 2 workers {startup_walls[2]:.2f} s wall")

        rss = {}
        for length, target, albert_ms in ((512, 0.05, 5.2), (128, 0.015, 1.5)):
            runs = [prepare(reference, out, model, *common, "--max-seq-length", str(length), "--dupe-factor", "40")
                    for _ in range(min(args.runs, 3))]
            wall, cpu, peak = (statistics.median(run[i] for run in runs) for i in range(3))
            prepared = runs[-1][3]
            count = instances_of(prepared)
            per_instance = (cpu - startup_cpu) / count * 1e3
            print(f"reference corpus at {length}, dupe 40: {count} instances, {cpu:.1f} CPU s, {wall:.1f} s wall; "
                  f"{per_instance:.3f} CPU-ms per instance without start-up (target {target}; ALBERT's script "
                  f"~{albert_ms} ms: {albert_ms / per_instance:.0f}x); peak RSS {peak:.0f} MB")
            if length == 512:
                rss["dupe 40"] = peak
                sizes = record_sizes(out, prepared)
        rss["dupe 5"] = prepare(reference, out, model, *common, "--dupe-factor", "5")[2]
        rss["4x corpus, dupe 5"] = prepare(four, out, model, *common, "--dupe-factor", "5")[2]
        spread = max(rss.values()) / min(rss.values()) - 1
        print("peak RSS at 512: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items())
              + f"; largest over smallest +{spread:.0%} (target <= 20%, under 600 MiB)")

        ratios, work_ratios, walls = [], [], {1: [], 2: []}
        digests = {}
        for _ in range(args.runs):
            for workers in (1, 2):
                wall, cpu, _, prepared = prepare(book_documents, out, model, "--dupe-factor", "10",
                                                 "--workers", str(workers))
                walls[workers].append(wall)
                digests[workers] = shard_digests(out)
            ratios.append(walls[1][-1] / walls[2][-1])
            work_ratios.append((walls[1][-1] - startup_walls[1]) / (walls[2][-1] - startup_walls[2]))
        print(f"books x 4 at dupe 10 ({instances_of(prepared)} instances, default flags): 1 worker "
              f"{statistics.median(walls[1]):.1f} s, 2 workers {statistics.median(walls[2]):.1f} s wall; "
              f"speed-up {statistics.median(ratios):.2f} (pairs: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"target >= 1.7), {statistics.median(work_ratios):.2f} with start-up taken off; "
              f"shards identical: {digests[1] == digests[2]}")
        print(sizes)


if __name__ == "__main__":
    sys.exit(main())
