"""The pretraining step: loss, metrics, and jit over a mesh of all devices.

Loss = MLM cross-entropy over the masked positions (weighted by
masked_lm_weights, so padding predictions count for nothing) + SOP
cross-entropy. Data parallel by default: the batch is sharded over the
mesh's "data" axis and parameters are replicated; `fsdp=True` shards each
parameter and its optimizer state along its largest divisible dimension
instead. Dropout keys are folded from (dropout key, step), so a resumed run draws
what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from albertprep.model.albert import AlbertForPreTraining

Batch = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def loss_and_metrics(model: AlbertForPreTraining, params, batch: Batch, dropout_key: jax.Array | None):
    deterministic = dropout_key is None
    mlm_bpv, sop_b2 = model.apply(
        {"params": params}, batch["input_ids"], batch["input_mask"], batch["segment_ids"],
        batch["masked_lm_positions"], deterministic=deterministic,
        rngs=None if deterministic else {"dropout": dropout_key})
    weights_bp = batch["masked_lm_weights"]
    predictions = jnp.maximum(weights_bp.sum(), 1.0)
    mlm_bp = optax.softmax_cross_entropy_with_integer_labels(mlm_bpv, batch["masked_lm_ids"])
    mlm_loss = (mlm_bp * weights_bp).sum() / predictions
    sop_loss = optax.softmax_cross_entropy_with_integer_labels(sop_b2, batch["sentence_order_label"]).mean()
    mlm_correct = ((mlm_bpv.argmax(-1) == batch["masked_lm_ids"]) * weights_bp).sum()
    metrics = {
        "loss": mlm_loss + sop_loss,
        "mlm_loss": mlm_loss,
        "sop_loss": sop_loss,
        "mlm_accuracy": mlm_correct / predictions,
        "sop_accuracy": (sop_b2.argmax(-1) == batch["sentence_order_label"]).mean(),
        "mlm_predictions": weights_bp.sum(),
    }
    return mlm_loss + sop_loss, metrics


def in_process_order(devices: list) -> list:
    """Each process's devices together, processes in order, each one's own
    order kept (a stable sort): then the loader's rows of a global batch
    (process p holds the p-th block) land where make_array_from_process_local_data
    puts them. jax.devices() is already so ordered on CPU and GPU."""
    return sorted(devices, key=lambda device: device.process_index)


def make_mesh(devices: list | None = None) -> Mesh:
    """One "data" axis over the devices (all of them by default), in process order."""
    return Mesh(np.asarray(in_process_order(list(devices if devices is not None else jax.devices()))), ("data",))


def _fsdp_spec(shape: tuple[int, ...], devices: int) -> PartitionSpec:
    """Shard the largest dimension the device count divides; else replicate."""
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % devices == 0 and shape[dim] >= devices:
            return PartitionSpec(*[("data" if d == dim else None) for d in range(len(shape))])
    return PartitionSpec()


def state_shardings(state_shapes: TrainState, mesh: Mesh, fsdp: bool) -> TrainState:
    devices = mesh.devices.size
    return jax.tree_util.tree_map(
        lambda leaf: NamedSharding(mesh, _fsdp_spec(leaf.shape, devices) if fsdp and leaf.ndim else PartitionSpec()),
        state_shapes)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("data"))


def init_state(model: AlbertForPreTraining, optimizer: optax.GradientTransformation, key: jax.Array,
               mesh: Mesh, fsdp: bool = False, params: Any = None) -> tuple[TrainState, TrainState]:
    """A fresh state placed on the mesh, and its shardings: parameters from
    `key`, or the given ones (host arrays, the same on every process, shaped
    for model.config), with a fresh optimizer state either way."""
    from albertprep.model.albert import init_params

    def create(params):
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))

    def create_from_key():
        return create(init_params(model.config, key))

    shardings = state_shardings(jax.eval_shape(create_from_key), mesh, fsdp)
    if params is None:
        return jax.jit(create_from_key, out_shardings=shardings)(), shardings
    params = jax.device_put(params, shardings.params)  # an argument, not constants baked into the program
    return jax.jit(create, out_shardings=shardings)(params), shardings


def make_train_step(model: AlbertForPreTraining, optimizer: optax.GradientTransformation,
                    schedule: optax.Schedule, shardings: TrainState, mesh: Mesh,
                    dropout_key: jax.Array) -> Callable:
    """`dropout_key`: split from the init seed's key, apart from the key the weights were drawn with."""

    def train_step(state: TrainState, batch: Batch):
        key = jax.random.fold_in(dropout_key, state.step)
        grad_fn = jax.value_and_grad(loss_and_metrics, argnums=1, has_aux=True)
        (_, metrics), grads = grad_fn(model, state.params, batch, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = metrics | {"grad_norm": optax.global_norm(grads), "learning_rate": schedule(state.step)}
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(train_step, in_shardings=(shardings, batch_sharding(mesh)),
                   out_shardings=(shardings, replicated), donate_argnums=(0,))


def make_eval_step(model: AlbertForPreTraining, shardings: TrainState, mesh: Mesh) -> Callable:
    def eval_step(params, batch: Batch):
        return loss_and_metrics(model, params, batch, None)[1]

    return jax.jit(eval_step, in_shardings=(shardings.params, batch_sharding(mesh)),
                   out_shardings=NamedSharding(mesh, PartitionSpec()))
