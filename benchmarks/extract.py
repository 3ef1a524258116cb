"""Extract throughput with 1 and 2 local worker processes, and their ratio.

Input: the enwiki sample recompressed as a multistream dump (so one dump
splits into many tasks) plus the nine books, each repeated --copies times
under other names. Both runs are measured here, in the same process, on
the same files; the target is a ratio of at least 1.7 on 2 cores.

    python benchmarks/extract.py [--copies 6] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

from pipelines import cli, mediawiki

ROOT = pathlib.Path(__file__).resolve().parents[1]


def make_inputs(corpora: pathlib.Path, directory: pathlib.Path, copies: int) -> list[str]:
    for copy in range(copies):
        dump = directory / f"enwiki{copy}-20160101-pages-articles-multistream.xml.bz2"
        index = directory / f"enwiki{copy}-20160101-pages-articles-multistream-index.txt.bz2"
        with bz2.open(corpora / "wiki" / "enwiki-sample.xml.bz2") as source, open(dump, "wb") as out:
            with open(index, "wb") as idx:
                mediawiki.write_multistream(source, out, idx, pages_per_stream=10)
        for book in sorted((corpora / "books").glob("*.txt")):
            shutil.copy(book, directory / f"{book.stem}-{copy}.txt")
    return [str(directory)]


def run(inputs: list[str], output: pathlib.Path, workers: int) -> tuple[float, dict]:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the command's own report
        code = cli.main(["extract", *inputs, "--output", str(output), "--workers", str(workers),
                         "--split-mb", "0.1", "--overwrite"])
    seconds = time.perf_counter() - started
    assert code == 0
    return seconds, json.loads((output / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6)
    default_corpora = os.environ.get("ALBERTPREP_CORPORA", ROOT.parent / "shared" / "corpora")
    parser.add_argument("--corpora", type=pathlib.Path, default=default_corpora)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = pathlib.Path(tmp)
        (tmp_path / "in").mkdir()
        inputs = make_inputs(args.corpora, tmp_path / "in", args.copies)
        input_mb = sum(p.stat().st_size for p in (tmp_path / "in").iterdir()) / 1e6
        results = {}
        for workers in (1, 2):
            seconds, summary = run(inputs, tmp_path / f"out{workers}", workers)
            results[workers] = (seconds, summary["documents"])
            outputs = sorted((tmp_path / f"out{workers}").glob("documents-*"))
            results[workers] += ([p.read_bytes() for p in outputs],)
    print(f"\ninput: {input_mb:.1f} MB on disk ({args.copies} copies of the enwiki sample as multistream + 9 books)")
    print(f"{'workers':>8} {'seconds':>8} {'documents/s':>12} {'input MB/s':>11}")
    for workers, (seconds, documents, _) in results.items():
        print(f"{workers:>8} {seconds:>8.1f} {documents / seconds:>12.1f} {input_mb / seconds:>11.2f}")
    assert results[1][2] == results[2][2], "outputs differ between worker counts"
    print(f"speed-up 2 workers / 1 worker: {results[1][0] / results[2][0]:.2f} (target >= 1.7)")


if __name__ == "__main__":
    sys.exit(main())
