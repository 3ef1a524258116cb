"""Sentence splitting: syntok's decisions, without running syntok on easy text.

Why syntok: on the cases that matter for pretraining text (titles such as
"Mr." and "Dr.", initials, "U.S.", "e.g."/"i.e.", decimals, quotations
such as '"Stop!" he said.') it is as accurate as pysbd and faster;
blingfire is faster still but splits "Mr. Weston" after a semicolon and
'"Stop!" he said.' after the quote. Numbers in README.md.

Why not syntok alone: it tokenizes every character in Python and was a
third of the corpus stage's time. Most sentence ends are not ambiguous: a
word (plain, hyphenated, an acronym, "1960s", "25%"), then `.`, `!` or
`?`, a space and a capital letter. We cut the paragraph there first (syntok
splits there too: the word is not one of its abbreviations, months or
numerals), and only a piece that still holds an end mark that syntok might
split at goes through syntok: a twentieth of the text. On the books and the
Wikipedia sample this gives syntok's sentences on whole paragraphs but for
semicolons, where syntok ends a sentence and we never do, and a few
parentheticals (tests/pipelines/test_sentences.py), at a fraction of the time.

Sentences are cut from the original paragraph by offsets, so the text of a
sentence is exactly the text of the input, whitespace collapsed.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections import Counter
from collections.abc import Iterator

import syntok.segmenter
from syntok._segmentation_states import State  # syntok's own abbreviation and month lists

from albertprep.core.options import setting

_WORD_CHARACTER = re.compile(r"\w")
# A sure sentence end: a word of two or more letters (capitalised or not,
# hyphenated or not), an acronym or a number ("1960s", "25%"), closing
# quotes or brackets, the end mark(s), space, opening quotes or brackets, a
# capital. Not when the word is one of syntok's abbreviations, a roman
# numeral or a number before a month, nor inside brackets. Found in two
# steps, the end marks first (one per sentence, so few), then the word
# before them, which is faster than one pattern tried at every word.
_CANDIDATE_END = re.compile(r"[.!?]+[\"'\u2019\u201d]*(\s+)(?=[\"'\u2018\u201c(\[]*[A-Z])")
_SURE_WORD = re.compile(
    r"(?:\S*[^\w.'\u2019-])?(?:\w+-)*_?([^\W\d_]{2,}|\d{2,4}s?|\d+%)_?(?:['\u2019]s)?[\"'\u2019\u201d)\]]*"
)
# Where syntok might end a sentence inside a piece: an end mark, closing
# quotes or brackets, then space (or, after "..." or "!"/"?", a capital:
# "going...No"). A "." before anything else ("3.5", "U.S") never ends one.
_INNER_END = re.compile(
    r"[.!?][.!?\"'\u2019\u201d)\]]*(?=\s+(\S+)|(?:(?<=[.!?][.!?])|(?<=[!?])|(?<=[a-z]{2}\.))([A-Z]))"
)
_OPENERS = "\"'(\u2018\u201c["
_CLOSERS = ",;:.!?\"')\u2019\u201d]"
_MONTHS = State.months
_NOT_SURE = State.abbreviations | _MONTHS | {w.lower() for w in _MONTHS}
_ROMAN = re.compile(r"^[ivxlcdm]+$")
_DOTTED = re.compile(r"^[^\W\d_]+(\.[^\W\d_]+)+$")  # "U.S", "e.g", "Ph.D" (the last "." is the match's)


def _next_word(text: str, start: int) -> str:
    return text[start:start + 12].split(" ", 1)[0].strip("\"'(\u2018\u201c.,")


def _pieces(paragraph: str) -> list[tuple[int, int]]:
    """Spans of the paragraph between sure sentence ends."""
    spans, start, depth, scanned = [], 0, 0, 0
    for match in _CANDIDATE_END.finditer(paragraph):
        mark = match.start()
        sure = _SURE_WORD.fullmatch(paragraph, paragraph.rfind(" ", 0, mark) + 1, mark)
        if sure is None:
            continue
        word = sure[1]
        if word in _NOT_SURE or _ROMAN.match(word.lower()):
            continue
        if word.isdigit() and _next_word(paragraph, match.end(1)) in _MONTHS:
            continue  # "5 Sept. 2001"-like dates: syntok keeps them together
        # syntok reads a bracket as a unit: never cut inside one
        end = match.start(1)
        depth += paragraph.count("(", scanned, end) - paragraph.count(")", scanned, end)
        scanned = end
        if depth > 0:
            continue
        spans.append((start, end))
        start = match.end(1)
    spans.append((start, len(paragraph)))
    return spans


def _syntok_starts(text: str) -> list[int]:
    return [sentence[0].offset for paragraph in syntok.segmenter.analyze(text) for sentence in paragraph if sentence]


def _open_marks(piece: str) -> Iterator[re.Match]:
    """The end marks of the piece that syntok might end a sentence at. It
    never does before a lower-case word, nor after one of its abbreviations
    ("Mr."), an initial ("B.") or a dotted abbreviation ("U.S.", "e.g.")
    unless a sentence starter ("However", "The", ...) follows: those ends we
    decide here."""
    for match in _INNER_END.finditer(piece):
        after = match[1]
        if after is None:
            yield match  # a capital glued to "..." or "!"
            continue
        after = after.lstrip(_OPENERS).rstrip(_CLOSERS)  # syntok's next token: "However," is "However"
        if after[:1].islower() or after[:1] in ",;:":
            continue
        start = match.start()
        before = piece[piece.rfind(" ", 0, start) + 1:start].lstrip(_OPENERS)
        if match[0] == "." and after not in State.starters and (
                before in State.abbreviations or _DOTTED.match(before) or (
                    len(before) == 1 and before.isalpha() and (before.isupper() or before not in State.vowels))):
            continue
        yield match


# syntok decides an end mark from the few words around it: the word before
# (is it an abbreviation, an initial, the sentence's first?) and the words
# after (a starter, a number, a month, a bracket and what follows it). So a
# long piece is not given to syntok whole (it costs about 2.4 us a
# character): each open mark is decided on a window of words around it.
# A window must hold no bracket (syntok skips bracketed text whole, and its
# lookahead from a bracket is long) and not start inside one; where it would,
# the whole piece goes to syntok, as does a piece short enough to be cheap.
_WINDOW_WORDS = 4
_WHOLE_PIECE_CHARS = 80
_BRACKETS = "()[]"


def _window_start(piece: str, position: int) -> int:
    for _ in range(_WINDOW_WORDS):
        if position <= 0:
            return 0
        position = piece.rfind(" ", 0, position - 1)
        if position < 0:
            return 0
    return position + 1


def _window_end(piece: str, position: int) -> int:
    for _ in range(_WINDOW_WORDS):
        position = piece.find(" ", position + 1)
        if position < 0:
            return len(piece)
    return position


def _start_after(piece: str, mark: re.Match) -> int | None:
    """Where syntok starts a sentence after the mark (-1: it does not), or
    None when the mark cannot be decided on a window."""
    begin, end = _window_start(piece, mark.start()), _window_end(piece, mark.end())
    window = piece[begin:end]
    if any(bracket in window for bracket in _BRACKETS) or (
            piece.count("(", 0, begin) != piece.count(")", 0, begin)
            or piece.count("[", 0, begin) != piece.count("]", 0, begin)):
        return None
    following = len(piece) - len(piece[mark.end():].lstrip()) if mark.end() < len(piece) else len(piece)
    for start in _syntok_starts(window):
        if mark.start() < begin + start <= following:
            return begin + start
    return -1


def _syntok_decided(piece: str) -> list[int]:
    """Sentence starts in the piece, as syntok gives them."""
    marks = list(_open_marks(piece))
    if not marks:
        return [0]
    if len(piece) <= _WHOLE_PIECE_CHARS:
        return _syntok_starts(piece)
    starts = [0]
    for mark in marks:
        start = _start_after(piece, mark)
        if start is None:
            return _syntok_starts(piece)
        if start > 0:
            starts.append(start)
    return starts


def _collapsed(text: str) -> str:
    """`text` with its whitespace collapsed, as `" ".join(text.split())`.
    Most sentences hold no whitespace but single ASCII spaces (the renderer
    and the readers collapse it first), and only their ends need cutting:
    str.isprintable() is False for every other whitespace character, so it
    and a search for two spaces tell them apart (a third of the time)."""
    return text.strip(" ") if text.isprintable() and "  " not in text else " ".join(text.split())


def _cut(text: str, starts: list[int]) -> list[str]:
    """The sentences of `text` beginning at `starts`, whitespace collapsed,
    those without a word character left out."""
    sentences = (_collapsed(text[a:b]) for a, b in zip(starts, starts[1:] + [len(text)]))
    return [s for s in sentences if _WORD_CHARACTER.search(s)]


def split_sentences(paragraph: str) -> list[str]:
    """Splits one paragraph (no newlines needed) into non-empty sentences."""
    result = []
    for start, end in _pieces(paragraph):
        piece = paragraph[start:end]
        result += _cut(piece, _syntok_decided(piece))
    return result


def split_sentences_syntok(paragraph: str) -> list[str]:
    """syntok alone on the whole paragraph: the reference that
    tests/pipelines/test_sentences.py holds `split_sentences` against."""
    return _cut(paragraph, _syntok_starts(paragraph))


# --- screening: what a sentence may not be ------------------------------------

HOLE = "\ue000"  # where the wikitext renderer could not write a template as text
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")


@dataclasses.dataclass(frozen=True)
class SentenceLimits:
    """Caps on one sentence; a longer one is split at word boundaries, or
    dropped when a single word is over the cap."""

    # ALBERT's 512-token window holds about 2,000 characters of English
    max_chars: int = setting(2000, "a longer sentence is cut at word boundaries into pieces this long (counted)",
                             flag="--max-sentence-chars")
    max_words: int = setting(300, "likewise, in words", flag="--max-sentence-words")
    # longer "words" are base64, URLs glued together, or junk
    max_word_chars: int = setting(100, "a sentence with a longer 'word' (base64, glued URLs) is dropped (counted)")

    def __post_init__(self) -> None:
        if min(self.max_chars, self.max_words, self.max_word_chars) < 1:
            raise ValueError("sentence limits must be positive")


@functools.cache
def _long_word(max_word_chars: int) -> re.Pattern:
    return re.compile(rf"[^ ]{{{max_word_chars + 1},}}")


def screen(sentence: str, limits: SentenceLimits, dropped: Counter) -> list[str]:
    """The sentence as it may be written: control characters removed, over-
    long ones cut into pieces of at most `limits`, and none at all (counted in
    `dropped` by reason) when it holds a hole or a word over the cap."""
    if HOLE in sentence:
        dropped["template_hole"] += 1
        return []
    if _CONTROL.search(sentence):
        sentence = " ".join(_CONTROL.sub(" ", sentence).split())
        dropped["control_characters_removed"] += 1
        if not _WORD_CHARACTER.search(sentence):
            return []
    if len(sentence) <= limits.max_chars and sentence.count(" ") < limits.max_words:
        if len(sentence) <= limits.max_word_chars or not _long_word(limits.max_word_chars).search(sentence):
            return [sentence]
    words = sentence.split(" ")
    if any(len(word) > limits.max_word_chars for word in words):
        dropped["word_too_long"] += 1
        return []
    dropped["split_too_long"] += 1
    pieces, current, size = [], [], 0
    for word in words:
        if current and (len(current) >= limits.max_words or size + 1 + len(word) > limits.max_chars):
            pieces.append(" ".join(current))
            current, size = [], 0
        current.append(word)
        size += len(word) + (1 if size else 0)
    pieces.append(" ".join(current))
    return pieces
