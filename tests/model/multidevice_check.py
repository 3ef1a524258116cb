"""Run by tests/model/test_train_parallel.py in a fresh process with 2 virtual CPU devices.

Prints the losses of a few train steps of a tiny ALBERT on a fixed batch,
for the mesh over all devices with data parallelism or FSDP, as JSON.
"""

import json
import sys

import jax
import numpy as np


def main(mode: str) -> None:
    from albertprep.model.albert import AlbertForPreTraining
    from albertprep.model.config import get_config
    from albertprep.model.optim import OptimizerConfig, albert_schedule, make_optimizer
    from albertprep.model.train import init_state, make_mesh, make_train_step

    config = get_config("tiny", vocab_size=500)
    model = AlbertForPreTraining(config)
    optimizer_config = OptimizerConfig(learning_rate=1e-2, warmup_steps=2, total_steps=20)
    optimizer = make_optimizer(optimizer_config)
    devices = jax.devices() if mode != "single" else jax.devices()[:1]
    mesh = make_mesh(devices)
    state, shardings = init_state(model, optimizer, jax.random.key(0), mesh, fsdp=mode == "fsdp")
    step = make_train_step(model, optimizer, albert_schedule(optimizer_config), shardings, mesh, jax.random.key(1))
    rng = np.random.default_rng(0)
    batch = {
        "input_ids": rng.integers(5, 500, (8, 32)).astype(np.int32),
        "input_mask": np.ones((8, 32), np.int32),
        "segment_ids": (np.arange(32)[None] >= 16).repeat(8, 0).astype(np.int32),
        "masked_lm_positions": np.tile(np.arange(1, 6), (8, 1)).astype(np.int32),
        "masked_lm_ids": rng.integers(5, 500, (8, 5)).astype(np.int32),
        "masked_lm_weights": np.ones((8, 5), np.float32),
        "sentence_order_label": rng.integers(0, 2, 8).astype(np.int32),
    }
    losses = []
    for _ in range(5):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    kernel = state.params["encoder"]["albert_layer_groups_0_albert_layers_0"]["ffn"]["kernel"]
    print(json.dumps({"devices": len(devices), "losses": losses,
                      "kernel_shards": len({str(s.index) for s in kernel.addressable_shards})}))


if __name__ == "__main__":
    main(sys.argv[1])
