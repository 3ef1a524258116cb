"""ALBERT configurations (the released v2 hyperparameters and small ones), and the
settings of a pretraining run and its optimizer.

JAX-free, so the command line builds its options from these fields
(albertprep.core.options) without importing the model.
"""

from __future__ import annotations

import dataclasses

from albertprep.core.errors import UserError
from albertprep.core.options import setting


@dataclasses.dataclass(frozen=True)
class AlbertConfig:
    vocab_size: int = 30000
    embedding_size: int = 128  # E: factorised embeddings, E << H
    hidden_size: int = 768  # H
    num_hidden_layers: int = 12  # layers applied
    num_hidden_groups: int = 1  # distinct parameter sets the layers share
    inner_group_num: int = 1  # layers within a group, applied in turn
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout_prob: float = 0.0  # v2 models: no dropout
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of {self.num_attention_heads} heads")
        if self.num_hidden_layers % self.num_hidden_groups:
            raise ValueError(f"{self.num_hidden_layers} layers do not split into {self.num_hidden_groups} groups")


# google-research/albert's released v2 configurations (albert_config.json).
CONFIGS = {
    "tiny": AlbertConfig(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=128),
    # for `make demo`: learns something in minutes on two CPU cores
    "mini": AlbertConfig(embedding_size=64, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                         intermediate_size=512, max_position_embeddings=128),
    "base": AlbertConfig(),
    "large": AlbertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "xlarge": AlbertConfig(hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, intermediate_size=8192),
    "xxlarge": AlbertConfig(hidden_size=4096, num_hidden_layers=12, num_attention_heads=64, intermediate_size=16384),
}


class ConfigError(UserError, ValueError):
    """A model configuration that does not exist."""


def get_config(name: str, **overrides) -> AlbertConfig:
    if name not in CONFIGS:
        raise ConfigError(f"unknown ALBERT config {name!r}; known: {', '.join(CONFIGS)}")
    return dataclasses.replace(CONFIGS[name], **overrides)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    name: str = setting("lamb", "LAMB (ALBERT's) or AdamW", flag="--optimizer", choices=("lamb", "adamw"))
    learning_rate: float = setting(0.00176, "peak learning rate (ALBERT's for batch 4096 with LAMB)")
    warmup_steps: int = setting(3125, "linear warm-up steps, then linear decay to 0")
    total_steps: int = 125000  # the run's --steps
    weight_decay: float = setting(0.01, "decoupled weight decay (not on LayerNorm and biases)")
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-6
    clip_norm: float = 1.0
    accumulation_steps: int = setting(1, "micro-batches per optimizer step")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    data: str
    workdir: str
    model: str | None = setting(None, "tiny, mini, base, large, xlarge or xxlarge (default: base; a resumed run "
                                "keeps its own)", flag="--config")
    batch_size: int = setting(4096, "global batch, over all processes (ALBERT's)")
    steps: int = setting(125_000, "optimizer steps")
    optimizer: OptimizerConfig = OptimizerConfig()
    dtype: str = setting("bfloat16", "compute dtype; parameters stay fp32", choices=("bfloat16", "float32"))
    # Separate seeds (as MaxText's): another data order never changes the
    # initial weights, another init never changes the batches.
    init_seed: int = setting(0, "the model's seed: initial weights and dropout")
    data_seed: int = setting(0, "the data's seed: shuffle order and dynamic masks")
    dynamic_masking: bool = setting(False, "mask anew each epoch instead of the stored masks")
    worker_count: int = setting(0, "Grain worker processes")
    eval_every: int = setting(1000, "steps between evaluations")
    eval_batches: int = setting(20, "batches an evaluation reads")
    checkpoint_every: int = setting(1000, "steps between checkpoints")
    keep_checkpoints: int = setting(3, "checkpoints kept")
    log_every: int = setting(10, "steps between metric lines")
    fsdp: bool = setting(False, "shard parameters and optimizer state over the devices")
    remat: bool = setting(False, "recompute activations in the backward pass")
    verify_checksums: bool = setting(True, "skip the shards' sha256 check", negated="--no-verify")
    progress: bool = setting(True, "no progress bar", negated="--no-progress")
    peak_tflops: float | None = setting(None, "bf16 peak of one device, for MFU")
    # weights to start from (model.convert.load_weights); their config wins
    init_from: str | None = setting(None, "start from these weights (an albertprep convert source: a workdir, a TF "
                                    "checkpoint or a transformers directory) with a fresh optimizer; the model "
                                    "config is theirs")
