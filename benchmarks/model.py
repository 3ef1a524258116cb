"""ALBERT train-step speed: our Flax model against transformers + torch.compile.

For each config and sequence length: sequences/s, tokens/s and MFU of one
train step (forward, backward, optimizer update) of our Flax ALBERT, the
very step `albertprep pretrain` runs (model/train.py: bf16 compute, fp32
parameters, ALBERT's LAMB, jit over all devices; the impl column names the
attention it got), and, in the same run, of transformers' PyTorch
AlbertForPreTraining compiled with torch.compile under bf16 autocast (with
AdamW, as elementwise as LAMB), the peer a user would pick today. Both see
the same random batches of real shape (20 masked positions a sequence).
MFU uses the analytic FLOPs of model/flops.py for both (applied parameters,
MLM head at the masked positions) over --peak-tflops.

On a GPU machine, JAX needs its CUDA build: `pip install -U "jax[cuda12]"`.

    python benchmarks/model.py --configs base,large --seq-lens 128,512 --batch 64
    python benchmarks/model.py --configs tiny --seq-lens 128 --batch 8 --steps 3   # a CPU smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from albertprep.model.albert import CUDNN_REFUSED, AlbertForPreTraining
from albertprep.model.config import get_config
from albertprep.model.flops import train_step_flops
from albertprep.model.optim import OptimizerConfig, applied_schedule, make_optimizer
from albertprep.model.pretrain import PEAK_TFLOPS
from albertprep.model.train import batch_sharding, init_state, make_mesh, make_train_step

PREDICTIONS = 20


def _batch(config, batch: int, seq_len: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    positions = np.sort(np.stack([rng.choice(np.arange(1, seq_len - 1), PREDICTIONS, replace=False)
                                  for _ in range(batch)]), axis=1)
    return {
        "input_ids": rng.integers(5, config.vocab_size, (batch, seq_len)).astype(np.int32),
        "input_mask": np.ones((batch, seq_len), np.int32),
        "segment_ids": (np.arange(seq_len)[None] >= seq_len // 2).repeat(batch, 0).astype(np.int32),
        "masked_lm_positions": positions.astype(np.int32),
        "masked_lm_ids": rng.integers(5, config.vocab_size, (batch, PREDICTIONS)).astype(np.int32),
        "masked_lm_weights": np.ones((batch, PREDICTIONS), np.float32),
        "sentence_order_label": rng.integers(0, 2, batch).astype(np.int32),
    }


def _time(step, steps: int) -> float:
    step()  # compile and warm up
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def flax_step_seconds(config, batch: dict, steps: int, remat: bool = False) -> tuple[float, str]:
    """The train step `albertprep pretrain` runs (model/train.py, ALBERT's LAMB, bf16
    compute, jit over all devices); returns its seconds and the attention used."""
    model = AlbertForPreTraining(config, dtype=jnp.bfloat16, remat=remat)
    optimizer_config = OptimizerConfig(warmup_steps=10, total_steps=10_000)
    optimizer = make_optimizer(optimizer_config)
    mesh = make_mesh()
    state, shardings = init_state(model, optimizer, jax.random.key(0), mesh)
    train_step = make_train_step(model, optimizer, applied_schedule(optimizer_config), shardings, mesh,
                                 jax.random.key(1))
    device_batch = jax.device_put(batch, batch_sharding(mesh))
    holder = [state]

    def step():
        holder[0], metrics = train_step(holder[0], device_batch)
        metrics["loss"].block_until_ready()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step()  # traces: attend() chooses here
    fell_back = any(CUDNN_REFUSED in str(w.message) for w in caught)
    on_gpu = jax.default_backend() == "gpu"
    attention = "xla (cuDNN refused)" if fell_back else ("cudnn" if on_gpu else "xla")
    return _time(step, steps), attention


def torch_step_seconds(config, batch: dict, steps: int) -> float:
    import torch
    import transformers

    from albertprep.model.convert import transformers_config

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = transformers.AlbertForPreTraining(transformers.AlbertConfig(**transformers_config(config))).to(device)
    model.train()
    compiled = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    labels = np.full(batch["input_ids"].shape, -100, np.int64)
    np.put_along_axis(labels, batch["masked_lm_positions"], batch["masked_lm_ids"], axis=1)
    inputs = {
        "input_ids": torch.tensor(batch["input_ids"], device=device),
        "attention_mask": torch.tensor(batch["input_mask"], device=device),
        "token_type_ids": torch.tensor(batch["segment_ids"], device=device),
        "labels": torch.tensor(labels, device=device),
        "sentence_order_label": torch.tensor(batch["sentence_order_label"], device=device, dtype=torch.long),
    }

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = compiled(**inputs).loss
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return _time(step, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="base,large")
    parser.add_argument("--seq-lens", default="128,512")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak of one device")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--remat", action="store_true", help="recompute activations in the backward pass")
    args = parser.parse_args()
    device = jax.devices()[0]
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS if k in device.device_kind), None)
    print(f"device: {device.device_kind} x {jax.device_count()}; peak {peak or '?'} TFLOP/s bf16; "
          f"batch {args.batch}, {args.steps} timed steps")
    print(f"{'config':>7} {'len':>4} {'impl':>20} {'seq/s':>9} {'tokens/s':>11} {'MFU':>6} {'vs torch':>8}")
    for name in args.configs.split(","):
        config = get_config(name)
        for seq_len in map(int, args.seq_lens.split(",")):
            batch = _batch(config, args.batch, seq_len)
            flops = train_step_flops(config, seq_len, PREDICTIONS) * args.batch
            seconds, attention = flax_step_seconds(config, batch, args.steps, args.remat)
            results = {f"flax/{attention}": seconds}
            if not args.no_torch:
                results["torch.compile"] = torch_step_seconds(config, batch, args.steps)
            for impl, seconds in results.items():
                mfu = f"{flops / seconds / (peak * 1e12):6.1%}" if peak else "     ?"
                ratio = (results["torch.compile"] / seconds
                         if impl.startswith("flax") and "torch.compile" in results else None)
                print(f"{name:>7} {seq_len:>4} {impl:>20} {args.batch / seconds:9.1f} "
                      f"{args.batch * seq_len / seconds:11.0f} {mfu} {f'{ratio:.2f}x' if ratio else '':>8}")


if __name__ == "__main__":
    sys.exit(main())
