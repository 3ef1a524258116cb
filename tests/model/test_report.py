"""model/report.py's figures: what a reader of the report needs to see."""

import json

import matplotlib.pyplot as plt

from albertprep.core import manifest
from albertprep.model.report import curves_figure, data_figure


def _labels(axis) -> list[str]:
    return axis.get_legend_handles_labels()[1]


def test_the_data_figure_shows_short_instances_and_albert_s_proportions(small_prepared):
    statistics = manifest.read(str(small_prepared)).splits["train"].statistics
    figure = data_figure(statistics, "train", 3)
    lengths, ngrams, replacements = figure.axes
    assert lengths.get_yscale() == "log"  # the short instances beside the full ones
    assert all("(train split)" in axis.get_title() for axis in figure.axes)
    shorter = 1 - statistics["length_histogram"][-1] / sum(statistics["length_histogram"])
    assert [text.get_text() for text in lengths.texts] == [f"{shorter:.1%} shorter than 128 tokens"]
    assert "p(n) ∝ 1/n (ALBERT)" in _labels(ngrams) and "80 / 10 / 10 (BERT)" in _labels(replacements)
    plt.close(figure)


def test_the_curves_show_eval_and_chance_lines():
    metrics = [{"split": "train", "step": s, "mlm_loss": 5.0 - s, "sop_loss": 0.7, "mlm_accuracy": 0.1 * s,
                "sop_accuracy": 0.5} for s in (1, 2, 3)]
    metrics.append({"split": "eval", "step": 3, "mlm_loss": 2.5, "sop_loss": 0.69, "mlm_accuracy": 0.2,
                    "sop_accuracy": 0.52})
    figure = curves_figure(json.loads(json.dumps(metrics)), baseline=0.05)
    loss, mlm, sop = figure.axes
    assert {"train mlm loss", "eval mlm loss", "train sop loss", "eval sop loss"} <= set(_labels(loss))
    assert _labels(mlm) == ["train", "eval", "most frequent token (0.050)"]
    assert _labels(sop) == ["train", "eval", "chance (0.5)"]
    plt.close(figure)
