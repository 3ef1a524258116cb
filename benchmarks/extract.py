"""The corpus stage against wikiextractor 3.1.0 on the same dump, in one run.

The dump is built here from the shared enwiki sample: its 106 articles
repeated under new page ids and titles until it holds at least --mb MB of
XML, written bz2-compressed as one plain (not multistream) `.xml.bz2`, the
form most people download. Every command runs as its own process; CPU time
(user + system of the process and its children) and peak RSS come from
wait4(), so neither tool's start-up is hidden.

Measured, --runs times each, medians printed:
- wikiextractor 3.1.0 with --processes 1 (it still forks a reader and a
  writer besides its one extractor) and --no-templates (what NVIDIA's and
  LDDL's recipes run);
- albertprep extract with --workers 1 and --workers 2, default flags.

Printed: CPU-ms per page, MB of XML per CPU-second, peak RSS, our speed per
core as a ratio of wikiextractor's (target >= 1) and the 2-worker speed-up
on wall time (target >= 1.7 on 2 cores). Outputs of 1 and 2 workers must
be byte-identical. `python -c "import apache_beam"` is measured too, plain
and as a local job's processes make it (Beam's unused Arrow, MongoDB and
BigQuery imports left out, pipelines/warm.py): the memory and start-up every
Beam job pays before it reads a byte. The dump is built in a child process,
so that no command inherits its pages.

    python benchmarks/extract.py [--mb 50] [--runs 3] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import bz2
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable

from _corpus import renamed, sample_articles
from _process import compile_project, measure

ROOT = pathlib.Path(__file__).resolve().parents[1]


def build_dump(corpora: pathlib.Path, path: pathlib.Path, megabytes: float,
               rewrite: Callable[[bytes, int, int], bytes] | None = None) -> tuple[int, int]:
    """A plain .xml.bz2 of at least `megabytes` MB of XML; (pages, XML bytes).
    `rewrite(page, repeat, page number)` may change each page first."""
    head, pages, foot = sample_articles(corpora)
    out = [head]
    size, count, copy = len(head), 0, 0
    while size < megabytes * 1e6:
        for page in pages:
            if rewrite is not None:
                page = rewrite(page, copy, count)
            page = renamed(page, copy)
            out.append(page)
            size += len(page)
            count += 1
        copy += 1
    out.append(foot)
    data = b"".join(out)
    path.write_bytes(bz2.compress(data, 9))
    return count, len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50, help="MB of XML in the dump (at least)")
    parser.add_argument("--runs", type=int, default=3)
    default_corpora = os.environ.get("ALBERTPREP_CORPORA", ROOT.parent / "shared" / "corpora")
    parser.add_argument("--corpora", type=pathlib.Path, default=default_corpora)
    parser.add_argument("--build-only", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        print(*build_dump(args.corpora, args.build_only, args.mb))
        return
    python = sys.executable
    compile_project()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = pathlib.Path(tmp)
        dump = tmp_path / "in" / "enwiki-20160101-pages-articles.xml.bz2"
        dump.parent.mkdir()
        # built in a child: a command forked from a parent that held the dump
        # would count the parent's pages in its own peak RSS
        built = subprocess.run([python, __file__, "--build-only", str(dump), "--mb", str(args.mb),
                                "--corpora", str(args.corpora)], check=True, capture_output=True, text=True)
        pages, xml_bytes = (int(n) for n in built.stdout.split())
        lean_import = "from albertprep.pipelines import warm; warm.leave_out_beam_extras(); import apache_beam"
        commands = {
            "import apache_beam": [python, "-c", "import apache_beam"],
            "import, extras left out": [python, "-c", lean_import],
            "wikiextractor": [python, "-m", "wikiextractor.WikiExtractor", str(dump), "-o", str(tmp_path / "wx"),
                              "--processes", "1", "--no-templates", "-q"],
            "albertprep 1 worker": [python, "-m", "albertprep", "extract", str(dump), "--output",
                                    str(tmp_path / "ours1"), "--workers", "1", "--overwrite"],
            "albertprep 2 workers": [python, "-m", "albertprep", "extract", str(dump), "--output",
                                     str(tmp_path / "ours2"), "--workers", "2", "--overwrite"],
        }
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():  # interleaved: drift on the machine hits all alike
                shutil.rmtree(tmp_path / "wx", ignore_errors=True)
                results[name].append(measure(command))
        same = [p.read_bytes() for p in sorted((tmp_path / "ours1").glob("documents-*"))] == \
               [p.read_bytes() for p in sorted((tmp_path / "ours2").glob("documents-*"))]
        tasks = len(list((tmp_path / "ours1").glob("documents-*.jsonl")))
    mb = xml_bytes / 1e6
    print(f"\ndump: {pages} pages, {mb:.1f} MB of XML, one plain .xml.bz2; medians of {args.runs} runs")
    print(f"{'command':>23} {'wall s':>7} {'CPU s':>7} {'CPU-ms/page':>12} {'MB/CPU-s':>9} {'peak RSS MB':>12}")
    medians = {}
    for name, runs in results.items():
        wall, cpu, rss = (statistics.median(r[i] for r in runs) for i in range(3))
        medians[name] = (wall, cpu, rss)
        print(f"{name:>23} {wall:>7.1f} {cpu:>7.1f} {1000 * cpu / pages:>12.2f} {mb / cpu:>9.2f} {rss:>12.0f}")
    ours, theirs = medians["albertprep 1 worker"], medians["wikiextractor"]
    lean = medians["import, extras left out"]
    print(f"Beam's import alone: {medians['import apache_beam'][2]:.0f} MB peak RSS, "
          f"{medians['import apache_beam'][1]:.2f} CPU s; as a local job's processes import it "
          f"(warm.leave_out_beam_extras): {lean[2]:.0f} MB, {lean[1]:.2f} CPU s")
    print(f"speed per core, albertprep / wikiextractor (CPU time): {theirs[1] / ours[1]:.2f} (target >= 1)")
    print(f"peak RSS, albertprep / wikiextractor: {ours[2] / theirs[2]:.2f} (target <= 4)")
    print(f"2 workers / 1 worker, wall: {ours[0] / medians['albertprep 2 workers'][0]:.2f} (target >= 1.7) "
          f"over {tasks} tasks")
    print(f"1- and 2-worker outputs byte-identical: {same}")
    if not same:
        raise SystemExit("outputs differ between worker counts")


if __name__ == "__main__":
    sys.exit(main())
