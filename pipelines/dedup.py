"""The dedup stage as Beam pipelines: documents → fewer documents + summary.json.

Three passes over the documents, each a pipeline of Create, single-output
ParDos and GroupByKeys ending in one terminal step (what the DaskRunner
runs faithfully; see extract.py):

1. **Match.** Each task (a byte range of a documents file) fingerprints its
   documents (pipelines/fingerprints.py): an exact key of the normalised
   words, and a MinHash signature of their word shingles cut into bands.
   It writes one record per band and one for the exact key, as sorted runs
   in buckets by key (pipelines/runs.py; one file a task, a segment a
   bucket): no record goes through the runner. It also writes each
   document's paragraph keys, a table per range, for passes 2 and 3.
   Each bucket is merged; records with an equal key are a candidate group,
   verified pair by pair from the signatures' sketches
   (`fingerprints.acceptance`), and the verified pairs are written out.
   One step joins them into clusters (connected components, union-find over
   the ids that have a pair: never the corpus) and keeps each cluster's
   smallest id: duplicates.jsonl says what every other one duplicates.
2. **Boilerplate** (unless turned off). The paragraph keys of the
   documents that survive are counted, once per document, the same way in
   buckets of sorted runs; a paragraph of at least `boilerplate_min_words` words found
   in at least `boilerplate_min_documents` documents is boilerplate.
3. **Write.** Each task writes its range's surviving documents without
   their boilerplate paragraphs and without the sentences that share an
   n-gram with the --exclude text; the last step writes summary.json.

What survives depends only on the documents' text and ids, never on the
order or the tasks: the output is byte-identical on every runner and
worker count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from albertprep.core import atomic
from albertprep.core.documents import Document, Outcome, Section, Skip
from albertprep.core.errors import UserError
from albertprep.core.options import setting
from albertprep.pipelines import extract, fingerprints, runners, runs, textformats
from albertprep.pipelines.prepare import ReadRange, range_bytes

_LOG = logging.getLogger(__name__)
BUCKETS = 64  # of the match pass, at most (bucket_count)
PARAGRAPH_BUCKETS = 16
_RUN_BUFFER_BYTES = 8 << 20  # what a task buffers before writing runs: its bound, whatever the corpus
_MAX_COMPARISONS = 64  # earlier members of a candidate group a document is checked against
DUPLICATES = "duplicates.jsonl"  # every removed duplicate: id, duplicate_of, match, jaccard; sorted by id
_EXAMPLES = 20  # duplicates the summary (and so the manifest) names; the file names them all
_MAX_SKIPS = 20  # skipped documents a range lists (as extract's tasks do); all are counted
UNREADABLE_SOURCE = "(unreadable)"  # the source of a documents line that is not a document
WORK = "dedup.tmp"  # the passes' runs and tables, inside the staging directory; gone when the run ends
_EXACT, _NEAR = 0, 1
DEDUP_VERSION = 1


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    shingle_words: int = setting(5, "words in a shingle (MinHash's set element), as datatrove's 5-grams")
    bands: int = setting(16, "LSH bands: documents that share a band's values are candidates")
    rows: int = setting(7, "MinHash values in a band; bands x rows values a signature")
    jaccard: float = setting(0.8, "Jaccard similarity of word shingles at which two documents are duplicates")
    boilerplate: bool = setting(True, "keep paragraphs found in many documents", negated="--keep-boilerplate")
    boilerplate_min_documents: int = setting(5, "a paragraph in this many documents or more is boilerplate")
    boilerplate_min_words: int = setting(8, "shorter paragraphs are never boilerplate (headings, dialogue)")
    exclude: tuple[str, ...] = ()  # text to keep out (--exclude FILE...): JSONL or plain text
    exclude_ngram: int = setting(13, "words in the n-grams that --exclude text is matched by")

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.shingle_words <= 16:
            problems.append("--shingle-words must be 1-16")
        if self.bands < 1 or self.rows < 1 or self.bands * self.rows > 1024:
            problems.append("--bands and --rows must be positive, with bands x rows at most 1024")
        if not 0 < self.jaccard <= 1:
            problems.append("--jaccard must be in (0, 1]")
        if self.boilerplate_min_documents < 2 or self.boilerplate_min_words < 1:
            problems.append("--boilerplate-min-documents must be at least 2 and --boilerplate-min-words at least 1")
        if not 1 <= self.exclude_ngram <= 16:
            problems.append("--exclude-ngram must be 1-16")
        if problems:
            raise UserError("; ".join(problems))

    @property
    def num_hashes(self) -> int:
        return self.bands * self.rows

    def to_manifest(self) -> dict:
        """The summary's and manifest's record of the parameters, field by field."""
        return {"version": DEDUP_VERSION, "shingle_words": self.shingle_words, "bands": self.bands,
                "rows": self.rows, "jaccard": self.jaccard,
                "verified_at": round(fingerprints.acceptance(self.jaccard, self.num_hashes), 4),
                "boilerplate": self.boilerplate, "boilerplate_min_documents": self.boilerplate_min_documents,
                "boilerplate_min_words": self.boilerplate_min_words, "exclude_ngram": self.exclude_ngram}


def read_documents(read_range: ReadRange) -> Iterator[Document]:
    for document, _, _, _ in read_documents_and_lines(read_range):
        if document is not None:
            yield document


def read_documents_and_lines(read_range: ReadRange) -> Iterator[tuple[Document | None, bytes, Skip | None, str]]:
    """Each record of the range: its document (None where the line is not
    one: a documents file edited or cut by hand), its JSONL line as read,
    the skip to count for a line that is not a document, and its source."""
    with FileSystems.open(read_range.path, compression_type="uncompressed") as f:
        for record in textformats.read_jsonl_records(f, read_range.start, read_range.end):
            error = record.error
            if not error:
                try:
                    document = Document.from_record(record.fields)
                    error = _invalid(document)
                    if not error:
                        yield document, record.raw, None, document.source
                        continue
                except (KeyError, TypeError, ValueError) as failure:
                    error = f"not a document ({type(failure).__name__}: {failure})"
            source = record.fields.get("source") if isinstance(record.fields, dict) else None
            yield None, record.raw, Skip(Outcome.PARSE_ERROR, read_range.path, f"record at byte {record.offset}",
                                         error), source if isinstance(source, str) else UNREADABLE_SOURCE


def _invalid(document: Document) -> str:
    """Why a parsed line is not a document the stage can use, or ''."""
    if not all(isinstance(x, str) for x in (document.id, document.source, document.title, *document.sentences)):
        return "its id, source, title and sentences must be strings"
    starts = document.paragraphs
    if starts and not (all(isinstance(i, int) for i in starts) and list(starts) == sorted(set(starts))
                       and 0 <= starts[0] and starts[-1] < max(1, len(document.sentences))):
        return "its paragraphs are not increasing sentence indexes"
    if not all(isinstance(s, (list, tuple)) and len(s) == 3 and isinstance(s[1], int) and isinstance(s[2], int)
               for s in (dataclasses.astuple(x) for x in document.sections)):
        return "its sections are not [title, level, first sentence]"
    try:
        "".join((document.id, document.title, *document.sentences)).encode("utf-8")
    except UnicodeEncodeError:
        return "it holds a lone surrogate, which is not text"
    return ""


def paragraph_keys(document: Document, words: fingerprints.TextWords, min_words: int) -> np.ndarray:
    """Each paragraph's key; _NO_KEY for one too short to be boilerplate."""
    spans = np.array(document.paragraph_spans(), dtype=np.int64).reshape(-1, 2)
    starts, ends = words.bounds[spans[:, 0]], words.bounds[spans[:, 1]]
    keys = fingerprints.span_keys(words.hashes, starts, ends)
    keys[(ends - starts) < min_words] = _NO_KEY
    return keys


_NO_KEY = 0  # in a paragraph table: a paragraph too short to be boilerplate


def paragraph_table_path(work_dir: str, range_index: int) -> str:
    """Each document's paragraph keys, written by pass 1 for passes 2 and 3."""
    return FileSystems.join(work_dir, "tables", f"{range_index:05d}.npz")


def _write_paragraph_table(path: str, ids: list[str], counts: list[int], keys: list[np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.frombuffer(json.dumps(ids).encode("utf-8"), dtype=np.uint8),
             counts=np.array(counts, dtype=np.int64),
             keys=np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64))
    with atomic.created(path) as f:
        f.write(buffer.getvalue())


def read_paragraph_table(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """(id, paragraph keys) of each document of a range, in the range's order."""
    with FileSystems.open(path, compression_type="uncompressed") as f:
        stored = np.load(io.BytesIO(f.read()))
        ids, counts, keys = json.loads(stored["ids"].tobytes().decode("utf-8")), stored["counts"], stored["keys"]
    ends = np.cumsum(counts)
    for ident, end, count in zip(ids, ends.tolist(), counts.tolist()):
        yield ident, keys[end - count:end]


# One bucket's items in a run file: (path, offset, size). The stages that
# write runs yield (bucket, Segment), and (0, None) as a marker.
Segment = tuple[str, int, int]


class _RunFile:
    """A RunBuffer's runs in one file a flush, a bucket a segment: a task
    writes one file, not one per bucket (creating a file costs far more
    than writing a segment). The files go with the work directory."""

    def __init__(self, directory: str, range_index: int):
        self._directory, self._range = directory, range_index
        self._part: int | None = None
        self._stack: contextlib.ExitStack | None = None
        self.segments: list[tuple[int, tuple[str, int, int]]] = []  # (bucket, (path, offset, size))

    def write(self, bucket: int, part: int, items: list[tuple[int, bytes]]) -> None:
        if part != self._part:
            self.close()
            self._stack = contextlib.ExitStack()
            self._path = FileSystems.join(self._directory, f"{self._range:05d}-{part:05d}.runs")
            self._file = self._stack.enter_context(atomic.created(self._path))
            self._part, self._offset = part, 0
        runs.write_run(self._file, items)
        size = runs.run_bytes(items)
        self.segments.append((bucket, (self._path, self._offset, size)))
        self._offset += size

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


class _Segment:
    """The bytes [offset, offset + size) of an open file, read like a file."""

    def __init__(self, file, offset: int, size: int):
        file.seek(offset)
        self._file, self._left = file, size

    def readinto(self, buffer: memoryview) -> int:
        read = self._file.readinto(buffer[:min(len(buffer), self._left)]) if self._left > 0 else 0
        self._left -= read
        return read


@contextlib.contextmanager
def _opened(segments: list[tuple[str, int, int]]) -> Iterator[Iterator[tuple[int, bytes]]]:
    """The merged items of one bucket's segments."""
    with contextlib.ExitStack() as stack:
        files = [_Segment(stack.enter_context(FileSystems.open(path, compression_type="uncompressed")), offset, size)
                 for path, offset, size in sorted(segments)]
        yield runs.merged_files(files)


def bucket_count(ranges: list[ReadRange], most: int) -> int:
    """Buckets of a pass: one a range (the merge's parallelism), at most
    `most`. It depends on the input alone; what survives does not depend on it."""
    return max(1, min(most, len(ranges)))


def _groups(items: Iterator[tuple[int, bytes]], least: int = 2) -> Iterator[tuple[int, list[bytes]]]:
    """(key, its records) of merged items, for keys that at least `least` records have."""
    for key, group in itertools.groupby(items, key=lambda item: item[0]):
        records = [record for _, record in group]
        if len(records) >= least:
            yield key, records


# --- pass 1: match ------------------------------------------------------------


class Fingerprint(runners.StageFn):
    """A range's documents → exact and band records, as sorted runs per bucket."""

    def __init__(self, config: DedupConfig, work_dir: str, buckets: int):
        self._config = config
        self._work_dir = work_dir
        self._buckets = buckets

    def process(self, keyed: tuple[int, Iterable[ReadRange]]) -> Iterator[tuple[int, Segment | None]]:
        config = self._config
        for read_range in keyed[1]:
            run_file = _RunFile(FileSystems.join(self._work_dir, "bands"), read_range.index)
            buffer = runs.RunBuffer(_RUN_BUFFER_BYTES, run_file.write)
            ids, counts, table_keys = [], [], []
            for document in read_documents(read_range):
                words = fingerprints.TextWords.of(document.sentences)
                keys = paragraph_keys(document, words, config.boilerplate_min_words)
                ids.append(document.id)
                counts.append(len(keys))
                table_keys.append(keys)
                ident = document.id.encode("utf-8")
                exact = fingerprints.exact_key(words.hashes)
                key = int.from_bytes(exact[:8], "little")
                buffer.add(key % self._buckets, key, bytes([_EXACT]) + exact + ident)
                shingles = fingerprints.ngram_hashes(words.hashes, config.shingle_words)
                if len(shingles) == 0:  # shorter than a shingle: only its exact copies are found
                    continue
                signature = fingerprints.minhash(shingles, config.num_hashes)
                sketch = fingerprints.sketch(signature)
                for key in fingerprints.band_keys(signature, config.bands, config.rows):
                    buffer.add(key % self._buckets, key, bytes([_NEAR]) + sketch + ident)
            buffer.flush()
            run_file.close()
            _write_paragraph_table(paragraph_table_path(self._work_dir, read_range.index), ids, counts, table_keys)
            yield from run_file.segments
            yield 0, None  # a marker: the cluster step runs even when no range has a document


def match_group(group: list[bytes], config: DedupConfig) -> Iterator[tuple[str, str, str, float]]:
    """Verified pairs (id, earlier id, how, estimated Jaccard) of one candidate
    group: records of one key. Members are taken in id order, each checked
    against the earlier members of every other component the group's pairs
    have made so far (up to _MAX_COMPARISONS checks), so the group's pairs
    connect what the verified pairs of all its members would; their order
    does not depend on the runs. A record of the same id twice (not expected:
    ids are unique) pairs with nothing."""
    exact_size, sketch_size = 16, config.num_hashes
    members: dict[int, list[tuple[str, bytes]]] = {_EXACT: [], _NEAR: []}
    for record in group:
        kind = record[0]
        size = exact_size if kind == _EXACT else sketch_size
        members[kind].append((record[1 + size:].decode("utf-8"), record[1:1 + size]))
    first_of: dict[bytes, str] = {}
    for ident, key in sorted(set(members[_EXACT])):
        if key in first_of:
            if first_of[key] != ident:
                yield ident, first_of[key], "exact", 1.0
        else:
            first_of[key] = ident
    accept = fingerprints.acceptance(config.jaccard, config.num_hashes)
    earlier: list[tuple[str, bytes]] = []
    component: list[int] = []  # of each earlier member: a small union-find over the group's pairs

    def root(i: int) -> int:
        while component[i] != i:
            component[i] = component[component[i]]
            i = component[i]
        return i

    for ident, sketch in sorted(set(members[_NEAR])):
        mine = len(earlier)
        component.append(mine)
        checks = 0
        for index, (other, other_sketch) in enumerate(earlier):
            if checks >= _MAX_COMPARISONS:
                break
            if other == ident or root(index) == root(mine):
                continue  # already joined through an earlier pair
            checks += 1
            estimate = fingerprints.estimate_jaccard(sketch, other_sketch)
            if estimate >= accept:
                yield ident, other, "near", round(estimate, 4)
                low, high = sorted((root(index), root(mine)))
                component[high] = low
        earlier.append((ident, sketch))


class MatchBucket(runners.StageFn):
    """One bucket's runs → the verified pairs of its candidate groups, in a file."""

    def __init__(self, config: DedupConfig, work_dir: str):
        self._config = config
        self._work_dir = work_dir

    def process(self, keyed: tuple[int, Iterable[Segment | None]]) -> Iterator[tuple[int, dict]]:
        bucket, segments = keyed
        counts = Counter()
        path = FileSystems.join(self._work_dir, "pairs", f"{bucket:03d}.jsonl")
        with _opened([s for s in segments if s is not None]) as items, atomic.created(path) as out:
            for _, group in _groups(items):
                counts["candidate_groups"] += 1
                for pair in match_group(group, self._config):
                    counts["verified_pairs"] += 1
                    out.write((json.dumps(pair, ensure_ascii=True) + "\n").encode("ascii"))
        yield 0, {"path": path, "counts": dict(counts)}


class Cluster(runners.StageFn):
    """Every verified pair → clusters → duplicates.jsonl, sorted by id."""

    def __init__(self, output_dir: str, work_dir: str):
        self._output_dir = output_dir
        self._work_dir = work_dir

    def process(self, keyed: tuple[int, Iterable[dict]]) -> Iterator[dict]:
        clusters = fingerprints.Clusters()
        exact_clusters = fingerprints.Clusters()  # of the exact pairs alone: is a duplicate the same text as its kept?
        how: dict[str, float] = {}  # id -> the highest estimate of its pairs
        counts = Counter()
        for part in sorted(keyed[1], key=lambda p: p["path"]):
            counts.update(part["counts"])
            with FileSystems.open(part["path"], compression_type="uncompressed") as f:
                for line in f:  # read a line at a time: the pairs grow with the duplicates
                    a, b, kind, estimate = json.loads(line)
                    clusters.join(a, b)
                    if kind == "exact":
                        exact_clusters.join(a, b)
                    for ident in (a, b):
                        how[ident] = max(how.get(ident, 0.0), float(estimate))
        duplicates = clusters.duplicates()
        same_text = exact_clusters.duplicates()
        exact = 0
        with atomic.created(FileSystems.join(self._output_dir, DUPLICATES)) as f:
            for ident, kept in duplicates.items():
                is_exact = same_text.get(ident, ident) == same_text.get(kept, kept)
                exact += is_exact
                f.write((json.dumps({"id": ident, "duplicate_of": kept, "match": "exact" if is_exact else "near",
                                     "jaccard": 1.0 if is_exact else how[ident]},
                                    ensure_ascii=False) + "\n").encode("utf-8"))
        result = {"candidate_groups": counts["candidate_groups"], "verified_pairs": counts["verified_pairs"],
                  "clusters": len(set(duplicates.values())), "exact": exact, "near": len(duplicates) - exact,
                  "examples": [{"id": ident, "duplicate_of": kept} for ident, kept in
                               itertools.islice(duplicates.items(), _EXAMPLES)]}
        with atomic.created(FileSystems.join(self._work_dir, "match.json")) as f:
            f.write(json.dumps(result).encode("utf-8"))
        yield result


def build_match(pipeline: beam.Pipeline, ranges: list[ReadRange], config: DedupConfig, output_dir: str,
                work_dir: str) -> None:
    (
        pipeline
        | "Ranges" >> runners.Distribute(runners.heaviest_first(ranges, range_bytes), range_bytes)
        | "Fingerprint" >> beam.ParDo(Fingerprint(config, work_dir, bucket_count(ranges, BUCKETS)))
        | "GroupBuckets" >> beam.GroupByKey()
        | "Match" >> beam.ParDo(MatchBucket(config, work_dir))
        | "GatherPairs" >> beam.GroupByKey()
        | "Cluster" >> beam.ParDo(Cluster(output_dir, work_dir))
    )


class RemovedIds:
    """The ids duplicates.jsonl removes, as two sorted 64-bit halves of a
    128-bit hash each: 16 bytes an id in a worker, not a dict of strings
    (a corpus with millions of duplicates), and no false hit in practice."""

    def __init__(self, output_dir: str):
        path = FileSystems.join(output_dir, DUPLICATES)
        keys = []
        with FileSystems.open(path, compression_type="uncompressed") as f:
            for line in f:
                keys.append(self._key(json.loads(line)["id"]))
        table = np.array(sorted(keys), dtype=np.uint64).reshape(-1, 2)
        self._high, self._low = table[:, 0].copy(), table[:, 1].copy()

    @staticmethod
    def _key(ident: str) -> tuple[int, int]:
        digest = hashlib.blake2b(ident.encode("utf-8", "surrogatepass"), digest_size=16, person=b"removed").digest()
        return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")

    def __contains__(self, ident: str) -> bool:
        high, low = self._key(ident)
        at = int(np.searchsorted(self._high, np.uint64(high)))
        while at < len(self._high) and int(self._high[at]) == high:
            if int(self._low[at]) == low:
                return True
            at += 1
        return False


# --- pass 2: boilerplate ------------------------------------------------------


class CountParagraphs(runners.StageFn):
    def __init__(self, config: DedupConfig, output_dir: str, work_dir: str, buckets: int):
        self._config = config
        self._output_dir = output_dir
        self._work_dir = work_dir
        self._buckets = buckets

    def setup(self) -> None:
        super().setup()
        self._removed = RemovedIds(self._output_dir)

    def process(self, keyed: tuple[int, Iterable[ReadRange]]) -> Iterator[tuple[int, Segment | None]]:
        for read_range in keyed[1]:
            run_file = _RunFile(FileSystems.join(self._work_dir, "paragraphs"), read_range.index)
            buffer = runs.RunBuffer(_RUN_BUFFER_BYTES, run_file.write)
            for ident, keys in read_paragraph_table(paragraph_table_path(self._work_dir, read_range.index)):
                if ident in self._removed:
                    continue
                for key in np.unique(keys[keys != _NO_KEY]).tolist():  # once a document
                    buffer.add(key % self._buckets, key, b"")
            buffer.flush()
            run_file.close()
            yield from run_file.segments
            yield 0, None  # a marker: the boilerplate table is written even when nothing was counted


class FindBoilerplate(runners.StageFn):
    def __init__(self, min_documents: int):
        self._min_documents = min_documents

    # A process() annotation is the type hint Beam picks a coder by. The keys
    # are unsigned 64-bit hashes, which Beam's VarIntCoder for int (signed
    # 64-bit) refuses: typed Any, they are pickled.
    def process(self, keyed: tuple[int, Iterable[Segment | None]]) -> Iterator[tuple[int, list[Any]]]:
        _, segments = keyed
        with _opened([s for s in segments if s is not None]) as items:
            found = [key for key, _ in _groups(items, self._min_documents)]  # each document adds a key once
        yield 0, found


class WriteBoilerplate(runners.StageFn):
    def __init__(self, work_dir: str):
        self._work_dir = work_dir

    def process(self, keyed: tuple[int, Iterable[list[Any]]]) -> Iterator[int]:
        keys = np.array(sorted(k for part in keyed[1] for k in part), dtype=np.uint64)
        with atomic.created(FileSystems.join(self._work_dir, "boilerplate.npy")) as f:
            np.save(f, keys)
        yield len(keys)


def build_boilerplate(pipeline: beam.Pipeline, ranges: list[ReadRange], config: DedupConfig, output_dir: str,
                      work_dir: str) -> None:
    (
        pipeline
        | "Ranges" >> runners.Distribute(runners.heaviest_first(ranges, range_bytes), range_bytes)
        | "Count" >> beam.ParDo(CountParagraphs(config, output_dir, work_dir,
                                                bucket_count(ranges, PARAGRAPH_BUCKETS)))
        | "GroupBuckets" >> beam.GroupByKey()
        | "Find" >> beam.ParDo(FindBoilerplate(config.boilerplate_min_documents))
        | "Gather" >> beam.GroupByKey()
        | "Write" >> beam.ParDo(WriteBoilerplate(work_dir))
    )


# --- decontamination -----------------------------------------------------------


def _exclude_texts(path: str) -> Iterator[tuple[str, str]]:
    """(place, text) of an exclude file: every string of each JSONL record,
    or each paragraph of plain text."""
    try:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            data = f.read()
    except (OSError, Exception) as error:  # Beam's filesystems raise their own errors
        if isinstance(error, UserError):
            raise
        raise UserError(f"--exclude {path}: cannot read it ({error})") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"--exclude {path}: not UTF-8 text (byte {error.start})") from error
    if path.endswith((".jsonl", ".json")):
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(f"--exclude {path}: line {number}: invalid JSON ({error.msg})") from error
            for piece in _strings(record):  # each field apart: no n-gram spans two
                yield f"line {number}", piece
    else:
        yield "text", text


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def exclude_table(paths: tuple[str, ...], n: int) -> list[np.ndarray]:
    """The sorted, distinct n-gram hashes of each exclude file. The texts of a
    JSONL file are taken apart: no n-gram spans two records or two fields."""
    tables = []
    for path in paths:
        parts = [fingerprints.ngram_hashes(fingerprints.TextWords.of([piece]).hashes, n)
                 for _, text in _exclude_texts(path) for piece in text.split("\n\n") if piece.strip()]
        tables.append(np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64))
    return tables


def contaminated_sentences(words: fingerprints.TextWords, tables: list[np.ndarray], n: int) -> list[int]:
    """For each sentence, the index of the first exclude file that shares an
    n-gram with it (n-grams run across sentences), or -1."""
    marks = [-1] * (len(words.bounds) - 1)
    if len(words.hashes) < n or not tables:
        return marks
    ngrams = fingerprints.ngram_hashes(words.hashes, n)
    sentence_of = np.repeat(np.arange(len(marks)), np.diff(words.bounds))
    for index, table in enumerate(tables):
        if len(table) == 0:
            continue
        at = np.searchsorted(table, ngrams)
        hits = np.flatnonzero(table[np.minimum(at, len(table) - 1)] == ngrams)
        for start in hits.tolist():
            for sentence in range(sentence_of[start], sentence_of[start + n - 1] + 1):
                if marks[sentence] < 0:
                    marks[sentence] = index
    return marks


# --- pass 3: write -------------------------------------------------------------


@dataclasses.dataclass
class _Removal:
    outcomes: Counter = dataclasses.field(default_factory=Counter)
    by_source: dict = dataclasses.field(default_factory=dict)
    boilerplate_paragraphs: int = 0
    boilerplate_sentences: int = 0
    exclude: list = dataclasses.field(default_factory=list)  # per file: sentences, documents touched, removed
    skips: list = dataclasses.field(default_factory=list)

    def skip(self, skip: Skip) -> None:
        if len(self.skips) < _MAX_SKIPS:
            self.skips.append(dataclasses.asdict(skip) | {"outcome": skip.outcome.value})


def _kept(document: Document, keep: list[bool]) -> Document:
    """The document with only the sentences marked to keep; sections and
    paragraphs renumbered (a paragraph left without a sentence goes)."""
    new_index = np.cumsum([0] + [int(k) for k in keep]).tolist()
    sentences = tuple(s for s, k in zip(document.sentences, keep) if k)
    paragraphs = []
    for first, end in document.paragraph_spans() if document.paragraphs else []:
        if new_index[end] > new_index[first]:
            paragraphs.append(new_index[first])
    sections = tuple(Section(s.title, s.level, new_index[min(s.first_sentence, len(keep))])
                     for s in document.sections)
    return dataclasses.replace(document, sentences=sentences, sections=sections, paragraphs=tuple(paragraphs))


class WriteRange(runners.StageFn):
    def __init__(self, config: DedupConfig, output_dir: str, work_dir: str, range_count: int,
                 exclude_count: int, shown_root: tuple[str, str] | None = None):
        self._config = config
        self._output_dir = output_dir
        self._work_dir = work_dir
        self._range_count = range_count
        self._exclude_count = exclude_count
        self._shown_root = shown_root  # (staging, final): documents files named where they will be

    def _shown(self, path: str) -> str:
        if self._shown_root and path.startswith(self._shown_root[0] + "/"):
            return self._shown_root[1] + path[len(self._shown_root[0]):]
        return path

    def setup(self) -> None:
        super().setup()
        self._removed = RemovedIds(self._output_dir)
        self._boilerplate = np.zeros(0, dtype=np.uint64)
        if self._config.boilerplate:
            with FileSystems.open(FileSystems.join(self._work_dir, "boilerplate.npy")) as f:
                self._boilerplate = np.load(f)
        self._tables = []
        if self._exclude_count:
            with FileSystems.open(FileSystems.join(self._work_dir, "exclude.npz")) as f:
                stored = np.load(f)
                self._tables = [stored[f"file{i}"] for i in range(self._exclude_count)]
    def process(self, keyed: tuple[int, Iterable[ReadRange]]) -> Iterator[tuple[int, dict]]:
        for read_range in keyed[1]:
            yield 0, self._write(read_range)

    def _write(self, read_range: ReadRange) -> dict:
        started = time.monotonic()
        names = extract.output_names(read_range.index, self._range_count)
        removal = _Removal(exclude=[[0, 0, 0] for _ in range(self._exclude_count)])
        kept = sentences = characters = 0
        with (
            atomic.created(FileSystems.join(self._output_dir, names["jsonl"])) as jsonl,
            atomic.created(FileSystems.join(self._output_dir, names["text"])) as text,
        ):
            tables = read_paragraph_table(paragraph_table_path(self._work_dir, read_range.index))
            for document, line, skip, source_name in read_documents_and_lines(read_range):
                if document is None:  # counted, not written: the summary says where and why
                    removal.outcomes[Outcome.PARSE_ERROR.value] += 1
                    removal.by_source.setdefault(source_name, Counter())[Outcome.PARSE_ERROR.value] += 1
                    removal.skip(dataclasses.replace(skip, file=self._shown(skip.file)))
                    continue
                ident, paragraph_keys = next(tables)
                assert ident == document.id, (ident, document.id)  # the table is of this range
                result = self._clean(document, paragraph_keys, removal, self._shown(read_range.path))
                source = removal.by_source.setdefault(document.source, Counter())
                if isinstance(result, Outcome):
                    removal.outcomes[result.value] += 1
                    source[result.value] += 1
                    continue
                kept += 1
                sentences += len(result.sentences)
                characters += sum(len(s) for s in result.sentences)
                # a document kept whole keeps its line, when the line is what to_json would write
                same = result is document and b'"paragraphs":' in line
                jsonl.write(line + b"\n" if same else (result.to_json() + "\n").encode("utf-8"))
                text.write(result.to_bert_text().encode("utf-8"))
        _LOG.debug("dedup: range %d/%d written in %.1fs: %d documents kept", read_range.index + 1,
                  self._range_count, time.monotonic() - started, kept)
        return {"range": read_range.index, "kept": kept, "sentences": sentences, "characters": characters,
                "outcomes": dict(removal.outcomes),
                "by_source": {s: dict(c) for s, c in removal.by_source.items()},
                "boilerplate_paragraphs": removal.boilerplate_paragraphs,
                "boilerplate_sentences": removal.boilerplate_sentences,
                "exclude": removal.exclude, "skips": removal.skips, "outputs": names}

    def _clean(self, document: Document, paragraph_keys: np.ndarray, removal: _Removal,
               path: str) -> Document | Outcome:
        if document.id in self._removed:
            return Outcome.DUPLICATE
        config = self._config
        keep = [True] * len(document.sentences)
        if len(self._boilerplate):
            boilerplate = np.isin(paragraph_keys, self._boilerplate) & (paragraph_keys != _NO_KEY)
            for (first, end), hit in zip(document.paragraph_spans(), boilerplate.tolist()):
                if hit:
                    removal.boilerplate_paragraphs += 1
                    removal.boilerplate_sentences += end - first
                    keep[first:end] = [False] * (end - first)
        if self._tables:
            marks = contaminated_sentences(fingerprints.TextWords.of(document.sentences), self._tables,
                                           config.exclude_ngram)
            touched = set()
            for index, mark in enumerate(marks):
                if mark >= 0 and keep[index]:
                    keep[index] = False
                    removal.exclude[mark][0] += 1
                    touched.add(mark)
            for mark in touched:
                removal.exclude[mark][1] += 1
            if touched and not any(keep):
                removal.exclude[min(touched)][2] += 1
                removal.skip(Skip(Outcome.CONTAMINATED, path, f"document {document.id}",
                                  f"every sentence shares a {config.exclude_ngram}-gram with "
                                  f"{config.exclude[min(touched)]}"))
                return Outcome.CONTAMINATED
        if not any(keep):
            removal.skip(Skip(Outcome.EMPTY, path, f"document {document.id}", "only boilerplate paragraphs"))
            return Outcome.EMPTY
        return document if all(keep) else _kept(document, keep)


class WriteSummary(runners.StageFn):
    def __init__(self, output_dir: str, work_dir: str, upstream: dict, config: DedupConfig):
        self._output_dir = output_dir
        self._work_dir = work_dir
        self._upstream = upstream
        self._config = config

    def process(self, keyed: tuple[int, Iterable[dict]]) -> Iterator[dict]:
        with FileSystems.open(FileSystems.join(self._work_dir, "match.json")) as f:
            matched = json.loads(f.read())
        boilerplate_keys = None
        if self._config.boilerplate:
            with FileSystems.open(FileSystems.join(self._work_dir, "boilerplate.npy")) as f:
                boilerplate_keys = len(np.load(f))
        summary = dedup_summary(self._upstream, sorted(keyed[1], key=lambda r: r["range"]), matched,
                                boilerplate_keys, self._config)
        with atomic.created(FileSystems.join(self._output_dir, extract.SUMMARY)) as f:
            f.write((json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        yield summary


def build_write(pipeline: beam.Pipeline, ranges: list[ReadRange], config: DedupConfig, output_dir: str,
                work_dir: str, upstream: dict, shown_root: tuple[str, str] | None = None) -> None:
    (
        pipeline
        | "Ranges" >> runners.Distribute(runners.heaviest_first(ranges, range_bytes), range_bytes)
        | "Write" >> beam.ParDo(WriteRange(config, output_dir, work_dir, len(ranges), len(config.exclude),
                                           shown_root))
        | "Gather" >> beam.GroupByKey()
        | "Summary" >> beam.ParDo(WriteSummary(output_dir, work_dir, upstream, config))
    )


# --- accounting ----------------------------------------------------------------


def merge_summaries(summaries: list[dict]) -> dict:
    """Extract summaries (or earlier dedup summaries) as one: counts summed,
    lists joined, the first value of anything else."""
    def merge(a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            return {k: merge(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)) for k in {**a, **b}}
        if isinstance(a, list) and isinstance(b, list):
            return a + b
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            return a + b
        return a
    return functools.reduce(merge, ({k: v for k, v in s.items() if k not in ("directory", "dedup")}
                                    for s in summaries))


def dedup_summary(upstream: dict, reports: list[dict], matched: dict, boilerplate_keys: int | None,
                  config: DedupConfig) -> dict:
    """The dedup output's summary.json: the upstream accounting with each
    removed document moved from `article` to its outcome (so the counts
    still add up to what was read), and the `dedup` block."""
    summary = dict(upstream)
    removed: Counter = Counter()
    for report in reports:
        removed.update(report["outcomes"])
    outcomes = Counter(summary["outcomes"])
    outcomes.update(removed)
    # what was written, whatever the upstream count (a documents file edited by hand may hold more or fewer)
    outcomes[Outcome.ARTICLE.value] = sum(r["kept"] for r in reports)
    by_source = {source: Counter(counts) for source, counts in summary["by_source"].items()}
    for report in reports:
        for source, counts in report["by_source"].items():
            target = by_source.setdefault(source, Counter())
            if source != UNREADABLE_SOURCE:  # upstream counted it as an article of its source
                target[Outcome.ARTICLE.value] -= sum(counts.values())
            target.update(counts)
    kept = sum(r["kept"] for r in reports)
    exclude = []
    for index, path in enumerate(config.exclude):
        totals = [sum(r["exclude"][index][i] for r in reports) for i in range(3)]
        exclude.append({"file": path, "sentences_removed": totals[0], "documents_touched": totals[1],
                        "documents_removed": totals[2]})
    summary.update({
        "format": extract.SUMMARY_FORMAT,
        "read": sum(outcomes.values()),
        "outcomes": {o.value: outcomes[o.value] for o in Outcome} | {k: v for k, v in outcomes.items()
                                                                      if k not in {o.value for o in Outcome}},
        "documents": kept,
        "sentences": sum(r["sentences"] for r in reports),
        "characters": sum(r["characters"] for r in reports),
        "by_source": {s: dict(sorted(c.items())) for s, c in sorted(by_source.items())},
        "skipped_examples": list(summary.get("skipped_examples", [])) + [s for r in reports for s in r["skips"]],
        "outputs": {"jsonl": [r["outputs"]["jsonl"] for r in reports],
                    "text": [r["outputs"]["text"] for r in reports]},
        "dedup": {
            "config": config.to_manifest(),
            "documents_in": upstream["documents"],
            "documents_out": kept,
            "duplicates": {"exact": matched["exact"], "near": matched["near"], "clusters": matched["clusters"],
                           "candidate_groups": matched["candidate_groups"],
                           "verified_pairs": matched["verified_pairs"], "file": DUPLICATES,
                           "examples": matched["examples"]},
            "boilerplate": None if boilerplate_keys is None else {
                "distinct_paragraphs": boilerplate_keys,
                "paragraphs_removed": sum(r["boilerplate_paragraphs"] for r in reports),
                "sentences_removed": sum(r["boilerplate_sentences"] for r in reports),
                "documents_emptied": removed[Outcome.EMPTY.value]},
            "exclude": exclude,
        },
    })
    return summary
