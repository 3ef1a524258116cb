"""The pretraining loop: it learns, and a SIGKILLed run resumes to the bit."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT, TIMING, pretrain_command

from albertprep import cli
from albertprep.model.config import get_config
from albertprep.model.convert import load_weights
from albertprep.model.pretrain import read_metrics

STEPS = 30


def _command(data, workdir, *extra):
    return pretrain_command(data, workdir, *extra, steps=STEPS)


def _losses(workdir):
    return [{k: v for k, v in m.items() if k not in TIMING} for m in read_metrics(str(workdir))
            if m["split"] == "train"]


def _run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def straight(pretrain_data, tmp_path_factory):
    """An uninterrupted run, keeping two checkpoints."""
    workdir = tmp_path_factory.mktemp("straight")
    _run(_command(pretrain_data, workdir, "--keep-checkpoints", "2"))
    return workdir


def test_killed_run_resumes_with_identical_losses(pretrain_data, straight, tmp_path):
    expected = _losses(straight)
    assert [m["step"] for m in expected] == list(range(1, STEPS + 1))

    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(pretrain_data, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill it between two checkpoints, mid-run
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 14:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    logged = len(metrics.read_text().splitlines())
    assert 14 <= logged < STEPS, "the run must die mid-way"
    checkpoints = sorted(int(p) for p in os.listdir(killed / "checkpoints") if p.isdigit())
    assert checkpoints and checkpoints[-1] < logged

    _run(_command(pretrain_data, killed, "--resume"))
    assert _losses(killed) == expected  # every metric of every step, bit for bit
    with open(killed / "metrics.jsonl") as f:
        assert len(f.read().splitlines()) > STEPS  # the steps after the checkpoint really ran twice


def test_loss_falls_and_checkpoints_are_kept(straight):
    losses = [m["loss"] for m in _losses(straight)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5  # 11.0 → 10.2 measured; chance stays at ln(30000)
    assert sorted(int(p) for p in os.listdir(straight / "checkpoints") if p.isdigit()) == [28, 30]
    config = json.loads((straight / "config.json").read_text())
    assert config["model_config"]["vocab_size"] == 30000 and config["model"] == "tiny"


def test_a_tf_export_of_a_run_keeps_its_step(straight, tmp_path):
    """google-research/albert's scripts read global_step: a run at step 30
    exports model.ckpt-30, or the step asked for."""
    from albertprep.model.tfcheckpoint import TFCheckpoint

    for step, flags in ((30, []), (28, ["--step", "28"])):
        output = tmp_path / f"tf-{step}"
        assert cli.main(["convert", str(straight), "--output", str(output), "--format", "tf", *flags]) == 0
        assert TFCheckpoint(str(output / f"model.ckpt-{step}")).read("global_step") == step


def test_exported_weights_restart_a_run_where_it_ended(pretrain_data, straight, tmp_path):
    """workdir → `albertprep convert` → transformers files → `pretrain --init-from`
    at learning rate 0: the new run evaluates exactly as the old one ended."""
    exported = tmp_path / "exported"
    assert cli.main(["convert", str(straight), "--output", str(exported)]) == 0
    assert json.loads((exported / "config.json").read_text())["model_type"] == "albert"
    workdir = tmp_path / "restarted"
    command = _command(pretrain_data, workdir, "--init-from", str(exported))
    command[command.index("--steps") + 1] = "1"
    command[command.index("--learning-rate") + 1] = "0"
    _run(command)
    keys = ("loss", "mlm_loss", "sop_loss", "mlm_accuracy", "sop_accuracy", "mlm_predictions")
    ended = [m for m in read_metrics(str(straight)) if m["split"] == "eval"][-1]
    restarted = [m for m in read_metrics(str(workdir)) if m["split"] == "eval"][-1]
    assert restarted["step"] == 1 and ended["step"] == STEPS
    assert {k: restarted[k] for k in keys} == {k: ended[k] for k in keys}
    first_of_straight = [m for m in read_metrics(str(straight)) if m["split"] == "train"][0]
    assert _losses(workdir)[0]["loss"] < first_of_straight["loss"] - 0.3  # not a fresh model
    # resumed without --config or --init-from: the run keeps its model and weights
    flags = command[3:]
    for flag in ("--config", "--init-from"):
        del flags[flags.index(flag):flags.index(flag) + 2]
    flags[flags.index("--steps") + 1] = "2"
    _run(command[:3] + flags + ["--resume"])
    resumed = [m for m in read_metrics(str(workdir)) if m["split"] == "eval"][-1]
    assert resumed["step"] == 2 and {k: resumed[k] for k in keys} == {k: ended[k] for k in keys}


def test_resuming_with_another_model_is_refused(pretrain_data, straight, capsys):
    code = cli.main(_command(pretrain_data, straight, "--resume")[3:] + ["--config", "base"])
    assert code == 2
    assert "holds a run of another model (tiny); --config base cannot resume it" in capsys.readouterr().err
    code = cli.main(_command(pretrain_data, straight, "--resume", "--init-from", str(pretrain_data))[3:])
    assert code == 2 and "holds a run started from None; --init-from" in capsys.readouterr().err


def test_a_run_that_died_before_its_first_checkpoint_restarts_as_configured(pretrain_data, tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    tiny = dataclasses.asdict(get_config("tiny", vocab_size=30000))
    (workdir / "config.json").write_text(json.dumps({"model": "tiny", "init_from": None, "model_config": tiny}))
    code = cli.main(_command(pretrain_data, workdir, "--resume")[3:] + ["--config", "base"])
    assert code == 2 and "--config base cannot resume it" in capsys.readouterr().err
    flags = _command(pretrain_data, workdir, "--resume")
    del flags[flags.index("--config"):flags.index("--config") + 2]
    flags[flags.index("--steps") + 1] = "2"
    _run(flags)  # no --config: the recorded tiny, not base
    assert json.loads((workdir / "config.json").read_text())["model_config"] == tiny
    assert [m["step"] for m in _losses(workdir)] == [1, 2]


def test_init_from_weights_of_another_vocabulary_is_refused(pretrain_data, tmp_path, capsys):
    from fixtures.make_tf_checkpoint import FIXTURE

    code = cli.main(_command(pretrain_data, tmp_path / "run", "--init-from", FIXTURE)[3:])
    assert code == 2
    error = capsys.readouterr().err
    assert "vocabulary 256 and 64 positions; the data needs vocabulary 30000 and 64 positions" in error


def test_a_used_workdir_needs_resume(pretrain_data, straight):
    result = subprocess.run(_command(pretrain_data, straight), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "--resume" in result.stderr


def test_report_has_plots_and_the_learning_check(pretrain_data, straight, tmp_path):
    from albertprep.model.report import most_frequent_token_baseline, write_report

    check = write_report(str(pretrain_data), str(straight), str(tmp_path / "report.md"))
    final = [m for m in read_metrics(str(straight)) if m["split"] == "eval"][-1]
    assert check["eval_mlm_accuracy"] == final["mlm_accuracy"]
    token, baseline, predictions = most_frequent_token_baseline(str(pretrain_data), final["instances"])
    assert (check["most_frequent_token_id"], check["most_frequent_token_accuracy"]) == (token, baseline)
    assert predictions == final["mlm_predictions"]  # the same instances the evaluation read
    text = (tmp_path / "report.md").read_text()
    assert "![training](report-training.png)" in text and "## Learning check" in text
    for png in ("report-training.png", "report-data.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_an_eval_split(straight, small_prepared, tmp_path):
    from albertprep.model.report import write_report

    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text((straight / "config.json").read_text())
    train_only = [line for line in (straight / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    (workdir / "metrics.jsonl").write_text("\n".join(train_only) + "\n")
    check = write_report(str(small_prepared), str(workdir), str(tmp_path / "report.md"))
    assert check["eval_mlm_accuracy"] is None
    assert "no evaluation (no eval split)" in (tmp_path / "report.md").read_text()


def test_report_counts_every_corpus_of_the_dataset(straight, small_prepared, tmp_path):
    """A dataset made from two extract outputs (books and articles, say)
    reports the documents of both, not of the first."""
    from albertprep.model.report import write_report

    data = tmp_path / "data"
    shutil.copytree(small_prepared, data)
    manifest = json.loads((data / "manifest.json").read_text())
    first = manifest["corpus"][0]
    other = dict(first, documents=106, sentences=5000, read=110, outcomes={"document": 106, "redirect": 4})
    manifest["corpus"] = [first, other]
    (data / "manifest.json").write_text(json.dumps(manifest))
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text((straight / "config.json").read_text())
    train_only = [line for line in (straight / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    (workdir / "metrics.jsonl").write_text("\n".join(train_only) + "\n")
    write_report(str(data), str(workdir), str(tmp_path / "report.md"))
    documents = first["documents"] + 106
    assert f"Corpus: {documents} documents ({first['sentences'] + 5000} sentences) from {first['read'] + 110} " \
        in (tmp_path / "report.md").read_text()


def test_the_learning_benchmark_reads_a_run(pretrain_data, straight):
    """benchmarks/learning.py as `make bench` runs it: a script beside benchmarks/model.py."""
    result = subprocess.run([sys.executable, "benchmarks/learning.py", "--data", str(pretrain_data),
                             "--workdir", str(straight)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    final = [m for m in read_metrics(str(straight)) if m["split"] == "eval"][-1]
    assert f"eval MLM accuracy after {STEPS} steps: {final['mlm_accuracy']:.3f}" in result.stdout


def test_the_init_seed_sets_the_weights_and_the_data_seed_the_batches(pretrain_data, tmp_path):
    """One step at learning rate 0 (warm-up starts there) leaves the initial
    weights as they were drawn; its metrics are theirs on the first batch."""
    def run(init_seed, data_seed):
        workdir = tmp_path / f"init{init_seed}-data{data_seed}"
        command = pretrain_command(pretrain_data, workdir, "--init-seed", str(init_seed), "--data-seed",
                                   str(data_seed), "--checkpoint-every", "1", steps=1)
        assert cli.main(command[3:]) == 0
        params, _ = load_weights(str(workdir))
        (first,) = _losses(workdir)
        assert json.loads((workdir / "config.json").read_text())["init_seed"] == init_seed
        return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(params)], first

    weights, first = run(0, 0)
    other_data_weights, other_data = run(0, 1)
    other_init_weights, other_init = run(1, 0)
    assert first["learning_rate"] == 0.0
    same = [np.array_equal(a, b) for a, b in zip(weights, other_data_weights)]
    assert all(same)  # another data seed: the same initial weights
    assert first["mlm_predictions"] != other_data["mlm_predictions"] or first["loss"] != other_data["loss"]
    assert not all(np.array_equal(a, b) for a, b in zip(weights, other_init_weights))
    assert first["mlm_predictions"] == other_init["mlm_predictions"]  # another init: the same first batch
    assert first["loss"] != other_init["loss"]
