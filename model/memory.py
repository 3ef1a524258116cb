"""What a pretraining run holds in device memory, estimated before anything is compiled.

Analytic, like flops.py, and JAX-free: `pretrain` refuses a run whose
estimate exceeds what the device has, with the figures and what to change,
instead of dying in XLA's allocator after minutes of compiling. The test
compares the estimate with XLA's own memory analysis of the compiled step.

Per device, in bytes:
- state: fp32 parameters and LAMB's (or AdamW's) two moments, 12 bytes a
  parameter (plus 4 for the gradient accumulator with --accumulation-steps),
  divided over the devices with --fsdp;
- gradients: 4 bytes a parameter while the update is applied;
- activations kept for the backward pass, per layer application (the
  shared layer runs num_hidden_layers times, and each run keeps its own):
  the layer's input, q, k, v, context, the attention output and its
  LayerNorm, the feed-forward's two [b, t, f] tensors and its output and
  LayerNorm: b·t·(8·H + 2·F) elements in the compute dtype, and the
  attention's b·n·t² arrays (with XLA's attention about three in fp32 and
  one in the compute dtype; none with cuDNN's flash attention, which
  recomputes them). With --remat only each layer's input is kept, plus one
  layer's full set while it is recomputed. XLA's CPU backend computes
  bfloat16 in fp32 and keeps what remat would free (measured), so on a CPU
  the caller passes 4-byte compute and remat=False;
- the MLM head: logits, their softmax and its gradient at the masked
  positions, 3 · b · p · V fp32 values.
"""

from __future__ import annotations

import dataclasses

from albertprep.model.config import AlbertConfig

_FP32 = 4


def parameter_count(config: AlbertConfig) -> int:
    """Parameters the model owns (the shared layers once)."""
    c = config
    e, h, f, v = c.embedding_size, c.hidden_size, c.intermediate_size, c.vocab_size
    embeddings = (v + c.max_position_embeddings + c.type_vocab_size) * e + 2 * e
    mapping_in = e * h + h
    layer = 4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
    layers = c.num_hidden_groups * c.inner_group_num * layer
    pooler = h * h + h
    mlm_head = h * e + e + 2 * e + v
    sop = 2 * h + 2
    return embeddings + mapping_in + layers + pooler + mlm_head + sop


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    state_bytes: int  # parameters and optimizer moments (and accumulator), this device's part
    gradient_bytes: int
    activation_bytes: int  # kept for the backward pass
    head_bytes: int  # the MLM head's logits at the masked positions

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.gradient_bytes + self.activation_bytes + self.head_bytes

    def describe(self) -> str:
        return (f"about {format_bytes(self.total_bytes)} per device (weights and optimizer "
                f"{format_bytes(self.state_bytes)}, gradients {format_bytes(self.gradient_bytes)}, activations "
                f"{format_bytes(self.activation_bytes)}, MLM head {format_bytes(self.head_bytes)})")


def format_bytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"


def estimate(config: AlbertConfig, *, batch_per_device: int, seq_len: int, masked_positions: int,
             compute_bytes: int, devices: int = 1, fsdp: bool = False, remat: bool = False,
             accumulation_steps: int = 1, flash_attention: bool = False) -> MemoryEstimate:
    """The estimate for one device; `batch_per_device` is its rows of one train step (a micro-batch)."""
    c = config
    n = parameter_count(c)
    share = devices if fsdp else 1
    state = n * _FP32 * (3 + (1 if accumulation_steps > 1 else 0)) // share
    gradients = n * _FP32 // share
    b = batch_per_device  # a micro-batch: with --accumulation-steps each step is one of k
    t = seq_len
    dense = b * t * (8 * c.hidden_size + 2 * c.intermediate_size) * compute_bytes
    # XLA's attention keeps about three fp32 [b, n, t, t] arrays (scores, their
    # softmax, its gradient) and the probabilities in the compute dtype
    attention = 0 if flash_attention else b * c.num_attention_heads * t * t * (3 * _FP32 + compute_bytes)
    per_layer = dense + attention
    applications = c.num_hidden_layers * c.inner_group_num
    if remat:
        activations = applications * b * t * c.hidden_size * compute_bytes + per_layer
    else:
        activations = applications * per_layer
    activations += b * t * (c.embedding_size + c.hidden_size) * compute_bytes  # embeddings and mapping in
    head = 3 * b * masked_positions * c.vocab_size * _FP32
    return MemoryEstimate(n, state, gradients, activations, head)


def largest_batch(fits, limit: int) -> int:
    """The largest batch in [1, limit] for which `fits(batch)` holds (0 if none); `fits` is monotone."""
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low
