"""`albertprep`: the project's command line.

Options a command does not know are Beam pipeline options, so any Beam
runner is reached the way Beam users expect (`--runner=...`).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import logging
import os
import re
import signal
import sys
import threading

from google.protobuf import text_encoding

from albertprep.core import layout
from albertprep.core.documents import read_documents_jsonl
from albertprep.core.errors import UserError
from albertprep.core.options import add_options, from_args
from albertprep.core.records import MaskingConfig
from albertprep.model.config import OptimizerConfig, PretrainConfig
from albertprep.pipelines import dedup, jobs, prepare, runners, sources, warm
from albertprep.pipelines.instances import InstanceConfig
from albertprep.pipelines.sentences import SentenceLimits


class _WorkerRelay(logging.Filter):
    """The local runner relays every log line of its worker processes as a
    LogEntry proto: keep ours (task progress), shown as plain text, and
    Beam's warnings and errors whole (with their tracebacks), not Beam's
    start-up chatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "semi_persistent_directory" in message or ("severity: INFO" in message and "/apache_beam/" in message):
            return False
        relayed = _RELAYED_TEXT.search(message)
        if relayed and "severity: INFO" in message:
            text = text_encoding.CUnescape(relayed.group(1)).decode("utf-8", "replace")
            record.msg, record.args = f"worker: {text}", ()
        return True


_RELAYED_TEXT = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


def _runner(args: argparse.Namespace, beam_args: list[str]) -> jobs.RunnerConfig:
    return jobs.RunnerConfig(tuple(beam_args), **from_args(jobs.RunnerConfig, args))


def _plan_options(args: argparse.Namespace) -> sources.PlanOptions:
    try:
        limits = SentenceLimits(**from_args(SentenceLimits, args))
    except ValueError as error:
        raise jobs.JobError(str(error)) from error
    return sources.PlanOptions(split_bytes=int(args.split_mb * (1 << 20)), sentence_limits=limits,
                               **from_args(sources.PlanOptions, args))


def _prepare_split_bytes(args: argparse.Namespace) -> int:
    """Documents read by one vocab or prepare task: --split-mb, else 0 (chosen from their size)."""
    return int(args.split_mb * (1 << 20))


def _vocab_config(args: argparse.Namespace) -> prepare.VocabConfig:
    # prepare's --seed is the data's one seed, the vocabulary sample's too
    return prepare.VocabConfig(seed=args.seed, **from_args(prepare.VocabConfig, args, skip=("seed",)))


# Exit codes (README, "Exit codes"): 0 every input read; 2 the job did not
# start (the line says why); 3 it ran, but an input file was refused,
# unreadable or cut off; 4 it ran and no document came out of any input.
EXIT_OK, EXIT_NOT_STARTED, EXIT_INPUT_PROBLEMS, EXIT_NOTHING_READ = 0, 2, 3, 4
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C


def input_problems(summary: dict) -> list[str]:
    """One line per input file that was not read whole, for stderr."""
    files = summary["files"]
    lines = [f"{path}: refused: {why}" for path, why in files["refused"].items()]
    lines += [f"{path}: not read: {why}" for path, why in files["malformed"].items()]
    lines += [f"{path}: cut off: {why}" for path, why in files["truncated"].items()]
    binary = sorted({s["file"] for s in summary["skipped_examples"] if s["outcome"] == "binary"})
    lines += [f"{path}: not read: binary, not text" for path in binary]
    hidden = summary["outcomes"].get("binary", 0) - len(binary)
    if hidden > 0:
        lines.append(f"and {hidden} more binary inputs (summary.json)")
    return lines


def _outcomes(summary: dict) -> str:
    """The summary's non-zero outcomes, for a line: "3 duplicate, 1 empty"."""
    return ", ".join(f"{n} {o}" for o, n in summary["outcomes"].items() if n) or "nothing"


def _extract(args: argparse.Namespace, beam_args: list[str]) -> int:
    summary = jobs.run_extract(args.inputs, args.output, _plan_options(args), _runner(args, beam_args), args.overwrite)
    print(json.dumps({k: summary[k] for k in ("read", "outcomes", "documents", "sentences", "files")}, indent=2))
    print(f"{summary['documents']} documents from {summary['read']} pages/books/records; "
          f"written to {args.output} (summary.json, documents-*.jsonl, documents-*.txt)")
    problems = input_problems(summary)
    for line in problems:
        print(f"albertprep extract: {line}", file=sys.stderr)
    if summary["documents"] == 0:
        print(f"albertprep extract: no documents: {summary['read']} units read ({_outcomes(summary)})",
              file=sys.stderr)
        return EXIT_NOTHING_READ
    return EXIT_INPUT_PROBLEMS if problems else EXIT_OK


def _vocab(args: argparse.Namespace, beam_args: list[str]) -> int:
    runner = _runner(args, beam_args)
    summaries = jobs.documents_for(args.inputs, args.output, _plan_options(args), runner)
    tokenizer = jobs.run_vocab(summaries, args.output, _vocab_config(args), runner, _prepare_split_bytes(args))
    print(f"{os.path.join(args.output, layout.SPM_MODEL)}: {tokenizer.vocab_size} pieces, sha256 {tokenizer.sha256}")
    return 0


def _prepare_config(args: argparse.Namespace) -> prepare.PrepareConfig:
    return prepare.PrepareConfig(
        instances=InstanceConfig(masking=MaskingConfig(**from_args(MaskingConfig, args)),
                                 **from_args(InstanceConfig, args)),
        split_bytes=_prepare_split_bytes(args), **from_args(prepare.PrepareConfig, args))


def _dedup_config(args: argparse.Namespace) -> dedup.DedupConfig:
    return dedup.DedupConfig(exclude=tuple(args.exclude or ()), **from_args(dedup.DedupConfig, args))


def dedup_lines(summary: dict) -> list[str]:
    """What the dedup stage removed, for the terminal."""
    block = summary["dedup"]
    found = block["duplicates"]
    lines = [f"dedup: {block['documents_in']} documents in, {block['documents_out']} out; "
             f"{found['exact']} exact and {found['near']} near duplicates in {found['clusters']} clusters "
             f"({found['file']} says what each duplicates)"]
    if block["boilerplate"]:
        bp = block["boilerplate"]
        lines.append(f"dedup: boilerplate: {bp['distinct_paragraphs']} paragraphs found in many documents, "
                     f"{bp['paragraphs_removed']} copies removed ({bp['sentences_removed']} sentences)")
    for entry in block["exclude"]:
        lines.append(f"dedup: --exclude {entry['file']}: {entry['sentences_removed']} sentences removed from "
                     f"{entry['documents_touched']} documents, {entry['documents_removed']} documents removed whole")
    return lines


def _dedup(args: argparse.Namespace, beam_args: list[str]) -> int:
    summary = jobs.run_dedup(args.inputs, args.output, _dedup_config(args), _runner(args, beam_args),
                             _prepare_split_bytes(args), args.overwrite)
    for line in dedup_lines(summary):
        print(line)
    print(f"written to {args.output} (summary.json, {dedup.DUPLICATES}, documents-*.jsonl, documents-*.txt)")
    if summary["documents"] == 0:
        print(f"albertprep dedup: no documents left ({_outcomes(summary)})", file=sys.stderr)
        return EXIT_NOTHING_READ
    return 0


def _prepare(args: argparse.Namespace, beam_args: list[str]) -> int:
    config = _prepare_config(args)
    if args.exclude and not args.dedup:
        raise jobs.JobError("--exclude needs --dedup (the dedup stage is where excluded text is removed)")
    manifest, seconds = jobs.run_prepare(args.inputs, args.output, config, _runner(args, beam_args),
                                         _plan_options(args), args.spm_model, _vocab_config(args), args.overwrite,
                                         _dedup_config(args) if args.dedup else None)
    for corpus in manifest.corpus:
        if "dedup" in corpus:
            for line in dedup_lines(corpus):
                print(line)
    for split, info in manifest.splits.items():
        stats = info.statistics
        line = f"{split}: {info.records} instances in {len(info.shards)} shards"
        if stats:
            line += (f"; mean length {stats['mean_length']:.1f}, SOP label 1 {stats['sop']['label_1_fraction']:.3f}, "
                     f"masked {stats['masked_fraction']:.3f} of tokens")
        print(line)
    print(f"written to {args.output} (manifest.json, *.array_record, {layout.COMPLETED}) "
          f"in {seconds:.1f}s")
    return 0


def _show(args: argparse.Namespace, beam_args: list[str]) -> int:
    from albertprep.pipelines import extract

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


def _inspect(args: argparse.Namespace, beam_args: list[str]) -> int:
    from albertprep.tools import inspect

    print(inspect.render(args.directory, args.split, args.instances))
    return 0


def _export_tfrecord(args: argparse.Namespace, beam_args: list[str]) -> int:
    from albertprep.tools import tfrecord

    paths = tfrecord.export(args.directory, args.output, args.split)
    print(f"{len(paths)} TFRecord files of ALBERT tf.train.Example in {args.output}")
    return 0


def _pretrain_config(args: argparse.Namespace) -> PretrainConfig:
    optimizer = OptimizerConfig(total_steps=args.steps, **from_args(OptimizerConfig, args))
    return PretrainConfig(data=args.data, workdir=args.workdir, optimizer=optimizer, **from_args(PretrainConfig, args))


def _pretrain(args: argparse.Namespace, beam_args: list[str]) -> int:
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if any(value is not None for value in explicit) and not args.distributed:
        raise jobs.JobError("--coordinator, --num-processes and --process-id need --distributed")
    if args.distributed:  # before any other JAX call: joins this process to the others
        import jax

        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    from albertprep.model.pretrain import PretrainError, pretrain

    config = _pretrain_config(args)
    try:
        result = pretrain(config, resume=args.resume)
    except (FileExistsError, PretrainError) as error:
        raise jobs.JobError(str(error)) from error
    print(json.dumps(result, indent=2))
    return 0


def _convert(args: argparse.Namespace, beam_args: list[str]) -> int:
    import jax

    from albertprep.model import convert
    from albertprep.model.config import get_config
    from albertprep.model.tfcheckpoint import CheckpointError

    try:
        params, config = convert.load_weights(args.source, get_config(args.config) if args.config else None,
                                              step=args.step)
    except (OSError, KeyError, ValueError, CheckpointError) as error:
        message = str(error)
        raise jobs.JobError(message if args.source in message else f"{args.source}: {message}") from error
    count = sum(v.size for v in jax.tree_util.tree_leaves(params))
    described = f"{count:,} parameters, {config.num_hidden_layers} layers of {config.hidden_size}, " \
                f"vocabulary {config.vocab_size}"
    if args.format == "tf":
        step = args.step if args.step is not None else convert.saved_step(args.source) or 0  # the run's own step
        prefix = convert.save_tf_checkpoint(args.output, params, config, step)
        print(f"{prefix}: a TF checkpoint with albert_config.json ({described}); google-research/albert's "
              f"fine-tuning scripts take it as --init_checkpoint")
    else:
        convert.save_pretrained(args.output, params, config)
        print(f"{args.output}: model.safetensors and config.json ({described}); "
              f"transformers.AlbertForPreTraining.from_pretrained reads it")
    return 0


def _report(args: argparse.Namespace, beam_args: list[str]) -> int:
    from albertprep.model.report import write_report

    check = write_report(args.data, args.workdir, args.output)
    print(f"report: {args.output}")
    if check["eval_mlm_accuracy"] is not None:
        print(f"learning check: eval MLM accuracy {check['eval_mlm_accuracy']:.3f} against "
              f"{check['most_frequent_token_accuracy']:.3f} for always predicting the most frequent masked token")
    return 0


# Every option below that sets a config field is made from the field itself
# (albertprep.core.options): its default and help are written once, there.


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    add_options(p, jobs.RunnerConfig)
    p.add_argument("--split-mb", type=float, default=0,
                   help="input MB read by one task (dumps, text files, documents); 0: from the inputs' size, "
                        "0.25-64 MB, at most 64 tasks; the output is the same whatever the split")
    add_options(p, sources.PlanOptions)
    add_options(p, SentenceLimits)


def _add_vocab_options(p: argparse.ArgumentParser) -> None:
    add_options(p, prepare.VocabConfig)


def _add_dedup_options(p: argparse.ArgumentParser) -> None:
    add_options(p, dedup.DedupConfig)
    p.add_argument("--exclude", nargs="+", action="extend", metavar="FILE",
                   help="text to keep out of training (e.g. GLUE, SQuAD or RACE dev and test sets): .jsonl "
                        "(every string of each record) or plain text; sentences sharing a --exclude-ngram "
                        "n-gram with it are removed")


def _unknown_option_message(unknown: list[str], command: argparse.ArgumentParser, beam_job: bool) -> str:
    """Names each flag that neither this command nor (for a Beam job) Beam
    takes, with the nearest of this command's own flags."""
    ours = [flag for flag in command._option_string_actions if flag.startswith("--")]
    parts = []
    for flag in unknown:
        near = difflib.get_close_matches(flag, ours, n=1, cutoff=0.7)
        parts.append(flag + (f" (did you mean {near[0]}?)" if near else ""))
    what = "neither this command's nor a Beam pipeline option" if beam_job else "not an option of this command"
    return f"unknown option{'s' if len(parts) > 1 else ''} {', '.join(parts)}: {what}"


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and each command's own: every option; each command's function is its `run` default."""
    parser = argparse.ArgumentParser(prog="albertprep", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser(
        "extract", help="dumps, books and text become clean, sentence-split documents",
        description="Inputs are files, directories or globs. The kind is taken from the name "
        "(.xml/.xml.bz2 wiki dump, .txt book, .jsonl) or from a prefix: wiki:, book:, "
        "sentences: (BERT format, one sentence a line), jsonl:, tfds:NAME_OR_DIR. "
        "Unknown options are passed to Beam (e.g. --runner=...).")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--output", required=True, help="output directory (local or any Beam filesystem)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished output")
    _add_plan_options(p)
    p.set_defaults(run=_extract)

    p = commands.add_parser("vocab", help="train ALBERT's SentencePiece model on a sample of sentences",
                            description="Inputs: raw inputs (as extract) or extract outputs.")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--output", required=True)
    _add_plan_options(p)
    _add_vocab_options(p)
    p.set_defaults(run=_vocab)

    p = commands.add_parser("prepare", help="ALBERT instances as ArrayRecord shards with a manifest",
                            description="Inputs: raw inputs (the corpus stage runs first, into OUTPUT/documents) "
                            "or extract outputs. Without --spm-model a vocabulary is trained.")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--output", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace finished shards")
    p.add_argument("--spm-model", help="an existing SentencePiece model, e.g. ALBERT's 30k-clean.model")
    add_options(p, InstanceConfig)
    add_options(p, MaskingConfig)
    add_options(p, prepare.PrepareConfig)
    _add_plan_options(p)
    add_options(p, prepare.VocabConfig, skip=("seed",))  # prepare's --seed seeds the vocabulary sample too
    p.add_argument("--dedup", action="store_true",
                   help="run the dedup stage on the documents first (into OUTPUT/deduplicated); its options below")
    _add_dedup_options(p)
    p.set_defaults(run=_prepare)

    p = commands.add_parser(
        "dedup", help="remove exact and near-duplicate documents, boilerplate paragraphs and --exclude text",
        description="Inputs: extract outputs (directories with summary.json). The output is one too: "
        "prepare takes it. Exact duplicates by their normalised words; near duplicates by MinHash LSH over "
        "word shingles, verified, clustered, the smallest id of each cluster kept.")
    p.add_argument("inputs", nargs="+", metavar="DOCS")
    p.add_argument("--output", required=True, help="output directory (local or any Beam filesystem)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished output")
    p.add_argument("--split-mb", type=float, default=0, help="documents MB read by one task; 0: from their size")
    add_options(p, jobs.RunnerConfig)
    _add_dedup_options(p)
    p.set_defaults(run=_dedup)

    p = commands.add_parser("show", help="print an extract's summary and its first documents")
    p.add_argument("directory")
    p.add_argument("--documents", type=int, default=3)
    p.add_argument("--sentences", type=int, default=3)
    p.set_defaults(run=_show)

    p = commands.add_parser("inspect", help="print prepared instances readably, and the statistics")
    p.add_argument("directory")
    p.add_argument("-n", "--instances", type=int, default=3)
    p.add_argument("--split", default="train", choices=layout.SPLITS)
    p.set_defaults(run=_inspect)

    p = commands.add_parser("export-tfrecord", help="write the instances as ALBERT's own tf.train.Example TFRecords",
                            description="For google-research/albert's TensorFlow run_pretraining.py: one .tfrecord "
                            "per shard with input_ids, input_mask, segment_ids, masked_lm_positions, "
                            "masked_lm_ids, masked_lm_weights, next_sentence_labels. TensorFlow is not needed.")
    p.add_argument("directory")
    p.add_argument("--output", required=True)
    p.add_argument("--split", default="train", choices=layout.SPLITS)
    p.set_defaults(run=_export_tfrecord)

    p = commands.add_parser("pretrain", help="pretrain ALBERT on prepared shards (resumable to the bit)")
    p.add_argument("--data", required=True, help="a directory written by albertprep prepare")
    p.add_argument("--workdir", required=True, help="checkpoints, metrics.jsonl, tensorboard/")
    p.add_argument("--resume", action="store_true", help="continue from the workdir's last checkpoint")
    add_options(p, PretrainConfig)
    add_options(p, OptimizerConfig)
    p.add_argument("--distributed", action="store_true",
                   help="multi-host: jax.distributed.initialize(), which finds what the three options below "
                        "leave out on SLURM, Open MPI, Kubernetes and Cloud TPU")
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (or JAX_COORDINATOR_ADDRESS)")
    p.add_argument("--num-processes", type=int, default=None)
    p.add_argument("--process-id", type=int, default=None)
    p.set_defaults(run=_pretrain)

    p = commands.add_parser("convert", help="ALBERT weights to transformers' format or google-research/albert's",
                            description="SOURCE: an `albertprep pretrain` workdir, a google-research/albert "
                                        "TF checkpoint (prefix, .index or directory; read without TensorFlow) "
                                        "or a transformers directory.")
    p.add_argument("source")
    p.add_argument("--output", required=True, help="the directory to write")
    p.add_argument("--format", default="transformers", choices=("transformers", "tf"),
                   help="transformers: model.safetensors + config.json; tf: a google-research/albert "
                        "checkpoint + albert_config.json (written without TensorFlow)")
    p.add_argument("--config", default=None,
                   help="architecture of a TF checkpoint that has no albert_config.json beside it (e.g. base); "
                        "other sources carry their own")
    p.add_argument("--step", type=int, default=None,
                   help="a pretrain workdir's checkpoint at this step (default: its latest)")
    p.set_defaults(run=_convert)

    p = commands.add_parser("report", help="Markdown report with plots of the data and the training run")
    p.add_argument("--data", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--output", required=True, help="report .md; its PNGs go beside it")
    p.set_defaults(run=_report)
    return parser, commands.choices


BEAM_COMMANDS = ("extract", "vocab", "dedup", "prepare")


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    beam_job = args.command in BEAM_COMMANDS  # only these pass Beam's own options on
    unknown = (runners.unknown_options(beam_args) if beam_job else beam_args) if beam_args else []
    unknown = [arg for arg in unknown if arg.startswith("-")] or unknown  # the flags, not their values
    if unknown:
        print(f"albertprep {args.command}: {_unknown_option_message(unknown, commands[args.command], beam_job)}",
              file=sys.stderr)
        return EXIT_NOT_STARTED
    root = logging.getLogger()
    for handler in list(root.handlers):  # the one a root-logger call during Beam's import may have made
        if type(handler) is logging.StreamHandler and handler.formatter._fmt == logging.BASIC_FORMAT:
            root.removeHandler(handler)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("apache_beam", "distributed", "absl", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    relay = logging.getLogger("apache_beam.runners.portability.local_job_service")
    relay.setLevel(logging.INFO)  # progress lines of worker processes
    if not any(isinstance(f, _WorkerRelay) for f in relay.filters):
        relay.addFilter(_WorkerRelay())
    interrupted = f"albertprep {args.command}: interrupted; no output of this run was left half-written"
    previous_handler = signal.getsignal(signal.SIGINT)
    if args.command in BEAM_COMMANDS and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, functools.partial(_end_beam_job, interrupted))
    try:
        return args.run(args, beam_args)
    except UserError as error:
        print(f"albertprep {args.command}: {error}", file=sys.stderr)
        return EXIT_NOT_STARTED
    except KeyboardInterrupt:
        # Every output appears whole or not at all (albertprep/core/atomic.py), and
        # prepare builds beside its output: an interrupted run leaves what was there.
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if signal.getsignal(signal.SIGINT) is not previous_handler:
            signal.signal(signal.SIGINT, previous_handler)


def _end_beam_job(message: str, signum: int, frame) -> None:
    """Ctrl-C in a Beam job. Raised there, KeyboardInterrupt surfaces as
    Beam's wrapped errors with a page of tracebacks from every stage and
    worker; so the job ends here instead: the staging directory goes, the
    output stays as it was (every file of it appears whole or not at all),
    one line says so."""
    # What the runner's threads report as their workers go is not the user's error.
    threading.excepthook = lambda args: None
    logging.disable(logging.CRITICAL)
    # The local runner's worker processes, before they see the runner gone,
    # and before the staging directory goes: a worker still writing into it
    # made its delete fail ("Directory not empty").
    warm.abort()
    jobs.discard_staging()
    print(message, file=sys.stderr, flush=True)
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
