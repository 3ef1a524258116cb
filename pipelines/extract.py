"""The corpus stage as a Beam pipeline: inputs → documents + summary.json.

The graph uses only Create, ParDo (one output each), GroupByKey and a
single terminal step, because that is what Beam's DaskRunner translates
faithfully: it computes only the last transform of the graph, mixes the
tagged outputs of a multi-output ParDo, drops what finish_bundle emits and
evaluates side inputs eagerly. Counts therefore travel as data (one report
per task) as well as in Beam counters, which the DaskRunner does not report.

Each task writes its own output files, named by its task number, from
documents in input order: the files are byte-identical whatever the runner
or worker count, and no shuffle holds the corpus in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from albertprep.core import atomic
from albertprep.core.documents import Outcome
from albertprep.core.errors import UserError
from albertprep.core.layout import MANIFEST
from albertprep.pipelines import runners, sources

SUMMARY = "summary.json"
SUMMARY_FORMAT = "albertprep.extract/1"
_LOG = logging.getLogger(__name__)


def output_names(task_index: int, task_count: int) -> dict[str, str]:
    stem = f"documents-{task_index:05d}-of-{task_count:05d}"
    return {"jsonl": f"{stem}.jsonl", "text": f"{stem}.txt"}


class ExtractTask(runners.StageFn):
    """Reads one task and writes its documents in both output formats."""

    def __init__(self, output_dir: str, task_count: int):
        self._output_dir = output_dir
        self._task_count = task_count

    def process(self, keyed_tasks: tuple[int, Iterable[sources.ReadTask]]) -> Iterator[dict]:
        for task in keyed_tasks[1]:
            yield self._extract(task)

    def _extract(self, task: sources.ReadTask) -> dict:
        with _lenient_gc():
            return self._extract_task(task)

    def _extract_task(self, task: sources.ReadTask) -> dict:
        started = time.monotonic()
        report = sources.TaskReport()
        names = output_names(task.index, self._task_count)
        with (
            atomic.created(FileSystems.join(self._output_dir, names["jsonl"])) as jsonl,
            atomic.created(FileSystems.join(self._output_dir, names["text"])) as text,
        ):
            for document in sources.read_task(task, report):
                jsonl.write((document.to_json() + "\n").encode("utf-8"))
                text.write(document.to_bert_text().encode("utf-8"))
        for outcome, count in report.outcomes.items():
            Metrics.counter("albertprep.extract", outcome).inc(count)
        Metrics.counter("albertprep.extract", "decoding_fallback").inc(len(report.decoding_fallbacks))
        Metrics.counter("albertprep.extract", "truncated_input").inc(len(report.truncated))
        Metrics.counter("albertprep.extract", "refused_input").inc(len(report.refused))
        _LOG.info(
            "extract: task %d/%d (%s) done in %.1fs: %d documents",
            task.index + 1, self._task_count, os.path.basename(task.path),
            time.monotonic() - started, report.outcomes[Outcome.ARTICLE.value],
        )
        return {
            "task": task.index,
            "source": task.source,
            "path": task.path,
            "outcomes": dict(report.outcomes),
            "skips": [dataclasses.asdict(skip) | {"outcome": skip.outcome.value} for skip in report.skips],
            "files_read": sorted(report.files_read),
            "decoding_fallbacks": report.decoding_fallbacks,
            "truncated": report.truncated,
            "refused": report.refused,
            "malformed": report.malformed,
            "repaired": report.repaired,
            "sentences": report.sentences,
            "characters": report.characters,
            "blocks_dropped": dict(report.blocks_dropped),
            "sentences_dropped": dict(report.sentences_dropped),
            "template_holes": dict(report.holes),
            "outputs": names,
        }


@contextlib.contextmanager
def _lenient_gc() -> Iterator[None]:
    """A page's tokens are tens of thousands of short-lived objects without
    cycles; with Beam's modules alive, the collector's full passes over them
    were a fifth of a task's time. For one task, what is alive is frozen and
    the young generation collected less often; the process's own settings
    come back after (the local runner may run tasks in the caller's process)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _merged_counter(reports: list[dict], key: str) -> Counter:
    total: Counter = Counter()
    for report in reports:
        total.update(report.get(key, {}))
    return total


def _merged(reports: list[dict], key: str) -> dict:
    return dict(sorted(_merged_counter(reports, key).items()))


def summarize(task_reports: list[dict], inputs: list[dict]) -> dict:
    """The run's accounting: every page, book and record read, by outcome."""
    reports = sorted(task_reports, key=lambda r: r["task"])
    outcomes: Counter = Counter({o.value: 0 for o in Outcome})
    by_source: dict[str, Counter] = {}
    by_file: dict[str, Counter] = {}
    fallbacks, truncated, refused, malformed, repaired = {}, {}, {}, {}, {}
    for report in reports:
        outcomes.update(report["outcomes"])
        by_source.setdefault(report["source"], Counter()).update(report["outcomes"])
        by_file.setdefault(report["path"], Counter()).update(report["outcomes"])
        fallbacks.update(report["decoding_fallbacks"])
        refused.update(report["refused"])
        malformed.update(report["malformed"])
        for path, counts in report["repaired"].items():
            merged = repaired.setdefault(path, {"invalid_bytes": 0, "control_characters": 0, "first_at": -1})
            merged["invalid_bytes"] += counts["invalid_bytes"]
            merged["control_characters"] += counts["control_characters"]
            if merged["first_at"] < 0:  # reports come in task order: the file's first task first
                merged["first_at"] = counts["first_at"]
        for path, message in report["truncated"].items():
            truncated[path] = f"{truncated[path]}; {message}" if path in truncated else message
    files_read = sorted({path for report in reports for path in report["files_read"]})
    return {
        "format": SUMMARY_FORMAT,
        "inputs": inputs,
        "read": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "documents": outcomes[Outcome.ARTICLE.value],
        "sentences": sum(r["sentences"] for r in reports),
        "characters": sum(r["characters"] for r in reports),
        # what was left out of documents that were kept: non-prose blocks by kind, and
        # sentences dropped or mended by reason (template_hole, word_too_long, split_too_long, ...)
        "blocks_dropped": _merged(reports, "blocks_dropped"),
        "sentences_dropped": _merged(reports, "sentences_dropped"),
        # templates we could not render inside prose, most frequent first (a hole drops its sentence)
        "template_holes": dict(_merged_counter(reports, "template_holes").most_common(50)),
        "by_source": {source: dict(counts) for source, counts in sorted(by_source.items())},
        "by_file": {path: dict(counts) for path, counts in sorted(by_file.items())},
        "files": {
            "read": len(files_read),
            "decoding_fallback": fallbacks,
            "truncated": truncated,
            "refused": refused,
            "malformed": malformed,  # a parse_error of the whole file (or of a multistream range)
            "repaired": repaired,  # invalid bytes and characters replaced by U+FFFD, pages kept
        },
        "skipped_examples": [skip for report in reports for skip in report["skips"]],
        "outputs": {
            "jsonl": [r["outputs"]["jsonl"] for r in reports],
            "text": [r["outputs"]["text"] for r in reports],
        },
    }


class WriteSummary(runners.StageFn):
    def __init__(self, output_dir: str, inputs: list[dict]):
        self._output_dir = output_dir
        self._inputs = inputs

    def process(self, keyed_reports: tuple[int, Iterable[dict]]) -> Iterator[dict]:
        summary = summarize(list(keyed_reports[1]), self._inputs)
        text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
        with atomic.created(FileSystems.join(self._output_dir, SUMMARY)) as f:
            f.write(text.encode("utf-8"))
        yield summary


def build(pipeline: beam.Pipeline, tasks: list[sources.ReadTask], output_dir: str, inputs: list[dict]) -> None:
    """Adds the extract graph to `pipeline`.

    Tasks enter largest first (`runners.Distribute`): the local runner
    deals them to its workers round-robin in arrival order, so this balances
    their work; on Dask they are packed into partitions of equal work.
    """
    (
        pipeline
        | "Tasks" >> runners.Distribute(runners.heaviest_first(tasks, lambda t: t.work), lambda t: t.work)
        | "Extract" >> beam.ParDo(ExtractTask(output_dir, len(tasks)))
        | "KeyReports" >> beam.Map(lambda report: (0, report))
        | "GatherReports" >> beam.GroupByKey()
        | "WriteSummary" >> beam.ParDo(WriteSummary(output_dir, inputs))
    )


def prepare_output_dir(output_dir: str, overwrite: bool) -> None:
    """Refuses a finished output unless told to overwrite; then clears it."""
    if os.path.isfile(output_dir):
        raise FileExistsError(f"--output {output_dir} is a file; give a directory (it is created if missing)")
    summary = FileSystems.join(output_dir, SUMMARY)
    if FileSystems.exists(summary):
        if not overwrite:
            raise FileExistsError(
                f"{output_dir} already holds a finished extract ({SUMMARY}); pass --overwrite to replace it"
            )
        old = FileSystems.match([FileSystems.join(output_dir, "documents-*")])[0].metadata_list
        FileSystems.delete([m.path for m in old] + [summary])
    if not FileSystems.exists(output_dir):
        FileSystems.mkdirs(output_dir)


def read_summary(output_dir: str) -> dict:
    path = FileSystems.join(output_dir, SUMMARY)
    if not FileSystems.exists(path):
        raise UserError(f"{output_dir}: not an extract output (no {SUMMARY}"
                        + ("; it is a prepared dataset" if FileSystems.exists(FileSystems.join(output_dir, MANIFEST))
                           else "") + ")")
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))
