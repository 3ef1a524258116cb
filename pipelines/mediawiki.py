"""Streaming reader for MediaWiki XML dumps, plain or bz2, and multistream.

Memory stays bounded whatever the dump's size: pages are parsed one at a
time with an incremental parser and cleared as soon as they are read. The
parser is defusedxml's, which refuses entity declarations, so a dump
cannot expand entities (no billion-laughs). The encoding comes from the
BOM or the XML declaration (expat reads both), so UTF-16 dumps work.

A multistream dump (`*-multistream.xml.bz2`) is a concatenation of bz2
streams of 100 pages each, and its index (`*-multistream-index.txt.bz2`,
lines `offset:page_id:title`) gives each stream's byte offset. We read a
byte range of whole streams, so one dump is split across many workers.
"""

from __future__ import annotations

import bz2
import codecs
import dataclasses
import io
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from albertprep.pipelines.wikitext import DEFAULT_HIDDEN_LINK_NAMESPACES

# MediaWiki's redirect magic word and its common localisations; dumps also
# mark redirects with a <redirect title=.../> element, which we check first.
_REDIRECT_TEXT = re.compile(
    r"^\s*#\s*(redirect|đổi|weiterleitung|redirection|перенаправление|"
    r"пренасочване|redirección|rinvia|przekieruj|doorverwijzing|転送|重定向)\b",
    re.IGNORECASE,
)
# MediaWiki namespace numbers whose links must not render as text.
_HIDDEN_LINK_NAMESPACE_NUMBERS = (-2, 6, 14)  # Media, File, Category


class DumpTruncated(Exception):
    """The dump ended (or broke) before its closing tag.

    Raised after every complete page before the cut has been yielded.
    """


class DumpMalformed(Exception):
    """The file is not XML, or its XML breaks in the middle (not at a cut)."""


class UnsafeDump(Exception):
    """The dump declares entities or external references: refused."""


@dataclasses.dataclass(frozen=True)
class Page:
    title: str
    namespace: int
    page_id: str
    text: str
    redirect: bool
    malformed: str = ""  # why the <page> element itself is unusable


@dataclasses.dataclass
class SiteInfo:
    """What <siteinfo> says; defaults serve dumps that have none."""

    dbname: str = ""
    hidden_link_namespaces: frozenset[str] = DEFAULT_HIDDEN_LINK_NAMESPACES


def is_redirect_text(text: str) -> bool:
    return bool(_REDIRECT_TEXT.match(text))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return child.text or ""
    return None


def _page_from_element(element) -> Page:
    redirect = False
    text = ""
    for child in element:
        name = _local(child.tag)
        if name == "redirect":
            redirect = True
        elif name == "revision":  # full-history dumps: the last one wins
            text = _child_text(child, "text") or ""
    title = _child_text(element, "title") or ""
    page_id = (_child_text(element, "id") or "").strip()
    namespace = (_child_text(element, "ns") or "0").strip()
    malformed = ""
    if not page_id.isdigit():
        malformed = f"<id> is {page_id!r}, not a number"
    elif not namespace.lstrip("-").isdigit():
        malformed = f"<ns> is {namespace!r}, not a number"
    return Page(
        title=title,
        namespace=int(namespace) if not malformed else 0,
        page_id=page_id,
        text=text,
        redirect=redirect or is_redirect_text(text),
        malformed=malformed,
    )


def _siteinfo_from_element(element, siteinfo: SiteInfo) -> None:
    siteinfo.dbname = _child_text(element, "dbname") or ""
    hidden = set(DEFAULT_HIDDEN_LINK_NAMESPACES)
    for child in element:
        if _local(child.tag) != "namespaces":
            continue
        for namespace in child:
            if int(namespace.get("key", "0")) in _HIDDEN_LINK_NAMESPACE_NUMBERS:
                hidden.add((namespace.text or "").strip().lower())
    hidden.discard("")
    siteinfo.hidden_link_namespaces = frozenset(hidden)


def iter_pages(stream: BinaryIO, siteinfo: SiteInfo | None = None) -> Iterator[Page]:
    """Yields each complete <page>; fills `siteinfo` when the dump has one.

    Raises DumpTruncated after the last complete page if the XML breaks off
    (a cut download, a damaged bz2 stream).
    """
    siteinfo = siteinfo if siteinfo is not None else SiteInfo()
    root = None
    pages = 0
    try:
        for event, element in iterparse(stream, events=("start", "end")):
            if root is None:
                root = element
                continue
            if event != "end":
                continue
            name = _local(element.tag)
            if name == "page":
                pages += 1
                yield _page_from_element(element)
                root.clear()  # drop the page: memory stays bounded
            elif name == "siteinfo":
                _siteinfo_from_element(element, siteinfo)
                root.clear()
    except ParseError as error:
        # expat says "no element found" only when the data ends inside the
        # document: a cut. Anything else is broken or is not XML at all.
        if "no element found" in str(error) and root is not None:
            raise DumpTruncated(f"after {pages} complete pages: {error}") from error
        raise DumpMalformed(f"not well-formed XML after {pages} complete pages: {error}") from error
    except (EOFError, OSError) as error:
        raise DumpTruncated(f"after {pages} complete pages: {error}") from error
    except DefusedXmlException as error:
        raise UnsafeDump(f"refused after {pages} pages: {error!r}") from error


# Characters XML 1.0 forbids: expat stops at the first, losing the rest of the file.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_REPLACEMENT = "\ufffd"


@dataclasses.dataclass
class Repairs:
    """What `repaired_utf8` mended in one stream."""

    invalid_bytes: int = 0  # bytes that were not UTF-8, each replaced by U+FFFD
    control_characters: int = 0  # characters XML forbids, each replaced by U+FFFD
    first_at: int = -1  # offset of the first repair, in bytes of the stream read


def repaired_utf8(chunks: Iterable[bytes], repairs: Repairs) -> Iterator[bytes]:
    """The chunks as valid UTF-8 XML: every invalid byte and every character
    XML forbids replaced by U+FFFD and counted, so expat reads on past them
    and the page that held them is kept."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    position = 0
    for chunk in chunks:
        # nearly every chunk needs nothing: passed on as it is, not decoded,
        # searched and encoded again (a tenth of the reading's CPU)
        held = decoder.getstate()[0]  # the start of a character the last chunk cut
        if not held and _clean(chunk):
            yield chunk
        else:
            yield _repair(decoder.decode(chunk), held + chunk, position - len(held), repairs)
        position += len(chunk)
    held = decoder.getstate()[0]
    tail = decoder.decode(b"", final=True)
    if tail:
        yield _repair(tail, held, position - len(held), repairs)


_FORBIDDEN_BYTES = bytes(b for b in range(0x20) if b not in b"\t\n\r")  # never inside a multi-byte character
_OTHER_BYTES = bytes(b for b in range(256) if b not in _FORBIDDEN_BYTES)


def _clean(chunk: bytes) -> bool:
    """Whether the chunk is whole UTF-8 characters, none of them one XML forbids."""
    if chunk.translate(None, _OTHER_BYTES):  # what is left is the forbidden bytes
        return False
    if chunk.isascii():
        return True
    if b"\xef\xbf\xbe" in chunk or b"\xef\xbf\xbf" in chunk:  # U+FFFE, U+FFFF
        return False
    try:
        chunk.decode("utf-8")  # strict: an invalid byte, or a character cut at the end, fails
    except UnicodeDecodeError:
        return False
    return True


def _repair(text: str, raw: bytes, position: int, repairs: Repairs) -> bytes:
    """`text`, decoded from `raw` (the bytes at `position` of the stream),
    with its invalid bytes and forbidden characters counted and replaced."""
    replaced = text.count(_REPLACEMENT) - raw.count(_REPLACEMENT.encode())
    if replaced > 0:
        repairs.invalid_bytes += replaced
        if repairs.first_at < 0:
            repairs.first_at = position + _first_invalid(raw)
    control = _XML_INVALID.search(text)
    if control:
        if repairs.first_at < 0:
            repairs.first_at = position + len(text[: control.start()].encode())
        text, count = _XML_INVALID.subn(_REPLACEMENT, text)
        repairs.control_characters += count
    return text.encode("utf-8")


def _first_invalid(raw: bytes) -> int:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return 0


def file_chunks(f: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    return iter(lambda: f.read(size), b"")


class _ChunkReader(io.RawIOBase):
    """A read-only binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def read_multistream_offsets(index: BinaryIO) -> list[int]:
    """Sorted distinct stream offsets from an index (bz2 or plain)."""
    head = index.read(3)
    index.seek(0)
    lines = bz2.open(index, "rt", encoding="utf-8") if head == b"BZh" else io.TextIOWrapper(index, "utf-8")
    offsets = {int(line.split(":", 1)[0]) for line in lines if line.strip()}
    return sorted(offsets)


def plan_stream_ranges(offsets: list[int], file_size: int, target_bytes: int) -> list[tuple[int, int]]:
    """Groups consecutive streams into byte ranges of about `target_bytes`.

    The range before the first indexed stream (the <siteinfo> header) is
    left out; the last range runs to the end of the file.
    """
    bounds = offsets + [file_size]
    ranges: list[tuple[int, int]] = []
    start = bounds[0]
    for offset in bounds[1:]:
        if offset - start >= target_bytes or offset == file_size:
            ranges.append((start, offset))
            start = offset
    return ranges


def _decompressed_streams(compressed: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    """Decompresses the whole bz2 streams in [start, end), one at a time."""
    compressed.seek(start)
    remaining = end - start
    decompressor = None
    parts: list[bytes] = []
    while remaining > 0:
        data = compressed.read(min(remaining, 1 << 20))
        if not data:
            break
        remaining -= len(data)
        while data:
            if decompressor is None:
                decompressor, parts = bz2.BZ2Decompressor(), []
            parts.append(decompressor.decompress(data))
            if not decompressor.eof:
                break
            yield b"".join(parts)
            data, decompressor = decompressor.unused_data, None
    if decompressor is not None:  # fed, but its end-of-stream never came
        yield b"".join(parts)
        raise EOFError(f"bz2 stream cut off before byte {end}")


_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([^"']+)""")


def _is_utf8_head(head: bytes) -> bool:
    """Whether a dump starting with `head` is UTF-8: no UTF-16 BOM, and no
    declaration of another encoding."""
    declared = _DECLARED_ENCODING.match(head)
    return not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and (
        declared is None or declared[1].lower().replace(b"_", b"-") in (b"utf-8", b"utf8"))


def iter_repaired_pages(stream: BinaryIO, siteinfo: SiteInfo | None = None,
                        repairs: Repairs | None = None) -> Iterator[Page]:
    """`iter_pages` over a UTF-8 dump whose invalid bytes are mended
    (`repaired_utf8`); a UTF-16 dump, or one declaring another encoding, is
    read as it is."""
    buffered = io.BufferedReader(stream, 1 << 16) if not hasattr(stream, "peek") else stream
    if not _is_utf8_head(buffered.peek(200)[:200]) or repairs is None:
        yield from iter_pages(buffered, siteinfo)
        return
    yield from iter_pages(io.BufferedReader(_ChunkReader(repaired_utf8(file_chunks(buffered), repairs)), 1 << 16),
                          siteinfo)


_HEADER = b"<mediawiki"
_FOOTER = b"</mediawiki>"


def _page_fragments(compressed: BinaryIO, start: int, end: int, problems: list[str]) -> Iterator[bytes]:
    """A well-formed document: the streams' pages (and <siteinfo>, if the
    range holds the header stream) inside one root element.

    A cut-off stream ends the document without its closing tag, so the
    parser still gets every byte before the cut and then reports the cut.
    """
    yield b"<mediawiki>"
    try:
        for data in _decompressed_streams(compressed, start, end):
            header = data.find(_HEADER)
            if header >= 0:  # the dump's own opening tag: ours replaces it
                data = data[data.index(b">", header) + 1:]
            stripped = data.rstrip()
            if stripped.endswith(_FOOTER):
                data = stripped[: -len(_FOOTER)]
            yield data
    except (EOFError, OSError) as error:
        problems.append(str(error))
        return
    yield _FOOTER


def iter_multistream_pages(
    compressed: BinaryIO, start: int, end: int, siteinfo: SiteInfo | None = None, repairs: Repairs | None = None
) -> Iterator[Page]:
    """Pages of the bz2 streams that lie in bytes [start, end) of the dump."""
    problems: list[str] = []
    chunks = _page_fragments(compressed, start, end, problems)
    fragments = _ChunkReader(chunks if repairs is None else repaired_utf8(chunks, repairs))
    try:
        yield from iter_pages(io.BufferedReader(fragments, 1 << 16), siteinfo)
    except DumpTruncated as error:
        raise DumpTruncated("; ".join([str(error), *problems])) from error


_TITLE_LINE = re.compile(rb"^\s*<title>(.*)</title>\s*$")
_ID_LINE = re.compile(rb"^\s*<id>(\d+)</id>\s*$")


def write_multistream(dump: BinaryIO, output: BinaryIO, index: BinaryIO, pages_per_stream: int = 100) -> int:
    """Recompresses a dump (decompressed bytes, one tag a line as MediaWiki
    writes them) as a multistream dump with its index, as Wikimedia does:
    the header in its own stream, then `pages_per_stream` pages a stream.

    Lets a plain dump be split across workers. Returns the number of streams.
    """
    index_lines: list[bytes] = []
    lines: list[bytes] = []
    pages_in_stream, streams, expecting = 0, 0, None  # expecting: title, id

    def flush() -> None:
        nonlocal lines, pages_in_stream, streams
        if lines:
            output.write(bz2.compress(b"".join(lines)))
            streams += 1
        lines, pages_in_stream = [], 0

    for line in dump:
        stripped = line.strip()
        if stripped == b"<page>":
            if streams == 0 or pages_in_stream == pages_per_stream:
                flush()
            offset = output.tell()
            pages_in_stream += 1
            expecting, title = "title", b""
        elif expecting == "title" and (match := _TITLE_LINE.match(line)):
            title, expecting = match[1], "id"
        elif expecting == "id" and (match := _ID_LINE.match(line)):
            index_lines.append(b"%d:%s:%s\n" % (offset, match[1], title))
            expecting = None
        elif stripped == b"</mediawiki>":
            flush()
        lines.append(line)
    flush()
    index.write(bz2.compress(b"".join(index_lines)))
    return streams


# --- a byte range of a plain dump -------------------------------------------------

_PAGE_OPEN = b"<page>"
_KEEP = len(_FOOTER)  # bytes held back so that a tag split across chunks is still found


def pages_in_range(chunks: Iterable[tuple[bool, bytes]], at_start: bool) -> Iterator[bytes]:
    """A well-formed document of the pages whose `<page>` begins in the
    in-range chunks (the whole file's header too when `at_start`): the bytes
    from the first such `<page>` up to the first `<page>` after the range,
    inside one root element. A page belongs to the range holding its first
    byte, so consecutive ranges read every page exactly once.

    Without a closing tag (a cut file) the document ends unclosed, so the
    parser reports the cut after the last complete page.
    """
    yield b"<mediawiki>"
    buf = b""
    boundary = -1  # where out-of-range bytes begin in buf; -1: not yet seen
    state = "header" if at_start else "seeking"
    for in_range, chunk in chunks:
        if not in_range and boundary < 0:
            boundary = len(buf)
        buf += chunk
        if state == "header":  # drop the declaration and the dump's own root tag: ours replaces it
            header = buf.find(_HEADER)
            close = buf.find(b">", header) if header >= 0 else -1
            if close < 0:
                continue
            buf = buf[close + 1:]
            boundary = boundary - close - 1 if boundary >= 0 else -1
            state = "passing"
        if state == "seeking":
            found = buf.find(_PAGE_OPEN)
            if found < 0 or (boundary >= 0 and found >= boundary):
                if boundary >= 0 and (found >= 0 or len(buf) - boundary >= len(_PAGE_OPEN)):
                    yield _FOOTER  # no page begins in this range: an empty, complete document
                    return
                keep = len(_PAGE_OPEN) - 1
                if boundary >= 0:
                    boundary = max(0, boundary - (len(buf) - keep))
                buf = buf[-keep:]
                continue
            buf = buf[found:]
            boundary = boundary - found if boundary >= 0 else -1
            state = "passing"
        footer = buf.find(_FOOTER)
        cut = buf.find(_PAGE_OPEN, boundary) if boundary >= 0 else -1
        if footer >= 0 and (cut < 0 or footer < cut):
            yield buf[:footer]
            yield _FOOTER
            return
        if cut >= 0:
            yield buf[:cut]
            yield _FOOTER
            return
        if len(buf) > _KEEP:
            yield buf[:-_KEEP]
            if boundary >= 0:
                boundary = max(0, boundary - (len(buf) - _KEEP))
            buf = buf[-_KEEP:]
    if state == "passing":
        yield buf  # the file ended without </mediawiki>: left unclosed, reported as a cut
    elif state == "seeking":
        yield _FOOTER  # the file ended before any page of this range began


def file_range_chunks(f: BinaryIO, start: int, end: int, size: int = 1 << 20) -> Iterator[tuple[bool, bytes]]:
    """(in_range, bytes) of a plain file from `start`: bytes before `end`
    in range, then the rest of the file, for the page that crosses `end`."""
    f.seek(start)
    position = start
    while True:
        want = min(size, end - position) if position < end else size
        data = f.read(want)
        if not data:
            return
        yield position < end, data
        position += len(data)


def iter_range_pages(f: BinaryIO, start: int, end: int, compressed: bool, siteinfo: SiteInfo | None = None,
                     repairs: Repairs | None = None) -> Iterator[Page]:
    """Pages of a plain dump (`.xml`, or one-stream `.xml.bz2` read by bz2
    blocks) whose `<page>` begins in bytes [start, end) (compressed bytes
    for bz2, where a block belongs to the range holding its magic)."""
    from albertprep.pipelines import bz2blocks  # only ranged bz2 reading needs it

    problems: list[str] = []

    def chunks() -> Iterator[tuple[bool, bytes]]:
        if not compressed:
            yield from file_range_chunks(f, start, end)
            return
        try:
            yield from bz2blocks.iter_blocks(f, start, end)
        except bz2blocks.BlockError as error:
            problems.append(str(error))

    fragments = pages_in_range(chunks(), at_start=start == 0)
    if repairs is not None:
        fragments = repaired_utf8(fragments, repairs)
    try:
        yield from iter_pages(io.BufferedReader(_ChunkReader(fragments), 1 << 16), siteinfo)
    except DumpTruncated as error:
        raise DumpTruncated("; ".join([str(error), *problems])) from error


def read_head_siteinfo(f: BinaryIO, compressed: bool, limit: int = 16 << 20) -> tuple[SiteInfo, bool]:
    """The <siteinfo> at the head of a plain dump, and whether the dump is
    UTF-8 (a UTF-16 dump, or one declaring another encoding, is not split)."""
    stream = bz2.BZ2File(f) if compressed else f
    head = stream.read(4096)
    siteinfo = SiteInfo()
    if not _is_utf8_head(head):
        return siteinfo, False
    while b"</siteinfo>" not in head and b"<page>" not in head and len(head) < limit:
        more = stream.read(1 << 16)
        if not more:
            break
        head += more
    if _HEADER not in head:
        return siteinfo, False  # not a dump: one task reads it and says what it is
    end = head.find(b"</siteinfo>")
    if end >= 0:
        try:
            for _ in iter_pages(io.BytesIO(head[: end + len(b"</siteinfo>")] + b"</mediawiki>"), siteinfo):
                pass
        except (DumpTruncated, DumpMalformed, UnsafeDump):
            pass  # read as one task; the reader reports what is wrong
    return siteinfo, True
