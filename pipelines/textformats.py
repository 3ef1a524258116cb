"""Text that users already have: BERT/ALBERT sentence files and JSONL.

Both are read by byte range so that one large file is split across
workers, as Hadoop splits text: a record belongs to the range holding its
first byte, and a reader finishes the record it started past its range's
end. The id of a record is its file's stem and the byte offset where it
starts (or the record's own "id" in JSONL), the same on every runner.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import BinaryIO

_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass(frozen=True)
class TextRecord:
    offset: int
    lines: list[str] | None = None  # a sentence-per-line document
    fields: dict | None = None  # a JSONL record
    error: str = ""  # why the record could not be read
    raw: bytes = b""  # the JSONL line as read (its newline stripped)


def _first_line_start(f: BinaryIO, start: int) -> int:
    if start == 0:
        return 0
    f.seek(start - 1)
    return start - 1 + len(f.readline())


def _previous_line_blank(f: BinaryIO, line_start: int) -> bool:
    """Whether the line ending just before `line_start` is blank: empty or
    whitespace only, the reader's own rule (it strips every line)."""
    if line_start == 0:
        return True
    low = line_start - 1
    while True:  # walk back, a block at a time, to the previous line's start
        block_start = max(0, low - 4096)
        f.seek(block_start)
        block = f.read(low - block_start)
        newline = block.rfind(b"\n")
        if newline >= 0 or block_start == 0:
            previous = block[newline + 1:]
            break
        if block.strip():
            return False  # a long line with text on it
        low = block_start
    return not previous.strip()


def _lines_from(f: BinaryIO, line_start: int) -> Iterator[tuple[int, bytes]]:
    f.seek(line_start)
    offset = line_start
    for line in iter(f.readline, b""):
        yield offset, (line[len(_BOM):] if offset == 0 and line.startswith(_BOM) else line)
        offset += len(line)


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


def read_sentence_documents(f: BinaryIO, start: int, end: int) -> Iterator[TextRecord]:
    """Documents of the BERT format (a sentence a line, blank line between)
    that start in bytes [start, end)."""
    first = _first_line_start(f, start)
    previous_blank = _previous_line_blank(f, first)
    doc_offset, doc_lines, bad_line = -1, [], -1
    for offset, raw in _lines_from(f, first):
        line = _decode(raw)
        if line == "":
            if doc_lines or bad_line >= 0:
                yield _sentence_record(doc_offset, doc_lines, bad_line)
                doc_lines, bad_line = [], -1
            previous_blank = True
            if offset >= end:
                return
            continue
        if not doc_lines and bad_line < 0:
            if not previous_blank:  # the tail of a document of the range before
                continue
            if offset >= end:
                return
            doc_offset = offset
        previous_blank = False
        if line is None:
            bad_line = offset if bad_line < 0 else bad_line
        else:
            doc_lines.append(line)
    if doc_lines or bad_line >= 0:
        yield _sentence_record(doc_offset, doc_lines, bad_line)


def _sentence_record(offset: int, lines: list[str], bad_line: int) -> TextRecord:
    if bad_line >= 0:
        return TextRecord(offset, error=f"line at byte {bad_line} is not valid UTF-8")
    return TextRecord(offset, lines=lines)


def read_jsonl_records(f: BinaryIO, start: int, end: int) -> Iterator[TextRecord]:
    """JSON objects, one a line, whose lines start in bytes [start, end)."""
    for offset, raw in _lines_from(f, _first_line_start(f, start)):
        if offset >= end:
            return
        if not raw.strip():
            continue
        try:
            fields = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            yield TextRecord(offset, error=f"invalid JSON: {error}")
            continue
        if not isinstance(fields, dict):
            yield TextRecord(offset, error=f"expected a JSON object, got {type(fields).__name__}")
            continue
        yield TextRecord(offset, fields=fields, raw=raw.rstrip(b"\r\n"))


def plan_byte_ranges(size: int, target_bytes: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Equal byte ranges of at most `target_bytes` covering [0, size); an
    empty file gets one range. More than one range are made a multiple of
    `multiple` in number."""
    count = max(1, -(-size // target_bytes))
    if count > 1:
        count = -(-count // multiple) * multiple
    bounds = [size * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def plan_line_ranges(f: BinaryIO, size: int, target_bytes: int) -> list[tuple[int, int]]:
    """`plan_byte_ranges` with every boundary moved to the next line start,
    and the ranges left without one dropped. A reader of the lines that
    start in [start, end) reads the same lines either way; but a range is
    then never empty, and its size is the work it holds. (A documents file
    of one 900 kB book would otherwise be a full range and an empty one,
    and a runner that deals ranges out in turn would give every book to
    the same worker.)"""
    bounds = sorted({min(size, _first_line_start(f, start)) for start, _ in plan_byte_ranges(size, target_bytes)}
                    | {size})
    ranges = list(zip(bounds[:-1], bounds[1:]))
    return ranges or [(0, size)]


_MIN_SPLIT, _MAX_SPLIT, _TASKS_WANTED = 256 << 10, 64 << 20, 64


def auto_split(total_bytes: int) -> int:
    """Bytes a task reads when the user gives none, in the corpus stage and
    the instance stage alike: enough tasks (up to 64) to balance any worker
    count on any machine, but no task under 256 KiB (a few bz2 blocks) or
    over 64 MiB. It depends on the inputs alone, never on --workers, so the
    output files are the same whatever the worker count."""
    return max(_MIN_SPLIT, min(_MAX_SPLIT, total_bytes // _TASKS_WANTED))
