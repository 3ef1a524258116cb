"""ALBERT configurations: the released v2 hyperparameters and a tiny one for tests."""

from __future__ import annotations

import dataclasses

from albertprep.core.errors import UserError


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
