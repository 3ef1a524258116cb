"""Analytic FLOPs of ALBERT, for MFU.

Matrix multiplies only (2 FLOPs a multiply-add), counted for the applied
parameters: the shared layer counts once for every time it runs, which is
what the hardware does, not once for the parameters it owns. Elementwise
work (softmax, gelu, LayerNorm) is left out, as MFU conventionally does;
the test compares with XLA's own count.
"""

from __future__ import annotations

from albertprep.model.config import AlbertConfig


def forward_flops(config: AlbertConfig, seq_len: int, masked_positions: int) -> int:
    """FLOPs of one sequence's forward pass (MLM head on the masked positions only)."""
    c, t = config, seq_len
    embedding_projection = 2 * t * c.embedding_size * c.hidden_size
    per_layer = (
        2 * t * c.hidden_size * 3 * c.hidden_size  # query, key, value
        + 2 * 2 * t * t * c.hidden_size  # scores and context
        + 2 * t * c.hidden_size * c.hidden_size  # attention output
        + 2 * 2 * t * c.hidden_size * c.intermediate_size  # ffn in and out
    )
    layers = c.num_hidden_layers * c.inner_group_num
    pooler = 2 * c.hidden_size * c.hidden_size
    mlm = 2 * masked_positions * (c.hidden_size * c.embedding_size + c.embedding_size * c.vocab_size)
    sop = 2 * c.hidden_size * 2
    return embedding_projection + layers * per_layer + pooler + mlm + sop


def train_step_flops(config: AlbertConfig, seq_len: int, masked_positions: int) -> int:
    """Forward and backward (twice the forward: gradients of inputs and weights)."""
    return 3 * forward_flops(config, seq_len, masked_positions)
