"""Which templates stand inside sentences of real articles, and which we render.

Every template of every article of the shared enwiki sample is rendered as
a marker naming it; after paragraphs and sentences are made, the markers
still inside a sentence (not at its edge, not on a line of their own) are
counted by template name. The table says how often each occurs inside a
sentence and whether pipelines/templates.py renders it (text), shows it as
nothing (silent) or leaves a hole (the sentence is then dropped). This is
the ranking README.md quotes; it is a measurement, not a test.

    python benchmarks/templates.py [--top 30] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import bz2
import os
import pathlib
import re
import sys
from collections import Counter

from albertprep.pipelines import mediawiki, templates, wikitext
from albertprep.pipelines.sentences import split_sentences

ROOT = pathlib.Path(__file__).resolve().parents[1]
_BASE = 0xF0000  # supplementary private use area: one code point per template name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=30)
    default_corpora = os.environ.get("ALBERTPREP_CORPORA", ROOT.parent / "shared" / "corpora")
    parser.add_argument("--corpora", type=pathlib.Path, default=default_corpora)
    args = parser.parse_args()

    names: dict[str, int] = {}
    real_render, real_silent = templates.render, templates.is_silent

    def marking_render(raw_name: str, positional: list[str], named: dict[str, str]) -> str:
        key = templates.normalize_name(raw_name).lower()
        return chr(_BASE + names.setdefault(key, len(names)))

    templates.render, templates.is_silent = marking_render, lambda name: False
    inside: Counter = Counter()
    sentences = 0
    marker = re.compile(f"[{chr(_BASE)}-{chr(_BASE + 0xFFFD)}]")
    try:
        with bz2.open(args.corpora / "wiki" / "enwiki-sample.xml.bz2") as dump:
            for page in mediawiki.iter_pages(dump):
                if page.namespace or page.redirect:
                    continue
                for block in wikitext.render(page.text).blocks:
                    if block.heading_level:
                        continue
                    for sentence in split_sentences(block.text):
                        sentences += 1
                        body = sentence.rstrip(".!?\"') ")
                        for match in marker.finditer(body):
                            # at the sentence's start before a capital: not inside
                            rest = body[match.end():].lstrip(" " + "".join(map(chr, range(_BASE, _BASE + 64))))
                            if match.start() == 0 and rest[:1].isupper():
                                continue
                            inside[ord(match[0]) - _BASE] += 1
    finally:
        templates.render, templates.is_silent = real_render, real_silent
    by_index = {index: name for name, index in names.items()}
    total = sum(inside.values())
    print(f"{total} template uses inside {sentences} sentences of the enwiki sample's articles")
    print(f"{'rank':>4} {'template':<28} {'inside':>6} {'share':>6}  rendered as")
    for rank, (index, count) in enumerate(inside.most_common(args.top), 1):
        name = by_index[index]
        shown = real_render(name, ["5", "km"], {})
        kind = "hole (sentence dropped)" if shown is None else ("silent" if shown == "" else "text")
        print(f"{rank:>4} {name[:28]:<28} {count:>6} {count / total:>6.1%}  {kind}")
    everything = sum(c for i, c in inside.items() if real_render(by_index[i], ["5", "km"], {}) is not None)
    print(f"rendered or silent: {everything / total:.1%} of template uses inside sentences")


if __name__ == "__main__":
    sys.exit(main())
