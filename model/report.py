"""The run report: Markdown with PNG plots of the data and of the training.

Written by `albertprep report` (and `make demo`): the corpus accounting and
instance statistics from the prepared directory's manifest, the loss and
MLM accuracy curves from the workdir's metrics.jsonl, and the learning
check: eval MLM accuracy against always predicting the most frequent
masked token of the eval split.
"""

from __future__ import annotations

import collections
import json
import os

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from albertprep.core import manifest as manifest_module  # noqa: E402
from albertprep.core.errors import UserError  # noqa: E402
from albertprep.loaders import AlbertLoader, LoaderConfig, PreparedDataset  # noqa: E402
from albertprep.model.pretrain import read_metrics  # noqa: E402


def most_frequent_token_baseline(data: str, instances: int | None = None,
                                 split: str = "eval") -> tuple[int, float, int]:
    """(token id, accuracy, predictions) of always predicting the most frequent
    masked token, over the split's first `instances` (all: None) in manifest
    order: the instances the training loop's evaluation reads."""
    dataset = PreparedDataset.open(data, split=split, verify_checksums=False)
    counts: collections.Counter = collections.Counter()
    loader = AlbertLoader(dataset, LoaderConfig(batch_size=1, num_epochs=1, shuffle=False))
    with iter(loader) as batches:
        for _, batch in zip(range(dataset.num_records if instances is None else instances), batches):
            counts.update(batch["masked_lm_ids"][batch["masked_lm_weights"] > 0].tolist())
    total = sum(counts.values())
    token, hits = counts.most_common(1)[0]
    return token, hits / total, total


def _curves(metrics: list[dict], path: str, baseline: float | None) -> None:
    train = [m for m in metrics if m["split"] == "train"]
    evaluation = [m for m in metrics if m["split"] == "eval"]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [m["step"] for m in train]
    for name in ("loss", "mlm_loss", "sop_loss"):
        loss_axis.plot(steps, [m[name] for m in train], label=f"train {name}")
    if evaluation:
        loss_axis.plot([m["step"] for m in evaluation], [m["loss"] for m in evaluation], "o-", label="eval loss")
    loss_axis.set(xlabel="step", ylabel="cross-entropy", title="Loss")
    loss_axis.legend()
    accuracy_axis.plot(steps, [m["mlm_accuracy"] for m in train], label="train MLM accuracy")
    accuracy_axis.plot(steps, [m["sop_accuracy"] for m in train], alpha=0.4, label="train SOP accuracy")
    if evaluation:
        accuracy_axis.plot([m["step"] for m in evaluation], [m["mlm_accuracy"] for m in evaluation], "o-",
                           label="eval MLM accuracy")
    if baseline is not None:
        accuracy_axis.axhline(baseline, color="grey", linestyle="--", label="most frequent token")
    accuracy_axis.set(xlabel="step", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
    accuracy_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _data_plots(statistics: dict, path: str) -> None:
    figure, (lengths, ngrams, replacements) = plt.subplots(1, 3, figsize=(13, 3.5))
    histogram = np.array(statistics["length_histogram"])
    lengths.bar(np.arange(len(histogram)), histogram, width=1.0)
    lengths.set(xlabel="tokens", ylabel="instances", title="Instance lengths")
    counts = statistics["ngram_histogram"]
    ngrams.bar(list(counts), list(counts.values()))
    ngrams.set(xlabel="n (words)", ylabel="masked spans", title="Masked n-gram lengths")
    fractions = statistics["replacement_fractions"]
    replacements.bar(list(fractions), list(fractions.values()))
    replacements.set(ylabel="fraction of masked tokens", title="Replacements", ylim=(0, 1))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _whole_corpus(corpora: list[dict]) -> dict:
    """The corpus stage's counts summed over every extract the dataset was made from."""
    outcomes: collections.Counter = collections.Counter()
    for corpus in corpora:
        outcomes.update(corpus["outcomes"])
    return {"documents": sum(c["documents"] for c in corpora), "sentences": sum(c["sentences"] for c in corpora),
            "read": sum(c["read"] for c in corpora), "outcomes": dict(outcomes)}


def write_report(data: str, workdir: str, output: str) -> dict:
    """Writes OUTPUT (Markdown) and its PNGs beside it; returns the learning check."""
    directory = os.path.dirname(os.path.abspath(output))
    os.makedirs(directory, exist_ok=True)
    stem = os.path.splitext(os.path.basename(output))[0]
    try:
        manifest = manifest_module.read(data)
    except manifest_module.ManifestError as error:
        raise UserError(f"--data {error}") from error
    metrics = read_metrics(workdir)
    evaluation = [m for m in metrics if m["split"] == "eval"]
    final = evaluation[-1] if evaluation else None
    token = baseline = predictions = None
    if final:  # the baseline over the instances the evaluation read
        token, baseline, predictions = most_frequent_token_baseline(data, final["instances"])
    curves, data_plots = f"{stem}-training.png", f"{stem}-data.png"
    _curves(metrics, os.path.join(directory, curves), baseline)
    train_stats = manifest.splits["train"].statistics
    _data_plots(train_stats, os.path.join(directory, data_plots))
    with open(os.path.join(workdir, "config.json")) as f:
        run = json.load(f)
    check = {"eval_mlm_accuracy": final["mlm_accuracy"] if final else None,
             "most_frequent_token_accuracy": baseline, "most_frequent_token_id": token,
             "eval_predictions": predictions}
    corpus = _whole_corpus(manifest.corpus)
    learning_row = (f"| {final['mlm_accuracy']:.3f} | id {token} | {baseline:.3f} | {predictions} |" if final
                    else "| no evaluation (no eval split) | | | |")
    lines = [
        "# albertprep run report",
        "",
        f"Model `{run['model'] or 'from ' + str(run.get('init_from'))}` ({run['model_config']['hidden_size']} hidden, "
        f"{run['model_config']['num_hidden_layers']} layers, vocabulary {run['model_config']['vocab_size']}), "
        f"{run['steps']} steps of batch {run['batch_size']}, optimizer {run['optimizer']['name']}, "
        f"data `{data}`.",
        "",
        "## Learning check",
        "",
        "| eval MLM accuracy | most frequent masked token | its accuracy | eval predictions |",
        "|---:|---:|---:|---:|",
        learning_row,
        "",
        f"![training]({curves})",
        "",
        "## Data",
        "",
        f"Corpus: {corpus['documents']} documents ({corpus['sentences']} sentences) from {corpus['read']} pages, "
        f"books and records read; outcomes: "
        + ", ".join(f"{k} {v}" for k, v in corpus["outcomes"].items()) + ".",
        "",
        "| split | instances | mean length | SOP label 1 | masked fraction | short targets |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for split, info in manifest.splits.items():
        stats = info.statistics
        if stats and stats["instances"]:
            lines.append(f"| {split} | {stats['instances']} | {stats['mean_length']:.1f} "
                         f"| {stats['sop']['label_1_fraction']:.3f} | {stats['masked_fraction']:.3f} "
                         f"| {stats['short_target_fraction']:.3f} |")
    lines += ["", f"![data]({data_plots})", ""]
    if final:
        lines += ["## Final evaluation", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in final.items() if isinstance(v, float) and k != "mlm_predictions"]
    with open(output, "w") as f:
        f.write("\n".join(lines) + "\n")
    return check
