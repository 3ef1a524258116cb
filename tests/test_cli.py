"""Every user mistake through the command line: one line that names the
path or option and says what is wrong, exit status 2, no traceback, and
nothing left behind."""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import ALBERT_MODEL, BOOKS, ROOT

from albertprep import cli


def _incomplete(prepared, tmp_path):
    copy = tmp_path / "incomplete"
    shutil.copytree(prepared, copy)
    (copy / "COMPLETED").unlink()
    return copy


MISTAKES = {
    "inspect an incomplete directory": (lambda d, t: ["inspect", str(_incomplete(d, t))], "incomplete"),
    "export an incomplete directory": (
        lambda d, t: ["export-tfrecord", str(_incomplete(d, t)), "--output", str(t / "tf")], "incomplete"),
    "pretrain on an incomplete directory": (
        lambda d, t: ["pretrain", "--data", str(_incomplete(d, t)), "--workdir", str(t / "w"), "--config", "tiny",
                      "--steps", "1"], "incomplete"),
    "inspect no directory": (lambda d, t: ["inspect", str(t / "nothing")], "no such directory"),
    "show a prepared directory": (lambda d, t: ["show", str(d)], "not an extract output"),
    "report on documents": (
        lambda d, t: ["report", "--data", str(d / "documents"), "--workdir", str(t), "--output", str(t / "r.md")],
        "not a prepared dataset"),
    "report without a run": (
        lambda d, t: ["report", "--data", str(d), "--workdir", str(t / "none"), "--output", str(t / "r.md")],
        "no training run"),
    "prepare a prepared directory": (
        lambda d, t: ["prepare", str(d), "--output", str(t / "p"), "--spm-model", str(ALBERT_MODEL)],
        "is a prepared dataset"),
    "prepare into a file": (
        lambda d, t: ["prepare", str(BOOKS / "blake-poems.txt"), "--output", str(_file(t)), "--spm-model",
                      str(ALBERT_MODEL)], "is a file"),
    "a missing --spm-model": (
        lambda d, t: ["prepare", str(BOOKS / "blake-poems.txt"), "--output", str(t / "p"), "--spm-model",
                      str(t / "no.model")], "no.model"),
    "--resume with no run": (
        lambda d, t: ["pretrain", "--data", str(d), "--workdir", str(t / "w"), "--config", "tiny", "--steps", "1",
                      "--resume"], "holds no checkpoint to resume from"),
    "a batch too large for the machine": (  # ALBERT's default batch of 4096 on base, on a CPU
        lambda d, t: ["pretrain", "--data", str(d), "--workdir", str(t / "w"), "--steps", "1"],
        "GB per device (weights and optimizer"),
    "an unknown --config": (
        lambda d, t: ["pretrain", "--data", str(d), "--workdir", str(t / "w"), "--config", "giant", "--steps", "1"],
        "unknown ALBERT config 'giant'"),
}


def _file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared directory made from raw input, so it holds documents/ too."""
    output = tmp_path_factory.mktemp("cli-errors") / "prepared"
    assert cli.main(["prepare", str(BOOKS / "blake-poems.txt"), "--output", str(output), "--spm-model",
                     str(ALBERT_MODEL), "--dupe-factor", "1", "--max-seq-length", "64", "--eval-fraction", "0"]) == 0
    return output


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_mistake_gets_one_line_and_exit_2(mistake, prepared, tmp_path, capsys):
    make_args, expected = MISTAKES[mistake]
    args = make_args(prepared, tmp_path)
    capsys.readouterr()
    code = cli.main(args)
    error = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_NOT_STARTED, error
    assert len(error) == 1 and error[0].startswith(f"albertprep {args[0]}: ") and expected in error[0], error
    assert not (tmp_path / "p").exists() and not (tmp_path / "w").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_ends_with_one_line_and_exit_130(tmp_path, workers):
    """An interrupted prepare says so in one line, exits 130 as a shell
    expects, and leaves no output directory of its own behind. Ctrl-C goes
    to the whole process group, as a terminal sends it: with two workers
    that includes the worker commands and the warm processes (warm.py)."""
    output = tmp_path / "prepared"
    pools = set(pathlib.Path(tempfile.gettempdir()).glob("albertprep-workers-*"))
    process = subprocess.Popen(
        [sys.executable, "-m", "albertprep", "prepare", str(BOOKS / "austen-emma.txt"), "--output", str(output),
         "--spm-model", str(ALBERT_MODEL), "--dupe-factor", "200", "--workers", str(workers)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (tmp_path.iterdir() and any(p.name.startswith(".prepared") for p in tmp_path.iterdir())):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    time.sleep(1.0)  # into the job (at dupe 200 it runs for many seconds more)
    assert process.poll() is None, "the job ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    ours = [line for line in stderr.splitlines() if " INFO " not in line]
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and ours == ["albertprep prepare: interrupted; no output of this run was "
                                                   "left half-written"], ours
    assert not output.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".prepared")]
    assert set(pathlib.Path(tempfile.gettempdir()).glob("albertprep-workers-*")) <= pools  # the warm processes' too


@pytest.mark.parametrize("argv, flag", [
    (["pretrain", "--data", "d", "--workdir", "w", "--seed", "1"], "--seed (did you mean --init-seed?)"),
    (["inspect", "some/dir", "--instnces", "2"], "--instnces (did you mean --instances?)"),
    (["report", "--data", "d", "--workdir", "w", "--output", "r.md", "--runner=DirectRunner"], "--runner=DirectRunner"),
])
def test_an_unknown_flag_of_any_command_gets_one_line(argv, flag, capsys):
    """Only extract, vocab and prepare pass Beam's own options on; every other
    command refuses what it does not know, in one line, before doing anything."""
    assert cli.main(argv) == cli.EXIT_NOT_STARTED
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"albertprep {argv[0]}: unknown option {flag}: not an option of this command"]
