"""The learning check: after `make demo`, eval MLM accuracy against a baseline.

The baseline always predicts the most frequent masked token of the eval
split; a model that learned nothing of the language cannot beat it by
much. Both figures come from the same eval instances (those the training
loop's last evaluation read), in the same run.

    python benchmarks/learning.py [--data demo-output/prepared] [--workdir demo-output/pretrain]
"""

from __future__ import annotations

import argparse
import sys

from albertprep.model.pretrain import read_metrics
from albertprep.model.report import most_frequent_token_baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo-output/prepared")
    parser.add_argument("--workdir", default="demo-output/pretrain")
    args = parser.parse_args()
    evaluations = [m for m in read_metrics(args.workdir) if m["split"] == "eval"]
    if not evaluations:
        sys.exit(f"{args.workdir} has no evaluation: run make demo first")
    final = evaluations[-1]
    token, baseline, predictions = most_frequent_token_baseline(args.data, final["instances"])
    print(f"eval MLM accuracy after {final['step']} steps: {final['mlm_accuracy']:.3f}")
    print(f"most frequent masked token (id {token}) every time: {baseline:.3f} over {predictions} predictions")
    print(f"ratio: {final['mlm_accuracy'] / baseline:.2f}x the baseline; "
          f"eval SOP accuracy {final['sop_accuracy']:.3f} (chance 0.5)")


if __name__ == "__main__":
    sys.exit(main())
