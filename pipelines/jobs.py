"""The jobs behind `albertprep extract`, `vocab` and `prepare`.

Each job plans on the launching machine, runs one Beam pipeline per stage
on whatever runner the Beam options name, and reads back what the final
step wrote (the DaskRunner returns no results or metrics to read).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator

from apache_beam.io.filesystems import FileSystems

from albertprep.core import atomic, layout, manifest, records
from albertprep.core.errors import UserError
from albertprep.core.manifest import Manifest, TokenizerEntry
from albertprep.core.options import setting
from albertprep.core.progress import Progress
from albertprep.core.tokenizer import Tokenizer
from albertprep.pipelines import dedup, extract, prepare, runners, sources

_LOG = logging.getLogger(__name__)


class JobError(UserError, ValueError):
    """A job that cannot start; the message says why."""


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    beam_args: tuple[str, ...] = ()
    workers: int = setting(1, "worker processes of the local runner")
    progress_seconds: float = setting(30.0, "on a terminal a progress bar; elsewhere a progress line this often")


def _run(pipeline) -> None:
    result = pipeline.run()
    result.wait_until_finish()
    if hasattr(result, "client"):  # the DaskRunner's client: it outlives the run otherwise
        result.client.close()


def run_extract(inputs: list[str], output: str, options: sources.PlanOptions, runner: RunnerConfig,
                overwrite: bool = False) -> dict:
    try:
        tasks = sources.plan(inputs, options)
        extract.prepare_output_dir(output, overwrite)
    except (sources.InputError, FileExistsError) as error:
        raise JobError(str(error)) from error
    sizes: dict[str, int] = {}
    for task in tasks:
        sizes[task.path] = sizes.get(task.path, 0) + task.size
    described = [{"kind": k, "path": p, "bytes": sizes[p]} | ({"split": s} if s else {})
                 for k, p, s in sorted({(t.kind, t.path, t.split) for t in tasks})]
    pipeline = runners.make_pipeline(list(runner.beam_args), runner.workers, parallel_tasks=len(tasks))
    extract.build(pipeline, tasks, output, described)
    with _progress("extract", output, [(extract.output_names(t.index, len(tasks))["jsonl"], t.size) for t in tasks],
                   runner):
        _run(pipeline)
    return extract.read_summary(output)


def _progress(label: str, directory: str, outputs: list[tuple[str, int]], runner: RunnerConfig):
    """Progress of a job by the outputs its tasks finish: (name in `directory`,
    its input bytes) each; the tasks write them whole, so one that exists is
    done. Counts tasks where a size is unknown; none for a remote directory."""
    if "://" in directory:
        return contextlib.nullcontext()
    unit = "B" if all(size > 0 for _, size in outputs) else "tasks"
    weighted = [(os.path.join(directory, name), size if unit == "B" else 1) for name, size in outputs]
    return Progress(label, sum(size for _, size in weighted), unit,
                    lambda: sum(size for path, size in weighted if os.path.exists(path)),
                    every=runner.progress_seconds)


def _is_extract_output(path: str) -> bool:
    return FileSystems.exists(FileSystems.join(path, extract.SUMMARY))


def documents_for(inputs: list[str], output: str, options: sources.PlanOptions, runner: RunnerConfig) -> list[dict]:
    """Extract summaries of the inputs: read where they are extract outputs,
    else made by running the corpus stage into OUTPUT/documents."""
    if all(_is_extract_output(i) for i in inputs):
        return [dict(extract.read_summary(i), directory=i) for i in inputs]
    if any(_is_extract_output(i) for i in inputs):
        raise JobError("give either raw inputs or extract outputs (directories with summary.json), not both")
    for path in inputs:
        if FileSystems.exists(FileSystems.join(path, layout.MANIFEST)):
            raise JobError(f"{path} is a prepared dataset (prepare's output), not documents: give the extract "
                           f"output it was made from, or raw inputs")
    directory = FileSystems.join(output, layout.DOCUMENTS)
    return [dict(run_extract(inputs, directory, options, runner, overwrite=True), directory=directory)]


def _document_files(summaries: list[dict]) -> list[tuple[str, int]]:
    files = []
    for summary in summaries:
        for name in summary["outputs"]["jsonl"]:
            path = FileSystems.join(summary["directory"], name)
            found = FileSystems.match([path])[0].metadata_list
            if not found:
                raise JobError(f"{summary['directory']}: its {extract.SUMMARY} lists {name}, which is missing; "
                               f"run the stage that wrote it again")
            files.append((path, found[0].size_in_bytes))
    return files


def run_vocab(summaries: list[dict], output: str, config: prepare.VocabConfig, runner: RunnerConfig,
              split_bytes: int = 0) -> Tokenizer:
    files = _document_files(summaries)
    ranges = prepare.plan_ranges(files, split_bytes)
    total = sum(s["sentences"] for s in summaries)
    if not FileSystems.exists(output):
        FileSystems.mkdirs(output)
    pipeline = runners.make_pipeline(list(runner.beam_args), runner.workers, parallel_tasks=len(ranges))
    prepare.build_vocab(pipeline, ranges, total, config, output)
    _run(pipeline)
    with FileSystems.open(FileSystems.join(output, layout.SPM_MODEL)) as f:
        return Tokenizer(f.read(), config.do_lower_case)


def check_output(output: str, overwrite: bool) -> None:
    """Refuses a finished output unless told to overwrite. Nothing of it is
    touched here: the new dataset is built beside it (see `_committed`)."""
    if _is_file(output):
        raise JobError(f"--output {output} is a file; give a directory (it is created if missing)")
    completed = FileSystems.join(output, layout.COMPLETED)
    if FileSystems.exists(completed) and not overwrite:
        raise JobError(f"{output} already holds finished shards ({layout.COMPLETED}); "
                       "pass --overwrite to replace them")


def _is_file(path: str) -> bool:
    """A local file (not a directory) at `path`; object stores have no directories to tell apart."""
    return "://" not in path and os.path.isfile(path)


def _staging_dir(output: str) -> str:
    """A hidden directory beside `output`, unique to this run."""
    output = output.rstrip("/")
    parent, name = output.rsplit("/", 1) if "/" in output else (".", output)
    return FileSystems.join(parent, atomic.temporary_name(name))


def _files_under(directory: str) -> list[str]:
    if not FileSystems.exists(directory):
        return []
    return [m.path for match in FileSystems.match([FileSystems.join(directory, "**")]) for m in match.metadata_list]


def _is_prepared_file(relative: str) -> bool:
    """Whether a path (relative to a prepared directory) is one prepare writes."""
    top = relative.split("/", 1)[0]
    return (top in layout.PREPARED_FILES or top in (layout.DOCUMENTS, layout.DEDUPLICATED)
            or top.endswith(".array_record"))


def _is_dedup_file(relative: str) -> bool:
    """Whether a path (relative to a dedup output) is one dedup writes."""
    return relative in (extract.SUMMARY, dedup.DUPLICATES) or relative.startswith("documents-")


@contextlib.contextmanager
def _committed(output: str, ours=_is_prepared_file) -> Iterator[str]:
    """A staging directory to build the new dataset in. Only when the block
    succeeds are the old dataset's files in `output` replaced by the new
    ones (COMPLETED first out and last in, so a reader never takes a mix for
    a whole dataset); files of others in `output` are left alone. When it
    fails, the staging directory goes and `output` is as it was."""
    staging = _staging_dir(output)
    FileSystems.mkdirs(staging)
    _STAGING.add(staging)
    try:
        yield staging
        old = [p for p in _files_under(output) if ours(p[len(output.rstrip("/")) + 1:])]
        completed = FileSystems.join(output, layout.COMPLETED)
        old.sort(key=lambda p: p != completed)  # the marker goes first
        if old:
            FileSystems.delete(old)
        new = sorted(_files_under(staging), key=lambda p: p.endswith("/" + layout.COMPLETED))  # the marker last
        targets = [FileSystems.join(output, p[len(staging) + 1:]) for p in new]
        for target in targets:
            parent = target.rsplit("/", 1)[0]
            if not FileSystems.exists(parent):
                FileSystems.mkdirs(parent)
        for source, target in zip(new, targets):
            FileSystems.rename([source], [target])
    finally:
        _discard(staging)


_STAGING: set[str] = set()  # staging directories of the runs in progress


def _discard(staging: str) -> None:
    _STAGING.discard(staging)
    if FileSystems.exists(staging):
        FileSystems.delete([staging])


_DISCARD_TRIES = 20


def discard_staging() -> None:
    """Deletes the staging directories of the runs in progress: what an
    interrupted process does before it exits (their outputs stay as they were).

    The in-process runner's threads go on writing until the process exits,
    so a delete can find a file made after it listed a directory ("Directory
    not empty"): it is tried again, a few milliseconds later."""
    for staging in list(_STAGING):
        for attempt in range(_DISCARD_TRIES):
            try:
                _discard(staging)
                break
            except OSError:  # FileSystems' BeamIOError is one
                if attempt == _DISCARD_TRIES - 1:
                    raise
                time.sleep(0.005)


def run_prepare(inputs: list[str], output: str, config: prepare.PrepareConfig, runner: RunnerConfig,
                plan_options: sources.PlanOptions, spm_model: str | None, vocab: prepare.VocabConfig,
                overwrite: bool = False, dedup_config: dedup.DedupConfig | None = None) -> tuple[Manifest, float]:
    """The prepared directory's manifest and the run's wall seconds. With
    `dedup_config` the documents go through the dedup stage first."""
    started = time.monotonic()
    check_output(output, overwrite)
    if dedup_config is not None:  # a bad --exclude fails before any work
        dedup.exclude_table(dedup_config.exclude, dedup_config.exclude_ngram)
    try:
        tokenizer = Tokenizer.from_file(spm_model, vocab.do_lower_case) if spm_model else None
    except OSError as error:
        raise JobError(f"--spm-model {spm_model}: {error.strerror or error}") from error
    with _committed(output) as staging:
        _prepare_into(staging, output, inputs, config, runner, plan_options, spm_model, tokenizer, vocab,
                      dedup_config)
    return read_manifest(output), time.monotonic() - started


def _prepare_into(staging: str, output: str, inputs: list[str], config: prepare.PrepareConfig,
                  runner: RunnerConfig, plan_options: sources.PlanOptions, spm_model: str | None,
                  tokenizer: Tokenizer | None, vocab: prepare.VocabConfig,
                  dedup_config: dedup.DedupConfig | None) -> None:
    """The whole prepared dataset, written into `staging`; the manifest
    names the documents files where they will be once it is `output`."""
    summaries = documents_for(inputs, staging, plan_options, runner)
    if dedup_config is not None:
        directory = FileSystems.join(staging, layout.DEDUPLICATED)
        FileSystems.mkdirs(directory)
        summaries = [dict(dedup_into(summaries, directory, dedup_config, runner, config.split_bytes,
                                     (staging, output.rstrip("/"))), directory=directory)]
    if tokenizer is None:
        tokenizer = run_vocab(summaries, staging, vocab, runner, config.split_bytes)
    else:
        with atomic.created(FileSystems.join(staging, layout.SPM_MODEL)) as f:
            f.write(tokenizer.model)
        prepare.share_tokenizer(tokenizer)
    files = _document_files(summaries)
    ranges = prepare.plan_ranges(files, config.split_bytes)
    train_shards = config.num_shards or prepare.estimate_train_shards(sum(size for _, size in files), config)
    quotes = "kept, as ALBERT's" if config.instances.albert_compat else "`` and '' to \""
    manifest_base = Manifest(
        layout=records.FeatureLayout(config.instances.max_seq_length,
                                     config.instances.masking.max_predictions_per_seq),
        masking=config.instances.masking,
        albert_compat=config.instances.albert_compat,
        tokenizer=TokenizerEntry(
            file=layout.SPM_MODEL, sha256=tokenizer.sha256, vocab_size=tokenizer.vocab_size,
            source=spm_model or "trained", vocab_config=None if spm_model else vocab.to_manifest(),
            normalization={"whitespace": "collapsed", "quotes": quotes, "unicode": "NFKD, combining accents stripped",
                           "do_lower_case": tokenizer.do_lower_case}),
        config=config.to_manifest(train_shards),
        inputs=tuple(item for s in summaries for item in s["inputs"]),
        documents_files=tuple({"path": output.rstrip("/") + p[len(staging):] if p.startswith(staging + "/") else p,
                               "bytes": b} for p, b in files),
        corpus=tuple({k: s[k] for k in ("read", "outcomes", "documents", "sentences", "by_source", "files", "dedup")
                      if k in s} for s in summaries),
    )
    if config.instances.albert_compat:  # B from anywhere in the corpus: its pool first
        pipeline = runners.make_pipeline(list(runner.beam_args), runner.workers, parallel_tasks=len(ranges))
        prepare.build_b_pool(pipeline, ranges, tokenizer, config, sum(s["documents"] for s in summaries), staging)
        _run(pipeline)
    tasks = prepare.plan_tasks(ranges, config.split_bytes)
    pipeline = runners.make_pipeline(list(runner.beam_args), runner.workers, parallel_tasks=len(tasks))
    prepare.build_instances(pipeline, tasks, tokenizer, config, train_shards, staging, manifest_base)
    done = [(f"{layout.RUNS}/{prepare.range_done_name(r)}", r.end - r.start) for r in ranges]  # its instances made
    with _progress("prepare", staging, done, runner):
        _run(pipeline)


def run_dedup(inputs: list[str], output: str, config: dedup.DedupConfig, runner: RunnerConfig,
              split_bytes: int = 0, overwrite: bool = False) -> dict:
    """Dedup of extract outputs into `output`, built beside it and put in
    place only when whole: a failed run leaves an earlier output as it was."""
    if _is_file(output):
        raise JobError(f"--output {output} is a file; give a directory (it is created if missing)")
    if FileSystems.exists(FileSystems.join(output, extract.SUMMARY)) and not overwrite:
        raise JobError(f"{output} already holds a finished output ({extract.SUMMARY}); pass --overwrite to replace it")
    for path in inputs:
        if not _is_extract_output(path):
            raise JobError(f"{path}: not an extract output (no {extract.SUMMARY}); run albertprep extract first, "
                           f"or give prepare --dedup the raw inputs")
    summaries = [dict(extract.read_summary(i), directory=i) for i in inputs]
    with _committed(output, _is_dedup_file) as staging:
        dedup_into(summaries, staging, config, runner, split_bytes)
    return extract.read_summary(output)


def dedup_into(summaries: list[dict], output: str, config: dedup.DedupConfig, runner: RunnerConfig,
               split_bytes: int = 0, shown_root: tuple[str, str] | None = None) -> dict:
    """The dedup stage's three pipelines, writing into the directory `output`.
    `shown_root` (staging, final): paths the summary names under the first
    are named under the second, where they will be."""
    import io

    import numpy as np

    exclude = dedup.exclude_table(config.exclude, config.exclude_ngram)  # a bad --exclude fails before any work
    summaries = sorted(summaries, key=lambda s: s["directory"])  # the output does not depend on their order
    _check_unique_ids(summaries)
    files = _document_files(summaries)
    ranges = prepare.plan_ranges(files, split_bytes)
    work = FileSystems.join(output, dedup.WORK)
    FileSystems.mkdirs(work)
    if exclude:
        buffer = io.BytesIO()
        np.savez(buffer, **{f"file{i}": table for i, table in enumerate(exclude)})
        with atomic.created(FileSystems.join(work, "exclude.npz")) as f:
            f.write(buffer.getvalue())
    try:
        started = time.monotonic()
        pipeline = runners.make_pipeline(list(runner.beam_args), runner.workers, parallel_tasks=len(ranges))
        dedup.build_match(pipeline, ranges, config, output, work)
        table_files = [(dedup.paragraph_table_path(dedup.WORK, r.index), r.end - r.start) for r in ranges]
        with _progress("dedup (match)", output, table_files, runner):  # a range's table: its match work done
            _run(pipeline)
        _LOG.info("dedup: match pass done in %.1fs", time.monotonic() - started)
        if config.boilerplate:
            started = time.monotonic()
            pipeline = runners.make_pipeline(list(runner.beam_args), runner.workers, parallel_tasks=len(ranges))
            dedup.build_boilerplate(pipeline, ranges, config, output, work)
            _run(pipeline)
            _LOG.info("dedup: boilerplate pass done in %.1fs", time.monotonic() - started)
        pipeline = runners.make_pipeline(list(runner.beam_args), runner.workers, parallel_tasks=len(ranges))
        dedup.build_write(pipeline, ranges, config, output, work, dedup.merge_summaries(summaries), shown_root)
        outputs = [(extract.output_names(r.index, len(ranges))["jsonl"], r.end - r.start) for r in ranges]
        with _progress("dedup (write)", output, outputs, runner):
            _run(pipeline)
    finally:
        if FileSystems.exists(work):
            FileSystems.delete([work])
    return extract.read_summary(output)


def _check_unique_ids(summaries: list[dict]) -> None:
    """Refuses inputs whose documents could share ids: the same extract
    twice, or two extracts of files with the same name (a book's id is its
    file's name, a dump's or text file's its stem and key)."""
    directories = [s["directory"].rstrip("/") for s in summaries]
    if len(set(directories)) < len(directories):
        raise JobError(f"{next(d for d in directories if directories.count(d) > 1)} is given twice")
    seen: dict[tuple[str, str], str] = {}
    for summary in summaries:
        for item in summary["inputs"]:
            namespace = sources.id_namespace(item["kind"], item["path"])  # the corpus stage's own rule
            if namespace in seen and seen[namespace] != summary["directory"]:
                raise JobError(f"{summary['directory']} and {seen[namespace]} both hold documents of a file named "
                               f"{namespace[1]!r} ({item['path']}), so their ids would clash: extract them in one run")
            seen[namespace] = summary["directory"]


def read_manifest(directory: str) -> Manifest:
    """The manifest of a prepared directory on any filesystem Beam reaches."""
    with FileSystems.open(FileSystems.join(directory, layout.MANIFEST)) as f:
        return manifest.decode(f.read(), directory)


