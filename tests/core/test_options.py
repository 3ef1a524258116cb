"""albertprep.core.options: the command line's defaults are the configs' own."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from albertprep import cli
from albertprep.core.options import add_options, from_args, setting
from albertprep.model.config import OptimizerConfig, PretrainConfig
from albertprep.pipelines import jobs, prepare, sources


def _parse(*argv: str) -> argparse.Namespace:
    parser, _ = cli.build_parser()
    return parser.parse_args(argv)


def test_a_command_without_options_builds_the_default_configs():
    args = _parse("prepare", "in", "--output", "out")
    assert cli._prepare_config(args) == prepare.PrepareConfig()
    assert cli._vocab_config(args) == prepare.VocabConfig()
    assert cli._plan_options(args) == sources.PlanOptions()
    assert cli._runner(args, []) == jobs.RunnerConfig()
    assert cli._vocab_config(_parse("vocab", "in", "--output", "out")) == prepare.VocabConfig()
    pretrain = cli._pretrain_config(_parse("pretrain", "--data", "d", "--workdir", "w"))
    assert pretrain == PretrainConfig(data="d", workdir="w", optimizer=OptimizerConfig())


def test_each_option_sets_its_field():
    args = _parse("prepare", "in", "--output", "out", "--max-seq-length", "128", "--masked-lm-prob", "0.2",
                  "--dupe-factor", "3", "--seed", "7", "--albert-compat", "--no-lower-case", "--spm-threads", "2",
                  "--max-sentence-words", "50", "--keep-lists", "--workers", "2")
    config = cli._prepare_config(args)
    assert (config.instances.max_seq_length, config.instances.masking.masked_lm_prob) == (128, 0.2)
    assert (config.dupe_factor, config.seed, config.instances.albert_compat) == (3, 7, True)
    vocab = cli._vocab_config(args)
    assert (vocab.do_lower_case, vocab.threads, vocab.seed) == (False, 2, 7)  # prepare's one data seed
    plan = cli._plan_options(args)
    assert plan.sentence_limits.max_words == 50 and plan.keep_lists and cli._runner(args, []).workers == 2
    pretrain = cli._pretrain_config(_parse("pretrain", "--data", "d", "--workdir", "w", "--init-seed", "3",
                                           "--data-seed", "4", "--steps", "10", "--no-verify", "--optimizer", "adamw"))
    assert (pretrain.init_seed, pretrain.data_seed, pretrain.verify_checksums) == (3, 4, False)
    assert (pretrain.optimizer.name, pretrain.optimizer.total_steps) == ("adamw", 10)


def test_help_shows_each_default_from_its_field():
    _, commands = cli.build_parser()
    text = " ".join(commands["prepare"].format_help().split())
    assert f"(default: {prepare.PrepareConfig.dupe_factor})" in text
    assert "passes over each document, each with its own instances and masks" in text


def test_a_true_default_needs_its_negated_flag():
    @dataclasses.dataclass(frozen=True)
    class Example:
        careful: bool = setting(True, "be careful")

    with pytest.raises(TypeError, match="Example.careful: a True default needs a negated flag"):
        add_options(argparse.ArgumentParser(), Example)


def test_fields_without_help_are_not_options():
    @dataclasses.dataclass(frozen=True)
    class Example:
        size: int = setting(3, "how many")
        internal: int = 9

    parser = argparse.ArgumentParser()
    add_options(parser, Example)
    assert from_args(Example, parser.parse_args(["--size", "4"])) == {"size": 4}
    with pytest.raises(SystemExit):
        parser.parse_args(["--internal", "1"])
