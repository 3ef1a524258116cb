"""Inputs → read tasks → documents, with every input unit accounted for.

Planning runs once, at launch: it expands the user's inputs (files,
directories, globs, `kind:` prefixes) into `ReadTask`s, each a piece of
work one worker does alone (a book, a range of a multistream dump, a byte
range of a text file, an index range of a TFDS split). Tasks are numbered
in sorted path order, so their outputs are the same files on every runner.

Reading a task yields its documents and records in a `TaskReport` what
became of every page, book and record it read.
"""

from __future__ import annotations

import bz2
import codecs
import dataclasses
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

from apache_beam.io.filesystems import FileSystems

from albertprep.core.documents import Document, Outcome, Section, Skip
from albertprep.core.errors import UserError
from albertprep.core.options import setting
from albertprep.pipelines import books, mediawiki, textformats
from albertprep.pipelines.sentences import SentenceLimits, screen, split_sentences
from albertprep.pipelines.wikitext import DEFAULT_HIDDEN_LINK_NAMESPACES, WikitextError
from albertprep.pipelines.wikitext import render as render_wikitext

KINDS = ("wiki", "book", "sentences", "jsonl", "tfds")
_MAX_SKIP_EXAMPLES = 20  # per task; the counts are always complete
_WIKI_NAME = re.compile(r"^([a-z0-9_]+wik[a-z]+)")


class InputError(UserError, ValueError):
    """An input the planner cannot read; the message names it."""


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    split_bytes: int = 0  # input bytes one task reads; 0: chosen from the inputs' total size (textformats.auto_split)
    tfds_records_per_task: int = 50_000
    text_field: str = setting("text", "JSONL/TFDS field holding the text")
    title_field: str = setting("title", "JSONL/TFDS field holding the title")
    tfds_data_dir: str | None = setting(None, "TFDS data_dir for tfds:NAME inputs")
    keep_lists: bool = setting(False, "wiki list items become sentences (default: lists are not prose: dropped, "
                               "counted)")
    sentence_limits: SentenceLimits = SentenceLimits()
    # the longest real English articles have about 1.3 M
    max_page_chars: int = setting(2_000_000, "a wiki page with more wikitext is skipped (too_large)")
    parse_seconds: float = setting(20.0, "a wiki page whose markup takes longer to parse is skipped (too_complex)")


@dataclasses.dataclass(frozen=True)
class ReadTask:
    index: int
    kind: str
    path: str
    source: str  # what the documents say they come from: wiki dbname, "books", a file's stem
    id_prefix: str  # unique per input file: a document's id is f"{id_prefix}:{key}"
    size: int = 0  # bytes of input this task reads (whole file for one-task files)
    start: int = 0
    end: int = 0
    multistream: bool = False
    ranged: bool = False  # a byte range of a plain dump (bz2 blocks, or <page> boundaries)
    hidden_link_namespaces: frozenset[str] = DEFAULT_HIDDEN_LINK_NAMESPACES
    split: str = ""  # TFDS split name
    options: PlanOptions = PlanOptions()

    @property
    def work(self) -> int:
        """Estimated text bytes to process, to balance tasks over workers:
        bz2 packs wikitext about four to one."""
        return self.size * 4 if self.path.endswith(".bz2") else self.size


@dataclasses.dataclass
class TaskReport:
    """What one task read; merged across tasks into the run's summary."""

    outcomes: Counter = dataclasses.field(default_factory=Counter)
    skips: list[Skip] = dataclasses.field(default_factory=list)
    files_read: set[str] = dataclasses.field(default_factory=set)
    decoding_fallbacks: dict[str, str] = dataclasses.field(default_factory=dict)
    truncated: dict[str, str] = dataclasses.field(default_factory=dict)
    refused: dict[str, str] = dataclasses.field(default_factory=dict)  # unsafe XML
    malformed: dict[str, str] = dataclasses.field(default_factory=dict)  # not XML, or XML broken mid-file
    repaired: dict[str, dict] = dataclasses.field(default_factory=dict)  # invalid bytes replaced, by file
    sentences: int = 0
    characters: int = 0
    blocks_dropped: Counter = dataclasses.field(default_factory=Counter)  # non-prose blocks, by kind
    sentences_dropped: Counter = dataclasses.field(default_factory=Counter)  # and sentences fixed, by reason
    holes: Counter = dataclasses.field(default_factory=Counter)  # unrendered templates in prose, by name

    def count(self, outcome: Outcome, skip: Skip | None = None) -> None:
        self.outcomes[outcome.value] += 1
        if skip is not None and len(self.skips) < _MAX_SKIP_EXAMPLES:
            self.skips.append(skip)


# --- planning ---------------------------------------------------------------


def _stem(path: str) -> str:
    name = os.path.basename(path.rstrip("/"))
    for suffix in (".bz2", ".gz", ".xml", ".jsonl", ".json", ".txt", "-multistream", "-pages-articles"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _guess_kind(path: str) -> str | None:
    name = os.path.basename(path)
    if name.endswith("-index.txt.bz2") or name.endswith("-index.txt"):
        return None  # a multistream index: read with its dump
    if re.search(r"\.xml(\.bz2)?$|\.xml-.*\.bz2$", name):
        return "wiki"
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    if name.endswith(".txt"):
        return "book"
    raise InputError(f"{path}: cannot tell its format from its name; prefix it with one of {', '.join(KINDS)} and ':'")


def _expand(spec: str) -> list[tuple[str, str, int]]:
    """(kind, path, size) of each file an input names."""
    kind = None
    head, sep, rest = spec.partition(":")
    if sep and head in KINDS:
        kind, spec = head, rest
    if kind == "tfds":
        return [("tfds", spec, 0)]
    if os.path.isdir(spec) or spec.endswith("/"):  # a remote directory (gs://b/books/) ends with "/"
        pattern = FileSystems.join(spec.rstrip("/"), "**")
    else:
        pattern = spec
    metadata = FileSystems.match([pattern])[0].metadata_list
    if not metadata and os.path.isdir(spec):
        raise InputError(f"{spec}: an empty directory")
    if not metadata:
        raise InputError(f"{spec}: no such file")
    files = []
    for meta in sorted(metadata, key=lambda m: m.path):
        if os.path.isdir(meta.path):
            continue
        file_kind = kind or _guess_kind(meta.path)
        if file_kind is not None:
            files.append((file_kind, meta.path, meta.size_in_bytes))
    if not files:
        raise InputError(f"{spec}: no input files in it")
    return files


def _multistream_index(path: str) -> str | None:
    if "multistream" not in os.path.basename(path) or not path.endswith(".xml.bz2"):
        return None
    index = path[: -len(".xml.bz2")] + "-index.txt.bz2"
    return index if FileSystems.exists(index) else None


def _multistream_siteinfo(path: str, header_end: int) -> mediawiki.SiteInfo:
    """The <siteinfo> of the dump's first stream (localised namespace names)."""
    siteinfo = mediawiki.SiteInfo()
    with FileSystems.open(path, compression_type="uncompressed") as f:
        for _ in mediawiki.iter_multistream_pages(f, 0, header_end, siteinfo):
            pass
    return siteinfo


def _wiki_tasks(path: str, size: int, options: PlanOptions, split: int) -> list[dict]:
    match = _WIKI_NAME.match(os.path.basename(path))
    source = match[1] if match else _stem(path)
    index = _multistream_index(path)
    if index is None:
        return _plain_wiki_tasks(path, size, source, options, split)
    with FileSystems.open(index, compression_type="uncompressed") as f:
        offsets = mediawiki.read_multistream_offsets(f)
    if not offsets:
        raise InputError(f"{index}: an empty multistream index")
    siteinfo = _multistream_siteinfo(path, offsets[0])
    return [
        dict(kind="wiki", path=path, source=source, id_prefix=_stem(path), size=end - start, start=start, end=end,
             multistream=True, hidden_link_namespaces=siteinfo.hidden_link_namespaces)
        for start, end in mediawiki.plan_stream_ranges(offsets, size, split)
    ]


# Each task of a one-stream .xml.bz2 also decodes the block after its range,
# up to the end of the page that crosses into it: over half a block's work,
# about 15 ms, and with its output files a task costs about 30 ms of CPU of
# its own. At the smallest automatic split (256 KiB, one or two blocks) a
# 15 MB dump made 58 tasks, and that was a tenth of the run; so an automatic
# split gives such a dump's tasks 2 MiB at least (about eight blocks at -9:
# 8 tasks took 7.49 CPU-s where 16 took 7.75 and 58 took 8.5). Their number
# is then made a multiple of four: they are of equal work, and the local
# runner deals them to its workers in turn, so that 15 of them kept one of
# two workers idle for the last one's time. (An explicit --split-mb is
# taken as given.)
_MIN_AUTO_BZ2_SPLIT = 2 << 20
_AUTO_BZ2_TASKS_MULTIPLE = 4


def _plain_wiki_tasks(path: str, size: int, source: str, options: PlanOptions, split: int) -> list[dict]:
    """A plain dump split by byte ranges: `.xml` cut at `<page>`, a one-stream
    `.xml.bz2` at bz2 blocks. A UTF-16 dump, or a file that does not start as
    its name says, is read whole by one task (which reports what is wrong)."""
    whole = [dict(kind="wiki", path=path, source=source, id_prefix=_stem(path), size=size, end=size)]
    with FileSystems.open(path, compression_type="uncompressed") as f:
        magic = f.read(3)
        compressed = magic == b"BZh"
        if path.endswith(".bz2") != compressed:
            return whole
        f.seek(0)
        try:
            siteinfo, splittable = mediawiki.read_head_siteinfo(f, compressed)
        except (OSError, EOFError):
            return whole
    if not splittable:
        return whole
    multiple = 1
    if compressed and not options.split_bytes:
        split, multiple = max(split, _MIN_AUTO_BZ2_SPLIT), _AUTO_BZ2_TASKS_MULTIPLE
    return [
        dict(kind="wiki", path=path, source=source, id_prefix=_stem(path), size=end - start, start=start, end=end,
             ranged=True, hidden_link_namespaces=siteinfo.hidden_link_namespaces)
        for start, end in textformats.plan_byte_ranges(size, split, multiple)
    ]


def _tfds_builder(spec: str, options: PlanOptions):
    import tensorflow_datasets as tfds

    if os.path.isdir(spec):
        return tfds.builder_from_directory(spec)
    try:
        return tfds.builder(spec, data_dir=options.tfds_data_dir)
    except Exception as error:  # tfds raises many kinds for a missing dataset
        raise InputError(f"tfds:{spec}: cannot open the prepared dataset ({error})") from error


def _tfds_tasks(spec: str, options: PlanOptions) -> list[dict]:
    builder = _tfds_builder(spec, options)
    tasks = []
    for split, info in sorted(builder.info.splits.items()):
        count = info.num_examples
        step = options.tfds_records_per_task
        for start in range(0, max(count, 1), step):
            name = builder.info.name
            tasks.append(dict(kind="tfds", path=spec, source=name, id_prefix=builder.info.full_name, split=split,
                              start=start, end=min(count, start + step)))
    return tasks


def _file_tasks(kind: str, path: str, size: int, options: PlanOptions, split: int) -> list[dict]:
    if kind == "tfds":
        return _tfds_tasks(path, options)
    if kind == "wiki":
        return _wiki_tasks(path, size, options, split)
    if kind == "book":
        return [dict(kind="book", path=path, source="books", id_prefix="books", size=size, end=size)]
    stem = _stem(path)
    return [dict(kind=kind, path=path, source=stem, id_prefix=stem, size=end - start, start=start, end=end)
            for start, end in textformats.plan_byte_ranges(size, split)]


def id_namespace(kind: str, path: str, tasks: list[dict] = ()) -> tuple[str, str]:
    """What a file's document ids are made unique by: two files may not share it."""
    if kind == "tfds":
        return "tfds", tasks[0]["id_prefix"] if tasks else path
    return ("book" if kind == "book" else "file"), _stem(path)


def plan(inputs: list[str], options: PlanOptions = PlanOptions()) -> list[ReadTask]:
    """Read tasks for the given inputs, numbered in a runner-independent order.

    A file named twice (a directory and a file in it) is read once; two
    files whose documents would get the same ids are refused.
    """
    files = sorted({file for spec in inputs for file in _expand(spec)}, key=lambda f: f[1])
    split = options.split_bytes or textformats.auto_split(sum(size for _, _, size in files))
    specs = []
    seen: dict[tuple[str, str], str] = {}
    for kind, path, size in files:
        tasks = _file_tasks(kind, path, size, options, split)
        namespace = id_namespace(kind, path, tasks)
        if namespace in seen and seen[namespace] != path:
            raise InputError(f"{path} and {seen[namespace]} have the same name, so their documents would share ids")
        seen[namespace] = path
        specs.extend(tasks)
    specs.sort(key=lambda s: (s["path"], s.get("split", ""), s.get("start", 0)))
    return [ReadTask(index=i, options=options, **spec) for i, spec in enumerate(specs)]


# --- reading ----------------------------------------------------------------


def _sentences(paragraph: str, task: ReadTask, report: TaskReport) -> list[str]:
    """The paragraph's sentences as they may be written (see sentences.screen)."""
    limits, dropped = task.options.sentence_limits, report.sentences_dropped
    return [piece for sentence in split_sentences(paragraph) for piece in screen(sentence, limits, dropped)]


def _document(task: ReadTask, report: TaskReport, doc_id: str, title: str, paragraphs: list[str]) -> Document:
    sentences: list[str] = []
    starts: list[int] = []
    for paragraph in paragraphs:
        pieces = _sentences(paragraph, task, report)
        if pieces:
            starts.append(len(sentences))
            sentences.extend(pieces)
    return Document(id=doc_id, source=task.source, title=title, sentences=tuple(sentences), paragraphs=tuple(starts))


def _emit(document: Document, report: TaskReport, skip: Skip) -> Iterator[Document]:
    if not document.sentences:
        report.count(Outcome.EMPTY, skip)
        return
    report.count(Outcome.ARTICLE)
    report.sentences += len(document.sentences)
    report.characters += sum(len(s) for s in document.sentences)
    yield document


# mwparserfromhell's tokenizer backtracks over the rest of the page for each
# unclosed "{{" or "[": about 2.4e-8 s per (unclosed opener x character).
_PARSE_COST_LIMIT = 2e8  # unclosed openers x characters: about 5 s


def _parse_guard(text: str, options: PlanOptions) -> Skip | None:
    """Why the page must not be parsed (outcome and reason; file and place
    filled in by the caller), or None."""
    if len(text) > options.max_page_chars:
        reason = f"{len(text)} characters of wikitext, over the limit of {options.max_page_chars}"
        return Skip(Outcome.TOO_LARGE, "", "", reason)
    unclosed = max(0, text.count("{{") - text.count("}}")) + max(0, text.count("[") - text.count("]"))
    if unclosed * len(text) > _PARSE_COST_LIMIT:
        reason = (f"{unclosed} unclosed '{{{{' or '[' in {len(text)} characters: "
                  "the parser would backtrack for longer than its budget of about 5 s")
        return Skip(Outcome.TOO_COMPLEX, "", "", reason)
    return None


def _wiki_document(task: ReadTask, page: mediawiki.Page, hidden: frozenset[str], report: TaskReport) -> Document:
    started = time.monotonic()
    rendered = render_wikitext(page.text, hidden, keep_lists=task.options.keep_lists)
    seconds = time.monotonic() - started
    if seconds > task.options.parse_seconds:
        raise _PageTooComplex(f"its markup took {seconds:.0f} s to parse, "
                              f"over the deadline of {task.options.parse_seconds:g} s")
    report.blocks_dropped.update(rendered.dropped)
    report.holes.update(rendered.holes)
    sentences: list[str] = []
    sections: list[Section] = []
    starts: list[int] = []
    for block in rendered.blocks:
        if block.heading_level:
            sections.append(Section(block.text, block.heading_level, len(sentences)))
        elif pieces := _sentences(block.text, task, report):
            starts.append(len(sentences))
            sentences.extend(pieces)
    return Document(f"{task.id_prefix}:{page.page_id}", task.source, page.title, tuple(sentences), tuple(sections),
                    tuple(starts))


class _PageTooComplex(Exception):
    pass


def _read_wiki(task: ReadTask, f: BinaryIO, report: TaskReport) -> Iterator[Document]:
    siteinfo = mediawiki.SiteInfo(hidden_link_namespaces=task.hidden_link_namespaces)
    repairs = mediawiki.Repairs()
    if task.multistream:
        pages = mediawiki.iter_multistream_pages(f, task.start, task.end, siteinfo, repairs)
    elif task.ranged:
        pages = mediawiki.iter_range_pages(f, task.start, task.end, task.path.endswith(".bz2"), siteinfo, repairs)
    elif f.read(3) == b"BZh":
        f.seek(0)
        pages = mediawiki.iter_repaired_pages(bz2.BZ2File(f), siteinfo, repairs)
    else:
        f.seek(0)
        if _skipped_as_binary(f.read(_BINARY_SAMPLE), task, report, "whole file"):
            return
        f.seek(0)
        pages = mediawiki.iter_repaired_pages(f, siteinfo, repairs)
    try:
        for page in pages:
            place = f"page {page.title!r} (id {page.page_id})"
            if page.malformed:
                report.count(Outcome.PARSE_ERROR, Skip(Outcome.PARSE_ERROR, task.path, place, page.malformed))
            elif page.namespace != 0:
                report.count(Outcome.OTHER_NAMESPACE)
            elif page.redirect:
                report.count(Outcome.REDIRECT)
            elif guard := _parse_guard(page.text, task.options):
                report.count(guard.outcome, dataclasses.replace(guard, file=task.path, place=place))
            else:
                try:
                    document = _wiki_document(task, page, siteinfo.hidden_link_namespaces, report)
                except WikitextError as error:
                    report.count(Outcome.PARSE_ERROR, Skip(Outcome.PARSE_ERROR, task.path, place, str(error)))
                    continue
                except _PageTooComplex as error:
                    report.count(Outcome.TOO_COMPLEX, Skip(Outcome.TOO_COMPLEX, task.path, place, str(error)))
                    continue
                yield from _emit(document, report, Skip(Outcome.EMPTY, task.path, place, "no sentences after cleaning"))
    except mediawiki.DumpTruncated as error:
        where = f"bytes {task.start}-{task.end}: " if task.multistream or task.ranged else ""
        report.truncated[task.path] = f"{where}{error}"
    except mediawiki.DumpMalformed as error:
        where = f"bytes {task.start}-{task.end}" if task.multistream or task.ranged else "the file"
        report.count(Outcome.PARSE_ERROR, Skip(Outcome.PARSE_ERROR, task.path, where, str(error)))
        report.malformed[task.path] = str(error)
    except mediawiki.UnsafeDump as error:
        report.refused[task.path] = str(error)
    finally:
        if repairs.invalid_bytes or repairs.control_characters:
            report.repaired[task.path] = dataclasses.asdict(repairs)


# A text file has no control bytes but tab, newline, carriage return and form
# feed; random bytes have about 11%, executables and images far more. A few
# stray NULs in valid UTF-8 text are not binary: screen() removes them.
_BINARY_SAMPLE = 1 << 16
_BINARY_SHARE = 0.05  # of control bytes, in valid UTF-8
_BINARY_SHARE_INVALID = 0.01  # of control bytes, when the sample is not UTF-8 either
_BINARY_REASON = "its first 64 kB are control bytes in a share that text never has: binary, not text"
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"


def _is_binary(sample: bytes) -> bool:
    if not sample or sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if controls > _BINARY_SHARE * len(sample):
        return True
    if controls <= _BINARY_SHARE_INVALID * len(sample):
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start < len(sample) - 3  # not just a character cut by the sample's end
    return False


def _skipped_as_binary(sample: bytes, task: ReadTask, report: TaskReport, place: str) -> bool:
    """Counts the unit as `binary` when its sample is; says whether it did."""
    if not _is_binary(sample):
        return False
    report.count(Outcome.BINARY, Skip(Outcome.BINARY, task.path, place, _BINARY_REASON))
    return True


def _read_book(task: ReadTask, f: BinaryIO, report: TaskReport) -> Iterator[Document]:
    data = f.read()
    if _skipped_as_binary(data[:_BINARY_SAMPLE], task, report, "whole file"):
        return
    decoded = books.decode(data)
    if decoded.fallback:
        report.decoding_fallbacks[task.path] = decoded.encoding
    book = books.parse_book(decoded.text, fallback_title=_stem(task.path))
    document = _document(task, report, f"{task.id_prefix}:{_stem(task.path)}", book.title, book.paragraphs)
    yield from _emit(document, report, Skip(Outcome.EMPTY, task.path, "whole file", "no sentences"))


def _read_text(task: ReadTask, f: BinaryIO, report: TaskReport) -> Iterator[Document]:
    f.seek(task.start)
    if _skipped_as_binary(f.read(min(_BINARY_SAMPLE, task.end - task.start)), task, report,
                          f"bytes {task.start}-{task.end}"):
        return
    reader = textformats.read_sentence_documents if task.kind == "sentences" else textformats.read_jsonl_records
    for record in reader(f, task.start, task.end):
        place = f"record at byte {record.offset}"
        if record.error:
            report.count(Outcome.PARSE_ERROR, Skip(Outcome.PARSE_ERROR, task.path, place, record.error))
            continue
        if record.lines is not None:
            limits, dropped = task.options.sentence_limits, report.sentences_dropped
            sentences = tuple(piece for line in record.lines
                              for piece in screen(" ".join(line.split()), limits, dropped))
            document = Document(f"{task.id_prefix}:{record.offset}", task.source, "", sentences)
            yield from _emit(document, report, Skip(Outcome.EMPTY, task.path, place))
            continue
        text = record.fields.get(task.options.text_field)
        if not isinstance(text, str):
            reason = f"no string field {task.options.text_field!r}"
            report.count(Outcome.PARSE_ERROR, Skip(Outcome.PARSE_ERROR, task.path, place, reason))
            continue
        key = record.fields.get("id", record.offset)
        title = record.fields.get(task.options.title_field, "")
        document = _document(task, report, f"{task.id_prefix}:{key}", str(title), text.splitlines())
        yield from _emit(document, report, Skip(Outcome.EMPTY, task.path, place, "no sentences"))


def _as_text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_tfds(task: ReadTask, report: TaskReport) -> Iterator[Document]:
    source = _tfds_builder(task.path, task.options).as_data_source(split=task.split)
    for index in range(task.start, task.end):
        place = f"split {task.split} record {index}"
        record = source[index]
        if task.options.text_field not in record:
            reason = f"no field {task.options.text_field!r}"
            report.count(Outcome.PARSE_ERROR, Skip(Outcome.PARSE_ERROR, task.path, place, reason))
            continue
        text = _as_text(record[task.options.text_field])
        title = _as_text(record.get(task.options.title_field, b""))
        doc_id = f"{task.id_prefix}:{task.split}:{index}"
        document = _document(task, report, doc_id, title, text.splitlines())
        yield from _emit(document, report, Skip(Outcome.EMPTY, task.path, place, "no sentences"))


def read_task(task: ReadTask, report: TaskReport) -> Iterator[Document]:
    """The documents of one task, in input order; outcomes go to `report`."""
    report.files_read.add(task.path)
    if task.kind == "tfds":
        yield from _read_tfds(task, report)
        return
    readers = {"wiki": _read_wiki, "book": _read_book, "sentences": _read_text, "jsonl": _read_text}
    with FileSystems.open(task.path, compression_type="uncompressed") as f:
        yield from readers[task.kind](task, f, report)
