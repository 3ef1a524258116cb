"""The dedup stage: its cost beside the corpus stage's on the same input, and what it finds.

The corpus is built here from ../shared, in a child process (so no command
inherits its pages):
- a plain .xml.bz2 dump of at least --mb MB of XML: the enwiki sample's
  articles repeated under new page ids, each repeat with 30% of its plain
  words replaced (so the repeats are distinct texts, Jaccard about 0.1),
  except every tenth repeat, which is left exact (true duplicates);
- the shared books and their planted copies (albertprep/tools/planted.py:
  exact, re-encoded, other Gutenberg header, 5/10/30% of words changed, a
  chapter removed).

Measured, --runs times each, interleaved, medians printed, each command its
own process (wall, CPU and peak RSS from wait4, see _process.py):
`albertprep extract` of the corpus and `albertprep dedup` of that extract,
one worker each. Printed: documents/s of dedup, its cost as a share of
extract's (target: at most 25%), and recall and precision on the planted
books at Jaccard >= 0.8, with the true Jaccard of each planted kind.

    python benchmarks/dedup.py [--mb 50] [--runs 3] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import pathlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from _process import measure
from extract import build_dump

ROOT = pathlib.Path(__file__).resolve().parents[1]
_TEXT = re.compile(rb"(<text[^>]*>)(.*?)(</text>)", re.DOTALL)
_PLAIN_WORD = re.compile(rb"(?<![\[\]{}|=<>&#/])\b[a-z]{3,}\b(?![\]}|=<>])")


def _changed(text: bytes, fraction: float, rng: random.Random) -> bytes:
    """`fraction` of the plain lower-case words of wikitext replaced by others
    of the page (markup, names and numbers left alone, so it parses alike)."""
    spots = list(_PLAIN_WORD.finditer(text))
    if not spots:
        return text
    vocabulary = sorted({m.group() for m in spots})
    chosen = {m.start(): rng.choice(vocabulary) for m in rng.sample(spots, int(len(spots) * fraction))}
    out, at = [], 0
    for match in spots:
        if match.start() in chosen:
            out += [text[at:match.start()], chosen[match.start()]]
            at = match.end()
    return b"".join(out) + text[at:]


def build(corpora: pathlib.Path, directory: pathlib.Path, megabytes: float) -> dict:
    """The corpus; returns its description and the planted books."""
    sys.path.insert(0, str(ROOT))
    from albertprep.tools import planted as plant

    (directory / "wiki").mkdir(parents=True)

    def rewrite(page: bytes, repeat: int, number: int) -> bytes:
        if not repeat or repeat % 10 == 0:  # the originals, and every tenth repeat: exact
            return page
        text = _TEXT.search(page)
        return page[:text.start(2)] + _changed(text[2], 0.3, random.Random(f"{repeat}:{number}")) + page[text.end(2):]

    count, xml_bytes = build_dump(corpora, directory / "wiki" / "enwiki-20160101-pages-articles.xml.bz2", megabytes,
                                  rewrite)
    books = directory / "books"
    shutil.copytree(corpora / "books", books)
    planted = plant.plant_books(sorted(books.glob("*.txt")), directory / "copies")
    return {"pages": count, "xml_mb": xml_bytes / 1e6, "planted": [dataclasses.asdict(p) for p in planted]}


def _score(extract_dir: pathlib.Path, dedup_dir: pathlib.Path, planted: list[dict]) -> dict:
    sys.path.insert(0, str(ROOT))
    from albertprep.core.documents import read_documents_jsonl
    from albertprep.tools import planted as plant

    documents = {d.id: d for path in sorted(glob.glob(str(extract_dir / "documents-*.jsonl")))
                 for d in read_documents_jsonl(path)}
    duplicates = {e["id"]: e["duplicate_of"] for e in map(json.loads, (dedup_dir / "duplicates.jsonl").open())}
    book_duplicates = {k: v for k, v in duplicates.items() if k.startswith("books:")}
    return plant.score([plant.Planted(**p) for p in planted], documents, book_duplicates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50, help="MB of XML in the dump (at least)")
    parser.add_argument("--runs", type=int, default=3)
    default_corpora = os.environ.get("ALBERTPREP_CORPORA", ROOT.parent / "shared" / "corpora")
    parser.add_argument("--corpora", type=pathlib.Path, default=default_corpora)
    parser.add_argument("--build-only", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        print(json.dumps(build(args.corpora, args.build_only, args.mb)))
        return
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = pathlib.Path(tmp)
        built = subprocess.run([python, __file__, "--build-only", str(tmp_path / "in"), "--mb", str(args.mb),
                                "--corpora", str(args.corpora)], check=True, capture_output=True, text=True)
        corpus = json.loads(built.stdout)
        inputs = [str(tmp_path / "in" / name) for name in ("wiki", "books", "copies")]
        extract_dir, dedup_dir = tmp_path / "extract", tmp_path / "dedup"
        commands = {
            "extract": [python, "-m", "albertprep", "extract", *inputs, "--output", str(extract_dir),
                        "--workers", "1", "--overwrite"],
            "dedup": [python, "-m", "albertprep", "dedup", str(extract_dir), "--output", str(dedup_dir),
                      "--workers", "1", "--overwrite"],
        }
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                results[name].append(measure(command))
        summary = json.loads((dedup_dir / "summary.json").read_text())
        score = _score(extract_dir, dedup_dir, corpus["planted"])
    block = summary["dedup"]
    documents = block["documents_in"]
    print(f"\ncorpus: {corpus['pages']} pages ({corpus['xml_mb']:.1f} MB of XML; every tenth repeat exact, the "
          f"others 30% changed), {len(list((ROOT.parent / 'shared').glob('corpora/books/*.txt'))) or 9} books "
          f"and {len(corpus['planted'])} planted copies: {documents} documents; medians of {args.runs} runs")
    print(f"{'command':>10} {'wall s':>7} {'CPU s':>7} {'peak RSS MB':>12}")
    medians = {}
    for name, runs in results.items():
        medians[name] = tuple(statistics.median(r[i] for r in runs) for i in range(3))
        wall, cpu, rss = medians[name]
        print(f"{name:>10} {wall:>7.1f} {cpu:>7.1f} {rss:>12.0f}")
    (ex_wall, ex_cpu, _), (dd_wall, dd_cpu, _) = medians["extract"], medians["dedup"]
    print(f"dedup: {documents / dd_wall:.0f} documents/s ({documents / dd_cpu:.0f} per CPU-second); "
          f"removed {block['duplicates']['exact']} exact and {block['duplicates']['near']} near duplicates")
    print(f"dedup / extract: wall {dd_wall / ex_wall:.2f}, CPU {dd_cpu / ex_cpu:.2f} (target <= 0.25)")
    print(f"planted books at Jaccard >= 0.8: recall {score['recall']:.3f} over {score['pairs_at_threshold']} pairs, "
          f"precision {score['precision']:.3f} over {score['removed']} removed; "
          f"found below 0.8: {score['found_below_threshold']} of {score['pairs_below_threshold']}")
    for kind, row in score["by_kind"].items():
        print(f"  {kind:>8}: found {row['found']} of {row['pairs']}, "
              f"true Jaccard {row['min_jaccard']:.3f}-{row['max_jaccard']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
