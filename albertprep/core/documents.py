"""The corpus stage's unit of output and its two on-disk encodings.

A `Document` is what every reader produces and what the instance stage
consumes. Its id is derived from where it came from (wiki and page id, book
file name, offset in a text file), never from processing order, so every
runner and worker count assigns the same ids.
"""

from __future__ import annotations

import dataclasses
import enum
import json


class Outcome(str, enum.Enum):
    """What became of one input unit (a page, a book, a text record).

    Every unit read gets exactly one outcome, so the per-outcome counts add
    up to the number of units read.
    """

    ARTICLE = "article"  # kept: written as a document
    REDIRECT = "redirect"
    OTHER_NAMESPACE = "other_namespace"
    EMPTY = "empty"  # nothing left after cleaning
    PARSE_ERROR = "parse_error"  # markup, record or file that could not be parsed
    BINARY = "binary"  # a file that is not text (by its share of control bytes)
    TOO_LARGE = "too_large"  # a page over --max-page-chars
    TOO_COMPLEX = "too_complex"  # a page whose markup would take, or took, too long to parse
    DUPLICATE = "duplicate"  # removed by the dedup stage: the same or nearly the same text as a kept document
    CONTAMINATED = "contaminated"  # removed by the dedup stage: all its sentences share n-grams with --exclude text


@dataclasses.dataclass(frozen=True)
class Section:
    """A heading: structure of the document, kept out of its sentences."""

    title: str
    level: int
    first_sentence: int  # index of the first sentence under this heading


@dataclasses.dataclass(frozen=True)
class Document:
    id: str
    source: str
    title: str
    sentences: tuple[str, ...]
    sections: tuple[Section, ...] = ()
    # The index of each paragraph's first sentence; () where the input has no
    # paragraphs (sentence-per-line text), and each sentence then counts as one.
    paragraphs: tuple[int, ...] = ()

    def to_json(self) -> str:
        record = {
            "id": self.id,
            "source": self.source,
            "title": self.title,
            "sentences": list(self.sentences),
            "sections": [[s.title, s.level, s.first_sentence] for s in self.sections],  # astuple: 10x slower
            "paragraphs": list(self.paragraphs),
        }
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Document:
        return cls.from_record(json.loads(line))

    @classmethod
    def from_record(cls, record: dict) -> Document:
        """From the parsed JSON object of one line of documents-*.jsonl."""
        return cls(
            id=record["id"],
            source=record["source"],
            title=record["title"],
            sentences=tuple(record["sentences"]),
            sections=tuple(Section(*s) for s in record.get("sections", ())),
            paragraphs=tuple(record.get("paragraphs", ())),
        )

    def paragraph_spans(self) -> list[tuple[int, int]]:
        """(first, end) sentence indexes of each paragraph, covering every sentence."""
        starts = list(self.paragraphs) if self.paragraphs else list(range(len(self.sentences)))
        if starts and starts[0] != 0:
            starts.insert(0, 0)
        return list(zip(starts, starts[1:] + [len(self.sentences)]))

    def to_bert_text(self) -> str:
        """One sentence per line and a blank line after the document.

        This is the input format of google-research/albert's
        create_pretraining_data.py, so our output also feeds that script.
        """
        return "".join(s + "\n" for s in self.sentences) + "\n"


@dataclasses.dataclass(frozen=True)
class Skip:
    """A unit that did not become a document, and why: for the summary."""

    outcome: Outcome
    file: str
    place: str  # where in the file: page title and id, line, byte offset
    reason: str = ""


def read_documents_jsonl(path: str) -> list[Document]:
    with open(path, encoding="utf-8") as f:
        return [Document.from_json(line) for line in f if line.strip()]
