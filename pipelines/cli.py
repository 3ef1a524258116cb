"""`albertprep`: the project's command line.

Options the command does not know are Beam pipeline options, so any Beam
runner is reached the way Beam users expect (`--runner=...`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from pipelines import extract, runners, sources
from pipelines.documents import read_documents_jsonl


def _extract(args: argparse.Namespace, beam_args: list[str]) -> int:
    options = sources.PlanOptions(
        split_bytes=int(args.split_mb * (1 << 20)),
        text_field=args.text_field,
        title_field=args.title_field,
        tfds_data_dir=args.tfds_data_dir,
    )
    try:
        tasks = sources.plan(args.inputs, options)
        extract.prepare_output_dir(args.output, args.overwrite)
    except (sources.InputError, FileExistsError) as error:
        print(f"albertprep extract: {error}", file=sys.stderr)
        return 2
    inputs = sorted({(t.kind, t.path, t.split) for t in tasks})
    sizes = {}
    for task in tasks:
        sizes[task.path] = sizes.get(task.path, 0) + task.size
    described = [{"kind": k, "path": p, "bytes": sizes[p]} | ({"split": s} if s else {}) for k, p, s in inputs]
    started = time.monotonic()
    pipeline = runners.make_pipeline(beam_args, workers=args.workers, parallel_tasks=len(tasks))
    extract.build(pipeline, tasks, args.output, described)
    result = pipeline.run()
    result.wait_until_finish()
    if hasattr(result, "client"):  # the DaskRunner's client: it outlives the run otherwise
        result.client.close()
    summary = extract.read_summary(args.output)
    seconds = time.monotonic() - started
    print(json.dumps({k: summary[k] for k in ("read", "outcomes", "documents", "sentences", "files")}, indent=2))
    print(f"{summary['documents']} documents from {summary['read']} units in {len(tasks)} tasks, "
          f"{seconds:.1f}s; written to {args.output} (summary.json, documents-*.jsonl, documents-*.txt)")
    return 0


def _show(args: argparse.Namespace, beam_args: list[str]) -> int:
    if beam_args:
        print(f"albertprep show: unknown options {beam_args}", file=sys.stderr)
        return 2
    summary = extract.read_summary(args.directory)
    print(f"{args.directory}: {summary['documents']} documents, {summary['sentences']} sentences "
          f"from {summary['read']} pages/books/records of {summary['files']['read']} files")
    print("outcomes:", ", ".join(f"{k} {v}" for k, v in summary["outcomes"].items()))
    for problem in ("decoding_fallback", "truncated", "refused"):
        for path, detail in summary["files"][problem].items():
            print(f"{problem}: {path}: {detail}")
    shown = 0
    for name in summary["outputs"]["jsonl"]:
        for document in read_documents_jsonl(os.path.join(args.directory, name)):
            if shown == args.documents:
                return 0
            shown += 1
            print(f"\n[{document.id}] {document.title} ({len(document.sentences)} sentences)")
            for sentence in document.sentences[: args.sentences]:
                print(f"  | {sentence}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="albertprep", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser(
        "extract",
        help="dumps, books and text become clean, sentence-split documents",
        description="Inputs are files, directories or globs. The kind is taken from the name "
        "(.xml/.xml.bz2 wiki dump, .txt book, .jsonl) or from a prefix: wiki:, book:, "
        "sentences: (BERT format, one sentence a line), jsonl:, tfds:NAME_OR_DIR. "
        "Unknown options are passed to Beam (e.g. --runner=...).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--output", required=True, help="output directory (local or any Beam filesystem)")
    p.add_argument("--workers", type=int, default=1, help="worker processes of the local runner")
    p.add_argument("--overwrite", action="store_true", help="replace a finished output")
    p.add_argument("--split-mb", type=float, default=64, help="size of a task over text files and multistream dumps")
    p.add_argument("--text-field", default="text", help="JSONL/TFDS field holding the text")
    p.add_argument("--title-field", default="title", help="JSONL/TFDS field holding the title")
    p.add_argument("--tfds-data-dir", default=None, help="TFDS data_dir for tfds:NAME inputs")
    p.set_defaults(run=_extract)

    p = commands.add_parser("show", help="print an extract's summary and its first documents")
    p.add_argument("directory")
    p.add_argument("--documents", type=int, default=3)
    p.add_argument("--sentences", type=int, default=3)
    p.set_defaults(run=_show)

    args, beam_args = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("apache_beam", "distributed", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # relays each worker process's start-up warnings; errors still show
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    return args.run(args, beam_args)


if __name__ == "__main__":
    sys.exit(main())
