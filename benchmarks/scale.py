"""The whole chain at scale: extract, dedup and prepare on a dask.distributed
cluster and on the local runner, from a corpus of a chosen size.

The corpus is built here from the shared samples:
- a multistream dump with its index (as Wikimedia publishes English
  Wikipedia), `--size` GB of uncompressed XML: the enwiki sample's articles
  copied under new titles and page ids;
- a folder of books, a fifth of that size: the shared books, copied.
Every copy's text is varied lightly, so that dedup does not collapse it: in
copy k, half of the distinct lowercase words of four letters or more
(outside templates, links, tags, entities and headings, so that the markup
still parses) are swapped among themselves by a permutation drawn from k.
A paragraph of such words is then almost never the same in two copies,
while the text keeps its sentences, words and markup. `--cache DIR` keeps
the built corpus for later runs.

Each stage runs as its own command (`python -m albertprep`), with
`--workers 2`, on each runner:
- `local`: Beam's local runner with its 2 warm worker processes;
- `dask`: the DaskRunner, on a dask.distributed LocalCluster of 2 worker
  processes (one thread each) on 127.0.0.1, started here and stopped at
  the end.
Printed for each stage and runner: wall time; CPU-seconds (the command and
its children; on Dask also the cluster's workers, nannies and scheduler);
input MB/s per core (input MB / wall s / 2 cores) and per CPU-second; the
peak RSS of each worker process (the local runner's workers, or the Dask
workers, whose peak is reset before each stage) and of the command; bytes
written; and the outputs' sha256, which must be identical across runners.
Several sizes (`--size 0.25,2`) print the flat-memory check: each stage's
largest worker peak at the largest size over that at the smallest
(target <= 1.2).

    python benchmarks/scale.py [--size 1] [--runners local,dask] [--cache DIR] [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import dataclasses
import hashlib
import io
import multiprocessing
import os
import pathlib
import random
import re
import shutil
import sys
import tempfile
import threading
import time

import psutil
from _corpus import renamed, sample_articles
from _process import measure

from albertprep.pipelines import mediawiki

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
CORES = 2
BOOK_SHARE = 0.2  # the books' size, as a share of the dump's XML
PAGES_PER_STREAM = 100  # as Wikimedia's multistream dumps

# -- the corpus ---------------------------------------------------------------

_WORD = re.compile(rb"(?<![&\w])[a-z]{4,}(?![\w;])")
# What is left as it is: templates and links (by depth), XML-escaped tags,
# entities and heading lines; words are varied only outside them.
_MARKUP = re.compile(rb"(\{\{|\}\}|\[\[|\]\]|&lt;.*?&gt;|&[a-z]+;|^=.*$)", re.MULTILINE)
_TEXT = re.compile(rb"(<text[^>]*>)(.*?)(</text>)", re.DOTALL)


def _permutation(vocabulary: list[bytes], copy: int) -> dict[bytes, bytes]:
    """Copy `copy`'s swaps: half of the words, permuted among themselves."""
    rng = random.Random(f"albertprep-scale-{copy}")
    chosen = [word for word in vocabulary if rng.random() < 0.5]
    targets = chosen[:]
    rng.shuffle(targets)
    return dict(zip(chosen, targets))


def _vary_prose(text: bytes, swaps: dict[bytes, bytes]) -> bytes:
    """Bytes, so that a book in another encoding (Latin-1) is varied as it is."""
    def swap(match: re.Match) -> bytes:
        return swaps.get(match[0], match[0])
    return _WORD.sub(swap, text)


def _vary_wikitext(text: bytes, swaps: dict[bytes, bytes]) -> bytes:
    out, depth = [], 0
    for i, part in enumerate(_MARKUP.split(text)):
        if i % 2:  # markup
            depth += 1 if part in (b"{{", b"[[") else -1 if part in (b"}}", b"]]") else 0
            depth = max(depth, 0)
            out.append(part)
        else:
            out.append(_vary_prose(part, swaps) if depth == 0 else part)
    return b"".join(out)


_SHARED: dict = {}


def _init_worker(corpora: str) -> None:
    _, pages, _ = sample_articles(pathlib.Path(corpora))
    books = {p.stem: p.read_bytes() for p in sorted((pathlib.Path(corpora) / "books").glob("*.txt"))}
    words = set()
    for page in pages:
        words.update(_WORD.findall(page))
    for text in books.values():
        words.update(_WORD.findall(text))
    _SHARED.update(pages=pages, books=books, vocabulary=sorted(words))


def _wiki_copy(copy: int) -> tuple[bytes, list[bytes], int]:
    """Copy `copy` of the articles as multistream bz2 streams: (streams,
    index lines with offsets from the copy's first byte, XML bytes)."""
    swaps = _permutation(_SHARED["vocabulary"], copy)
    pages = []
    for page in _SHARED["pages"]:
        text = _TEXT.search(page)
        varied = _vary_wikitext(text[2], swaps)
        pages.append(renamed(page[:text.start(2)] + varied + page[text.end(2):], copy))
    xml = b"".join(pages)
    streams, index = io.BytesIO(), io.BytesIO()
    mediawiki.write_multistream(io.BytesIO(xml), streams, index, pages_per_stream=PAGES_PER_STREAM)
    return streams.getvalue(), bz2.decompress(index.getvalue()).splitlines(keepends=True), len(xml)


def _book_copy(copy: int) -> list[tuple[str, bytes]]:
    swaps = _permutation(_SHARED["vocabulary"], copy)
    return [(f"{stem}-{copy}.txt", _vary_prose(text, swaps)) for stem, text in _SHARED["books"].items()]


@dataclasses.dataclass(frozen=True)
class Corpus:
    dump: pathlib.Path
    books: pathlib.Path
    pages: int
    xml_bytes: int
    book_bytes: int

    @property
    def input_mb(self) -> float:
        return (self.xml_bytes + self.book_bytes) / 1e6


def build_corpus(corpora: pathlib.Path, directory: pathlib.Path, size_gb: float) -> Corpus:
    """The dump (with its index) and the books folder, in `directory`;
    kept there and reused when a `corpus.txt` says it is complete."""
    done = directory / "corpus.txt"
    dump = directory / "enwiki-20990101-pages-articles-multistream.xml.bz2"
    books = directory / "books"
    if done.exists():
        pages, xml_bytes, book_bytes = (int(n) for n in done.read_text().split())
        return Corpus(dump, books, pages, xml_bytes, book_bytes)
    shutil.rmtree(directory, ignore_errors=True)
    books.mkdir(parents=True)
    head, pages, foot = sample_articles(corpora)
    per_copy = sum(len(p) for p in pages)
    wiki_copies = max(1, round(size_gb * 1e9 / per_copy))
    book_size = sum(p.stat().st_size for p in (corpora / "books").glob("*.txt"))
    book_copies = max(1, round(BOOK_SHARE * size_gb * 1e9 / book_size))
    index_path = directory / "enwiki-20990101-pages-articles-multistream-index.txt.bz2"
    xml_bytes, book_bytes = len(head) + len(foot), 0
    with multiprocessing.get_context("fork").Pool(CORES, _init_worker, (str(corpora),)) as pool, \
            open(dump, "wb") as out, bz2.open(index_path, "wb") as index:
        out.write(bz2.compress(head))
        for streams, lines, size in pool.imap(_wiki_copy, range(wiki_copies)):
            base = out.tell()
            for line in lines:
                offset, rest = line.split(b":", 1)
                index.write(b"%d:%s" % (int(offset) + base, rest))
            out.write(streams)
            xml_bytes += size
        out.write(bz2.compress(foot))
        for files in pool.imap(_book_copy, range(book_copies)):
            for name, data in files:
                (books / name).write_bytes(data)
                book_bytes += len(data)
    count = wiki_copies * len(pages)
    done.write_text(f"{count} {xml_bytes} {book_bytes}\n")
    return Corpus(dump, books, count, xml_bytes, book_bytes)


# -- measuring ----------------------------------------------------------------

def _peak_mb(pid: int) -> float | None:
    """The process's peak RSS (VmHWM), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class Peaks:
    """Samples the peak RSS of processes every 50 ms while a stage runs:
    the descendants of `root` (the local runner's command tree) and the
    given pids (Dask's workers). A process's VmHWM only grows, so its last
    sample is its peak up to 50 ms before it ended."""

    def __init__(self, root: int | None = None, pids: tuple[int, ...] = ()) -> None:
        self.root, self.pids = root, pids
        self.seen: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _roles(self) -> dict[int, str]:
        """pid -> worker, zygote, client (a worker's stand-in that Beam
        starts) or command, for the processes alive now."""
        roles = dict.fromkeys(self.pids, "worker")
        if self.root is None:
            return roles
        with contextlib.suppress(psutil.NoSuchProcess):
            lines, parents = {}, {}
            for process in psutil.Process(self.root).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    lines[process.pid], parents[process.pid] = " ".join(process.cmdline()), process.ppid()
            for pid, line in lines.items():
                parent = parents[pid]
                if "warm_client.py" in line:
                    roles[pid] = "client"
                elif "albertprep.pipelines.warm serve" in line:  # a zygote started anew, and the workers it forked
                    roles[pid] = "worker" if "warm serve" in lines.get(parent, "") else "zygote"
                elif parent == self.root:
                    roles[pid] = "command"
                elif parents.get(parent) == self.root:  # forked from the command: the zygote
                    roles[pid] = "zygote"
                elif parents.get(parents.get(parent)) == self.root:  # forked from that zygote
                    roles[pid] = "worker"
        return roles

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid, role in self._roles().items():
                peak = _peak_mb(pid)
                if peak is not None:
                    self.seen[pid] = (role, max(peak, self.seen.get(pid, (role, 0.0))[1]))
            self._stop.wait(0.05)

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def of(self, role: str) -> list[float]:
        return sorted((mb for r, mb in self.seen.values() if r == role), reverse=True)


@dataclasses.dataclass
class Stage:
    name: str
    runner: str
    wall: float
    cpu: float
    input_mb: float
    worker_peaks: list[float]
    command_peak: float
    written: int
    digest: str

    def line(self) -> str:
        peaks = "/".join(f"{p:.0f}" for p in self.worker_peaks[:4]) or "-"
        more = f" (+{len(self.worker_peaks) - 4})" if len(self.worker_peaks) > 4 else ""
        return (f"{self.name:>8} {self.runner:>6} {self.wall:>8.1f} {self.cpu:>8.1f} "
                f"{self.input_mb / self.wall / CORES:>9.2f} {self.input_mb / self.cpu:>9.2f} "
                f"{peaks + more:>22} {self.command_peak:>8.0f} {self.written / 1e6:>10.1f}  {self.digest[:16]}")


HEADER = (f"{'stage':>8} {'runner':>6} {'wall s':>8} {'CPU s':>8} {'MB/s/core':>9} {'MB/CPU-s':>9} "
          f"{'worker peaks MB':>22} {'cmd MB':>8} {'written MB':>10}  sha256 of the outputs")


def _digest(directory: pathlib.Path, patterns: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for pattern in patterns for p in directory.glob(pattern)):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _size(directory: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


# What each stage's outputs are compared by: its data files, not its
# summary (which holds timings and paths).
OUTPUTS = {"extract": ("documents-*",), "dedup": ("documents-*", "duplicates*"), "prepare": ("*.array_record",)}


class Cluster:
    """A dask.distributed LocalCluster of 2 worker processes on 127.0.0.1."""

    def __enter__(self) -> Cluster:
        import dask
        import distributed

        # One malloc arena a worker, as the local runner's workers set for
        # themselves (albertprep/core/malloc.py). glibc reads it when the
        # process starts, so it must be in the environment the nanny spawns
        # the worker with: pre-spawn-environ, not LocalCluster(env=...), which
        # is set once the worker runs. The README's worker sizing says the same
        # for any cluster.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX": "1"}):
            self._cluster = distributed.LocalCluster(n_workers=CORES, threads_per_worker=1, processes=True,
                                                     host="127.0.0.1", dashboard_address=None)
        self._client = distributed.Client(self._cluster)
        self.address = self._cluster.scheduler_address
        self.workers = tuple(self._client.run(os.getpid).values())
        self.nannies = tuple(psutil.Process(pid).ppid() for pid in self.workers)
        return self

    def __exit__(self, *exc) -> None:
        self._client.close()
        self._cluster.close()

    def cpu(self) -> tuple[float, float]:
        """CPU-seconds so far of (the workers and their nannies, this process:
        the scheduler runs here)."""
        def of(pid: int) -> float:
            times = psutil.Process(pid).cpu_times()
            return times.user + times.system
        return sum(of(pid) for pid in (*self.workers, *self.nannies)), of(os.getpid())

    def reset_peaks(self) -> None:
        for pid in self.workers:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS


def run_stage(name: str, command: list[str], output: pathlib.Path, input_mb: float, runner: str,
              cluster: Cluster | None) -> Stage:
    shutil.rmtree(output, ignore_errors=True)
    if cluster is None:
        peaks = Peaks()
        def watch(pid: int) -> None:
            if peaks.root is None:
                peaks.root = pid
                peaks.__enter__()
        wall, cpu, command_peak = measure(command, cwd=str(ROOT), watch=watch)
        peaks.__exit__()
        worker_peaks = peaks.of("worker")
    else:
        cluster.reset_peaks()
        before = cluster.cpu()
        with Peaks(pids=cluster.workers) as peaks:
            wall, cpu, command_peak = measure(command, cwd=str(ROOT))
        workers, scheduler = (b - a for a, b in zip(before, cluster.cpu()))
        print(f"         (CPU s: command {cpu:.1f}, workers {workers:.1f}, scheduler {scheduler:.1f})")
        cpu += workers + scheduler
        worker_peaks = peaks.of("worker")
    return Stage(name, runner, wall, cpu, input_mb, worker_peaks, command_peak, _size(output),
                 _digest(output, OUTPUTS[name]))


def _jsonl_mb(directory: pathlib.Path) -> float:
    return sum(p.stat().st_size for p in directory.glob("documents-*.jsonl")) / 1e6


def run_chain(corpus: Corpus, work: pathlib.Path, model: pathlib.Path, runner: str) -> list[Stage]:
    base = [PYTHON, "-m", "albertprep"]
    with Cluster() if runner == "dask" else contextlib.nullcontext() as cluster:
        extra = ["--workers", str(CORES)]
        if cluster is not None:
            extra += [f"--runner={DASK_RUNNER}", f"--dask_client_address={cluster.address}"]
        documents, deduplicated, prepared = (work / runner / n for n in ("documents", "deduplicated", "prepared"))
        stages = [run_stage("extract", [*base, "extract", str(corpus.dump), str(corpus.books), "--output",
                                        str(documents), *extra],
                            documents, corpus.input_mb, runner, cluster)]
        print(stages[-1].line(), flush=True)
        stages.append(run_stage("dedup", [*base, "dedup", str(documents), "--output", str(deduplicated),
                                          *extra],
                                deduplicated, _jsonl_mb(documents), runner, cluster))
        print(stages[-1].line(), flush=True)
        stages.append(run_stage("prepare", [*base, "prepare", str(deduplicated), "--output", str(prepared),
                                            "--spm-model", str(model), *extra],
                                prepared, _jsonl_mb(deduplicated), runner, cluster))
        print(stages[-1].line(), flush=True)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1", help="GB of uncompressed XML, or several: 0.25,2")
    parser.add_argument("--runners", default="local,dask", help="local, dask or both")
    parser.add_argument("--cache", type=pathlib.Path, help="keep the built corpora here, and reuse them")
    shared = ROOT.parent / "shared"
    parser.add_argument("--corpora", type=pathlib.Path,
                        default=pathlib.Path(os.environ.get("ALBERTPREP_CORPORA", shared / "corpora")))
    args = parser.parse_args()
    sizes = [float(s) for s in args.size.split(",")]
    runners = args.runners.split(",")
    model = args.corpora / "spm" / "albert-en-30k-clean.model"
    results: dict[float, list[Stage]] = {}
    with tempfile.TemporaryDirectory(prefix="albertprep-scale-") as tmp:
        for size in sizes:
            started = time.perf_counter()
            corpus = build_corpus(args.corpora, (args.cache or pathlib.Path(tmp)) / f"corpus-{size:g}gb", size)
            print(f"\ncorpus {size:g} GB: {corpus.pages} pages, {corpus.xml_bytes / 1e6:.0f} MB of XML "
                  f"({corpus.dump.stat().st_size / 1e6:.0f} MB as multistream bz2), {corpus.book_bytes / 1e6:.0f} MB "
                  f"of books; built or found in {time.perf_counter() - started:.0f} s")
            print(HEADER, flush=True)
            results[size] = []
            for runner in runners:
                results[size] += run_chain(corpus, pathlib.Path(tmp) / f"work-{size:g}", model, runner)
                shutil.rmtree(pathlib.Path(tmp) / f"work-{size:g}" / runner)
            for name in OUTPUTS:
                digests = {s.runner: s.digest for s in results[size] if s.name == name}
                if len(set(digests.values())) > 1:
                    raise SystemExit(f"{name}: the runners' outputs differ: {digests}")
            if len(runners) > 1:
                print("outputs identical across runners: yes")
                for name in OUTPUTS:
                    local, dask = (next(s for s in results[size] if s.name == name and s.runner == r)
                                   for r in ("local", "dask"))
                    print(f"{name}: Dask's throughput per core / the local runner's: {local.wall / dask.wall:.2f} "
                          f"(target >= 0.85)")
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        print(f"\nflat memory: largest worker peak at {large:g} GB / at {small:g} GB (target <= 1.2)")
        for runner in runners:
            for name in OUTPUTS:
                a, b = (max(next(s for s in results[z] if s.name == name and s.runner == runner).worker_peaks
                            or [0.0]) for z in (small, large))
                print(f"{name:>8} {runner:>6}: {a:.0f} MB -> {b:.0f} MB: {b / a if a else float('nan'):.2f}")


if __name__ == "__main__":
    sys.exit(main())
