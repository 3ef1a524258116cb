"""model/memory.py: the parameter count and the memory estimate, against the model and XLA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from albertprep.model import memory
from albertprep.model.albert import AlbertForPreTraining, init_params
from albertprep.model.config import CONFIGS, OptimizerConfig, get_config
from albertprep.model.optim import applied_schedule, make_optimizer
from albertprep.model.train import init_state, make_mesh, make_train_step


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_parameter_count_is_the_models(name):
    shapes = jax.eval_shape(lambda: init_params(CONFIGS[name], jax.random.key(0)))
    owned = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(shapes))
    assert memory.parameter_count(CONFIGS[name]) == owned


@pytest.mark.parametrize("name, batch, seq_len", [("tiny", 8, 128), ("mini", 32, 128), ("mini", 8, 512)])
def test_the_estimate_is_near_what_xla_allocates(name, batch, seq_len):
    """XLA's own memory analysis of the compiled train step (arguments, outputs
    and temporaries) against the estimate a CPU run is checked with."""
    config = get_config(name, vocab_size=30000, max_position_embeddings=512)
    model = AlbertForPreTraining(config, dtype=jnp.float32)
    optimizer_config = OptimizerConfig(total_steps=10)
    optimizer = make_optimizer(optimizer_config)
    mesh = make_mesh()
    state, shardings = init_state(model, optimizer, jax.random.key(0), mesh, False, None)
    step = make_train_step(model, optimizer, applied_schedule(optimizer_config), shardings, mesh, jax.random.key(1))
    rows, predictions = np.zeros((batch, seq_len), np.int32), np.zeros((batch, 20), np.int32)
    batch_arrays = {"input_ids": rows, "input_mask": rows + 1, "segment_ids": rows, "masked_lm_positions": predictions,
                    "masked_lm_ids": predictions, "masked_lm_weights": np.ones((batch, 20), np.float32),
                    "sentence_order_label": np.zeros(batch, np.int32)}
    analysis = step.lower(state, batch_arrays).compile().memory_analysis()
    xla = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
           - analysis.alias_size_in_bytes)
    estimate = memory.estimate(config, batch_per_device=batch, seq_len=seq_len, masked_positions=20, compute_bytes=4)
    assert 0.85 <= estimate.total_bytes / xla <= 1.45, (estimate, xla)


def test_the_estimate_grows_with_what_it_holds():
    base = get_config("base")
    one = memory.estimate(base, batch_per_device=8, seq_len=512, masked_positions=20, compute_bytes=2)
    assert memory.estimate(base, batch_per_device=16, seq_len=512, masked_positions=20, compute_bytes=2
                           ).activation_bytes == 2 * one.activation_bytes
    assert memory.estimate(base, batch_per_device=8, seq_len=512, masked_positions=20, compute_bytes=2,
                           remat=True).activation_bytes < one.activation_bytes / 4
    assert memory.estimate(base, batch_per_device=8, seq_len=512, masked_positions=20, compute_bytes=2,
                           devices=4, fsdp=True).state_bytes == one.state_bytes // 4
    assert memory.largest_batch(lambda b: b * b <= 50, 100) == 7 and memory.largest_batch(lambda b: False, 9) == 0
