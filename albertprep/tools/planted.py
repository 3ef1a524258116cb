"""Planted duplicates: a corpus with known copies, to measure dedup on.

From books (plain-text files) and extracted articles (Documents), this
writes copies of the kinds a real corpus has, each named so that its id
sorts after its original's (the dedup stage keeps a cluster's smallest id,
so a found copy is reported as a duplicate of its original):

- `exact`: the same bytes under another name;
- `encoding`: the same text in another encoding (UTF-16, or cp1252);
- `header`: the book wrapped in another Project Gutenberg header and licence;
- `words5`, `words10`, `words30`: 5%, 10%, 30% of the words replaced by
  other words of the same text, at random places;
- `chapter`: one chapter (or, without chapter headings, a tenth of the
  paragraphs) removed; for an article, its longest section.

`score` then compares what the dedup stage removed with what was planted,
using the true Jaccard similarity of the two texts' word shingles (the
stage's own normalisation and shingles, compared exactly, not estimated).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import random
import re

from albertprep.core.documents import Document
from albertprep.pipelines import fingerprints

KINDS = ("exact", "encoding", "header", "words5", "words10", "words30", "chapter")
ARTICLE_KINDS = ("exact", "words5", "words10", "words30", "chapter")
PREFIX = "zz-planted"  # sorts after the originals' names
_CHAPTER = re.compile(r"^(CHAPTER|Chapter|ACT|Act|BOOK|Book)\b[^\n]*$", re.MULTILINE)
_HEADER = """The Project Gutenberg eBook of {title}, planted copy

This eBook is for the use of anyone anywhere in the United States and most other parts of the world at no
cost and with almost no restrictions whatsoever. You may copy it, give it away or re-use it under the terms
of the Project Gutenberg License included with this eBook or online at www.gutenberg.org.

Title: {title}

*** START OF THE PROJECT GUTENBERG EBOOK {upper} ***

"""
_FOOTER = """

*** END OF THE PROJECT GUTENBERG EBOOK {upper} ***

Updated editions will replace the previous one--the old editions will be renamed. Creating the works from
print editions not protected by U.S. copyright law means that no one owns a United States copyright in these
works, so the Foundation (and you!) can copy and distribute it in the United States without permission.
"""


@dataclasses.dataclass(frozen=True)
class Planted:
    copy_id: str  # the document id the copy will get
    original_id: str
    kind: str


def change_words(text: str, fraction: float, rng: random.Random) -> str:
    """`fraction` of the whitespace-separated words replaced by other words of the text."""
    pieces = re.split(r"(\s+)", text)
    word_at = [i for i in range(0, len(pieces), 2) if pieces[i]]
    vocabulary = sorted({pieces[i] for i in word_at})
    for i in rng.sample(word_at, int(len(word_at) * fraction)):
        replacement = rng.choice(vocabulary)
        while replacement == pieces[i] and len(vocabulary) > 1:
            replacement = rng.choice(vocabulary)
        pieces[i] = replacement
    return "".join(pieces)


def remove_chapter(text: str) -> str:
    """The text without its second chapter, or without a tenth of its paragraphs from the middle."""
    headings = [m.start() for m in _CHAPTER.finditer(text)]
    if len(headings) >= 4:
        return text[:headings[1]] + text[headings[2]:]
    paragraphs = text.split("\n\n")
    cut = max(1, len(paragraphs) // 10)
    middle = len(paragraphs) // 2
    return "\n\n".join(paragraphs[:middle] + paragraphs[middle + cut:])


def plant_books(books: list[pathlib.Path], directory: pathlib.Path, seed: int = 0) -> list[Planted]:
    """Writes every kind of copy of each book into `directory` (which becomes
    part of the corpus: its files are books)."""
    directory.mkdir(parents=True, exist_ok=True)
    planted = []
    for number, book in enumerate(sorted(books)):
        data = book.read_bytes()
        text = data.decode("utf-8", errors="replace")
        title = book.stem.replace("-", " ").title()
        rng = random.Random(f"{seed}:{book.stem}")
        copies = {
            "exact": data,
            "encoding": text.encode("utf-16") if number % 2 else text.encode("cp1252", errors="replace"),
            "header": (_HEADER.format(title=title, upper=title.upper()) + text
                       + _FOOTER.format(upper=title.upper())).encode("utf-8"),
            "words5": change_words(text, 0.05, rng).encode("utf-8"),
            "words10": change_words(text, 0.10, rng).encode("utf-8"),
            "words30": change_words(text, 0.30, rng).encode("utf-8"),
            "chapter": remove_chapter(text).encode("utf-8"),
        }
        for kind, content in copies.items():
            name = f"{PREFIX}-{book.stem}-{kind}"
            (directory / f"{name}.txt").write_bytes(content)
            planted.append(Planted(f"books:{name}", f"books:{book.stem}", kind))
    return planted


def _paragraph_texts(document: Document) -> list[str]:
    return [" ".join(document.sentences[first:end]) for first, end in document.paragraph_spans()]


def _without_longest_section(document: Document) -> list[str]:
    bounds = [s.first_sentence for s in document.sections] + [len(document.sentences)]
    spans = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    if not spans:
        return _paragraph_texts(document)[: max(1, len(document.paragraph_spans()) * 9 // 10)]
    first, end = max(spans, key=lambda span: span[1] - span[0])
    return [text for (a, b), text in zip(document.paragraph_spans(), _paragraph_texts(document))
            if not (first <= a and b <= end)]


def plant_articles(documents: list[Document], path: pathlib.Path, seed: int = 0) -> list[Planted]:
    """Writes copies of the articles as one JSONL file (`text`, paragraphs a
    line each), which becomes part of the corpus."""
    stem = path.name.removesuffix(".jsonl")
    assert stem.startswith(PREFIX), "the copies' ids must sort after the originals'"
    planted, lines = [], []
    for document in sorted(documents, key=lambda d: d.id):
        rng = random.Random(f"{seed}:{document.id}")
        text = "\n".join(_paragraph_texts(document))
        copies = {
            "exact": text,
            "words5": change_words(text, 0.05, rng),
            "words10": change_words(text, 0.10, rng),
            "words30": change_words(text, 0.30, rng),
            "chapter": "\n".join(_without_longest_section(document)),
        }
        for kind, content in copies.items():
            key = f"{document.id.replace(':', '-')}-{kind}"
            lines.append(json.dumps({"id": key, "title": document.title, "text": content}, ensure_ascii=False))
            planted.append(Planted(f"{stem}:{key}", document.id, kind))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return planted


def shingle_set(document: Document, n: int = 5) -> set[int]:
    return set(fingerprints.ngram_hashes(fingerprints.TextWords.of(document.sentences).hashes, n).tolist())


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / max(1, len(a | b))


def score(planted: list[Planted], documents: dict[str, Document], duplicates: dict[str, str],
          threshold: float = 0.8, n: int = 5) -> dict:
    """Recall on planted pairs at or above `threshold` (found: the copy removed
    as a duplicate of its own original), the share found below it, and
    precision: of the removed documents, the share that are planted copies
    of the original they are said to duplicate (an original removed, or a
    copy tied to another book, counts against it)."""
    planted_of = {p.copy_id: p for p in planted}
    rows = []
    shingles: dict[str, set[int]] = {}
    for p in planted:
        if p.copy_id not in documents or p.original_id not in documents:
            continue  # a copy the corpus stage left out (none is expected)
        for ident in (p.copy_id, p.original_id):
            if ident not in shingles:
                shingles[ident] = shingle_set(documents[ident], n)
        similarity = jaccard(shingles[p.copy_id], shingles[p.original_id])
        rows.append({"kind": p.kind, "copy": p.copy_id, "jaccard": similarity,
                     "found": duplicates.get(p.copy_id) == p.original_id})
    right = sum(1 for ident, kept in duplicates.items()
                if ident in planted_of and planted_of[ident].original_id == kept)
    above = [r for r in rows if r["jaccard"] >= threshold]
    below = [r for r in rows if r["jaccard"] < threshold]
    by_kind = {}
    for kind in KINDS:
        of_kind = [r for r in rows if r["kind"] == kind]
        if of_kind:
            by_kind[kind] = {"pairs": len(of_kind), "found": sum(r["found"] for r in of_kind),
                             "min_jaccard": round(min(r["jaccard"] for r in of_kind), 3),
                             "max_jaccard": round(max(r["jaccard"] for r in of_kind), 3)}
    return {"pairs": len(rows), "pairs_at_threshold": len(above),
            "recall": sum(r["found"] for r in above) / max(1, len(above)),
            "found_below_threshold": sum(r["found"] for r in below), "pairs_below_threshold": len(below),
            "removed": len(duplicates), "precision": right / max(1, len(duplicates)),
            "originals_removed": sorted(i for i in duplicates if i not in planted_of),
            "missed": sorted(r["copy"] for r in above if not r["found"]), "by_kind": by_kind, "rows": rows}
