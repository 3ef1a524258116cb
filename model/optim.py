"""LAMB as ALBERT used it, built from optax pieces, and its schedule.

google-research/albert's lamb_optimizer.py differs from `optax.lamb` twice:
its Adam moments have no bias correction, and LayerNorm and bias parameters
are excluded from weight decay and from the trust ratio (optax.lamb masks
only the decay). Gradients are clipped to global norm 1.0 first, as
ALBERT's optimization.py does. The learning rate decays linearly from step
0 to zero at `total_steps` and is replaced during warmup by init_lr * step /
warmup_steps (ALBERT's arithmetic, not warmup-then-decay-from-peak).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from albertprep.model.config import OptimizerConfig  # noqa: F401  (re-exported: the optimizer's settings)

_NO_DECAY = ("LayerNorm", "layer_norm", "bias")


def albert_schedule(config: OptimizerConfig) -> optax.Schedule:
    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        decayed = config.learning_rate * jnp.maximum(0.0, 1.0 - step / config.total_steps)
        warmup = config.learning_rate * step / max(config.warmup_steps, 1)
        return jnp.where(step < config.warmup_steps, warmup, decayed)

    return schedule


def applied_schedule(config: OptimizerConfig) -> optax.Schedule:
    """The rate applied at a micro-step: with accumulation, the update made
    after micro-steps (n-1)k..nk-1 uses the rate of micro-step (n-1)k."""
    schedule, k = albert_schedule(config), config.accumulation_steps
    return lambda step: schedule(step // k * k)


def decay_mask(params) -> dict:
    """True where ALBERT decays weights and adapts the layer-wise rate."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict(
        {path: not any(word in name for name in path for word in _NO_DECAY) for path in flat})


class _MomentsState(NamedTuple):
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam_without_bias_correction(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """m / (sqrt(v) + eps) with raw moments, as ALBERT's LAMB."""

    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return _MomentsState(mu=zeros, nu=jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        del params
        mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        updates = jax.tree_util.tree_map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)
        return updates, _MomentsState(mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def make_optimizer(config: OptimizerConfig) -> optax.GradientTransformation:
    """Step counts (warmup, total) are micro-steps, batches consumed: inside
    optax.MultiSteps the schedule sees update counts, so it is stretched by
    the accumulation factor."""
    micro_schedule, k = albert_schedule(config), config.accumulation_steps
    schedule = (lambda update: micro_schedule(update * k)) if k > 1 else micro_schedule
    if config.name == "lamb":
        optimizer = optax.chain(
            optax.clip_by_global_norm(config.clip_norm),
            scale_by_adam_without_bias_correction(config.beta1, config.beta2, config.epsilon),
            optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
            optax.masked(optax.scale_by_trust_ratio(), decay_mask),
            optax.scale_by_learning_rate(schedule),
        )
    elif config.name == "adamw":
        optimizer = optax.chain(
            optax.clip_by_global_norm(config.clip_norm),
            optax.adamw(schedule, config.beta1, config.beta2, config.epsilon, config.weight_decay, mask=decay_mask),
        )
    else:
        raise ValueError(f"unknown optimizer {config.name!r}: lamb or adamw")
    if config.accumulation_steps > 1:
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=config.accumulation_steps)
    return optimizer
