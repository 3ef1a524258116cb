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


def curves_figure(metrics: list[dict], baseline: float | None) -> plt.Figure:
    """Loss; MLM accuracy against always predicting the most frequent masked
    token; SOP accuracy against chance (0.5): train curves and eval points."""
    train = [m for m in metrics if m["split"] == "train"]
    evaluation = [m for m in metrics if m["split"] == "eval"]
    figure, (loss_axis, mlm_axis, sop_axis) = plt.subplots(1, 3, figsize=(15, 4))
    steps, eval_steps = [m["step"] for m in train], [m["step"] for m in evaluation]
    for name, style in (("mlm_loss", "-"), ("sop_loss", "-")):
        loss_axis.plot(steps, [m[name] for m in train], style, label=f"train {name.replace('_', ' ')}")
        if evaluation:
            loss_axis.plot(eval_steps, [m[name] for m in evaluation], "o-", label=f"eval {name.replace('_', ' ')}")
    loss_axis.set(xlabel="step", ylabel="cross-entropy", title="Loss")
    loss_axis.legend()
    mlm_axis.plot(steps, [m["mlm_accuracy"] for m in train], label="train")
    if evaluation:
        mlm_axis.plot(eval_steps, [m["mlm_accuracy"] for m in evaluation], "o-", label="eval")
    if baseline is not None:
        mlm_axis.axhline(baseline, color="grey", linestyle="--", label=f"most frequent token ({baseline:.3f})")
    mlm_axis.set(xlabel="step", ylabel="accuracy", title="MLM accuracy", ylim=(0, 1))
    mlm_axis.legend()
    sop_axis.plot(steps, [m["sop_accuracy"] for m in train], alpha=0.5, label="train")
    if evaluation:
        sop_axis.plot(eval_steps, [m["sop_accuracy"] for m in evaluation], "o-", label="eval")
    sop_axis.axhline(0.5, color="grey", linestyle="--", label="chance (0.5)")
    sop_axis.set(xlabel="step", ylabel="accuracy", title="SOP accuracy", ylim=(0, 1))
    sop_axis.legend()
    figure.tight_layout()
    return figure


def data_figure(statistics: dict, split: str, max_ngram: int) -> plt.Figure:
    """Lengths (log scale, so the short instances show beside the full ones),
    masked span lengths against ALBERT's p(n) ∝ 1/n, replacements against
    80/10/10; every title names the split."""
    figure, (lengths, ngrams, replacements) = plt.subplots(1, 3, figsize=(15, 4))
    histogram = np.array(statistics["length_histogram"])
    lengths.bar(np.arange(len(histogram)), histogram, width=1.0)
    lengths.set_yscale("log")
    shorter = 1 - histogram[-1] / max(1, histogram.sum())
    lengths.set(xlabel="tokens", ylabel="instances (log scale)", title=f"Instance lengths ({split} split)")
    lengths.text(0.02, 0.95, f"{shorter:.1%} shorter than {len(histogram) - 1} tokens", transform=lengths.transAxes,
                 va="top")
    # n as a number (the manifest's keys are strings): an axis of strings
    # that parse as numbers makes matplotlib log a notice on every report
    counts = {int(n): c for n, c in statistics["ngram_histogram"].items()}
    total = max(1, sum(counts.values()))
    ngrams.bar(list(counts), [c / total for c in counts.values()], label="masked spans")
    positions = np.arange(1, max_ngram + 1)
    ngrams.plot(positions, (1 / positions) / (1 / positions).sum(), "k_", markersize=30,
                markeredgewidth=2, label="p(n) ∝ 1/n (ALBERT)")
    ngrams.set_xticks(positions)
    ngrams.set(xlabel="n (words)", ylabel="share of masked spans", title=f"Masked span lengths ({split} split)")
    ngrams.legend()
    fractions = statistics["replacement_fractions"]
    replacements.bar(list(fractions), list(fractions.values()), label="measured")
    replacements.plot(list(fractions), [0.8, 0.1, 0.1], "k_", markersize=30, markeredgewidth=2,
                      label="80 / 10 / 10 (BERT)")
    replacements.set(ylabel="share of masked tokens", title=f"Replacements ({split} split)", ylim=(0, 1))
    replacements.legend()
    figure.tight_layout()
    return figure


def _save(figure: plt.Figure, path: str) -> None:
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
    _save(curves_figure(metrics, baseline), os.path.join(directory, curves))
    train_stats = manifest.splits["train"].statistics
    _save(data_figure(train_stats, "train", manifest.masking.max_ngram), os.path.join(directory, data_plots))
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
