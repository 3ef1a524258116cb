"""BookCorpus-style books: one plain-text file per book.

Books come as their authors' publishers left them: Latin-1 or cp1252 files
next to UTF-8 ones, BOMs, CRLF, hard-wrapped paragraphs, and Project
Gutenberg's header and licence. We decode, strip the Gutenberg wrapping and
unwrap paragraphs, so a sentence is never cut at a line end.
"""

from __future__ import annotations

import codecs
import dataclasses
import re

_START_MARKER = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_END_MARKERS = re.compile(
    r"^(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*|End of (the )?Project Gutenberg.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_GUTENBERG_TITLE = re.compile(r"^Title:\s*(.+)$", re.MULTILINE)
# NLTK's Gutenberg corpus opens each book with "[Emma by Jane Austen 1816]".
_BRACKET_TAG = re.compile(r"\A\s*\[(?P<title>.+?) by (?P<author>[^\]]+?)(?: \d{4})?\]\s*$", re.MULTILINE)
_LOWER = re.compile(r"[^\W\d_A-Z]")
_PRODUCED_BY = re.compile(r"^(Produced|Prepared|Transcribed|E-text prepared) by\b")


@dataclasses.dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str
    fallback: bool  # not valid UTF-8: decoded with a legacy encoding


def decode(data: bytes) -> DecodedText:
    """UTF-8 (BOM stripped), UTF-16 when it has a BOM, else cp1252/Latin-1.

    cp1252 is tried before Latin-1 because it is what "Latin-1" files from
    Windows really are (curly quotes at 0x93/0x94); Latin-1 decodes any byte
    and catches the five bytes cp1252 leaves undefined.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return DecodedText(data.decode("utf-16"), "utf-16", False)
    try:
        return DecodedText(data.decode("utf-8-sig"), "utf-8", False)
    except UnicodeDecodeError:
        pass
    try:
        return DecodedText(data.decode("cp1252"), "cp1252", True)
    except UnicodeDecodeError:
        return DecodedText(data.decode("latin-1"), "latin-1", True)


@dataclasses.dataclass(frozen=True)
class Book:
    title: str
    paragraphs: list[str]


def strip_gutenberg(text: str) -> str:
    """The book's own text: Gutenberg's header and licence footer removed."""
    start = _START_MARKER.search(text)
    if start:
        text = text[start.end():]
    end = _END_MARKERS.search(text)
    if end:
        text = text[: end.start()]
    return text


def _is_heading(paragraph: str) -> bool:
    """"CHAPTER I", "VOLUME II", "Chapter 1": short and no lower-case prose."""
    words = paragraph.split()
    if len(words) > 12:
        return False
    if not _LOWER.search(paragraph):
        return True
    return words[0].lower() in ("chapter", "volume", "book", "part", "act", "scene") and len(words) <= 4


_PARAGRAPH_END = re.compile(r"""[.!?:;"'\u2019\u201d)\]]$""")


def _wrap_width(lines: list[str]) -> int:
    """The width the book was wrapped at: the 90th percentile line length."""
    lengths = sorted(len(line) for line in lines if line.strip())
    return max(40, lengths[int(len(lengths) * 0.9)]) if lengths else 80


def _unwrap(block: list[str], width: int) -> list[str]:
    """Joins a block's hard-wrapped lines into paragraphs.

    Some books have no blank line between paragraphs (this botchan.txt), so
    a line also ends its paragraph when either it or the next line is a
    heading (no lower case), or when it ends like a sentence and the next
    line's first word would have fitted on it.
    """
    paragraphs, current = [], []
    for line, following in zip(block, block[1:] + [""]):
        current.append(line.strip())
        next_word = following.split()[0] if following.split() else ""
        fits = len(line.rstrip()) + 1 + len(next_word) <= width
        heading = not _LOWER.search(line) or not _LOWER.search(following)
        if not following or heading or (fits and _PARAGRAPH_END.search(line.rstrip())):
            paragraphs.append(" ".join(" ".join(current).split()))
            current = []
    return [p for p in paragraphs if p]


def parse_book(text: str, fallback_title: str) -> Book:
    """Title and unwrapped paragraphs; headings are dropped, not sentences."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    title_match = _GUTENBERG_TITLE.search(text[:5000])
    text = strip_gutenberg(text)
    tag = _BRACKET_TAG.match(text)
    if tag:
        text = text[tag.end():]
    title = (tag and tag["title"]) or (title_match and title_match[1].strip()) or fallback_title
    lines = text.split("\n")
    width = _wrap_width(lines)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        for paragraph in _unwrap(block.strip("\n").split("\n"), width):
            if not _is_heading(paragraph) and not _PRODUCED_BY.match(paragraph):
                paragraphs.append(paragraph)
    return Book(title=title, paragraphs=paragraphs)
