"""Why syntok: sentence splitters compared on accuracy and speed, in one run.

Accuracy on the cases pretraining text is full of (titles, initials,
"U.S.", "e.g.", decimals, quotations); speed in MB/s on one core over the
first 300 kB of Austen's Emma, paragraph by paragraph.

    python benchmarks/sentences.py [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import blingfire
import pysbd

from albertprep.pipelines.sentences import split_sentences

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = [
    ("Mr. Smith went to Washington. He arrived at 3.5 p.m. on Monday.", 2),
    ("The U.S. economy grew 2.5 percent in 2019. Analysts were surprised.", 2),
    ("Some fruits, e.g. apples and pears, are sweet. Others are not.", 2),
    ('"Stop!" he said. She left.', 2),
    ("Dr. J. R. R. Tolkien wrote books. They sold well.", 2),
    ("It cost $1.50 in St. Louis. That is cheap.", 2),
    ("I met Mrs. Weston, i.e. the former Miss Taylor. Emma smiled.", 2),
    ("I cannot agree with you, papa; you know I cannot. Mr. Weston is such a good man.", 2),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_corpora = os.environ.get("ALBERTPREP_CORPORA", ROOT.parent / "shared" / "corpora")
    parser.add_argument("--corpora", type=pathlib.Path, default=default_corpora)
    args = parser.parse_args()
    text = (args.corpora / "books" / "austen-emma.txt").read_text()[:300_000]
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    segmenter = pysbd.Segmenter(language="en", clean=False)
    splitters = {
        "syntok (ours)": split_sentences,
        "pysbd": lambda t: [s.strip() for s in segmenter.segment(t) if s.strip()],
        "blingfire": lambda t: blingfire.text_to_sentences(t).split("\n"),
    }
    print(f"{'splitter':>14} {'cases right':>12} {'MB/s':>6}")
    for name, split in splitters.items():
        right = sum(len(split(case)) == expected for case, expected in CASES)
        started = time.perf_counter()
        for paragraph in paragraphs:
            split(paragraph)
        speed = len(text.encode()) / (time.perf_counter() - started) / 1e6
        print(f"{name:>14} {right:>5} of {len(CASES):<4} {speed:6.2f}")


if __name__ == "__main__":
    sys.exit(main())
