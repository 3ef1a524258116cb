"""The pretraining loop: `albertprep pretrain --config base --data DIR --workdir DIR`.

One orbax checkpoint holds the parameters, the optimizer state, the step and
the Grain iterator's state, saved together; `--resume` restores all four,
so the resumed run sees exactly the batches and dropout keys it would have,
and its losses match an uninterrupted run bit for bit. Metrics go to
`WORKDIR/metrics.jsonl` (one line per logged step, appended across
resumptions), to TensorBoard (`WORKDIR/tensorboard`) and to a progress bar.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time

import grain.python as grain
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from albertprep.core import atomic
from albertprep.core.errors import UserError
from albertprep.loaders import AlbertLoader, LoaderConfig, PreparedDataset
from albertprep.model import memory
from albertprep.model.albert import AlbertForPreTraining
from albertprep.model.config import AlbertConfig, PretrainConfig, get_config
from albertprep.model.flops import train_step_flops
from albertprep.model.optim import applied_schedule, make_optimizer
from albertprep.model.train import batch_sharding, init_state, make_eval_step, make_mesh, make_train_step

_LOG = logging.getLogger(__name__)
# bf16 dense peak per device, TFLOP/s, matched against jax's device_kind,
# most specific first. The H100/H200 figure is the measured peak the project
# reports MFU against (the datasheet says 989 for SXM parts); --peak-tflops
# overrides.
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 787.0), ("H200", 787.0), ("A100", 312.0),
               ("TPU v5 lite", 197.0), ("TPU v5p", 459.0), ("TPU v4", 275.0))


class PretrainError(UserError, ValueError):
    """A run that cannot start as configured; the message says why."""


def _peak_flops(per_device_tflops: float | None) -> float | None:
    kind = jax.devices()[0].device_kind
    peak = per_device_tflops or next((v for k, v in PEAK_TFLOPS if k in kind), None)
    return peak * 1e12 * jax.device_count() if peak else None


def _tensorboardx_writer():
    """tensorboardX's SummaryWriter, imported without torch. tensorboardX
    imports torch, when it is installed, only to accept its tensors; the
    scalars written here are floats, and importing torch costs about 3 s of
    every run's start where it is installed (transformers users have it).
    A torch that is already imported is left alone."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None  # `import torch` raises ImportError while this is set
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class _Logs:
    """JSONL always; TensorBoard when tensorboardX is installed. Metrics are
    global (every process computes the same), so only process 0 writes them."""

    def __init__(self, workdir: str, primary: bool):
        self._jsonl = self._board = None
        if not primary:
            return
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
        try:
            SummaryWriter = _tensorboardx_writer()
            self._board = SummaryWriter(os.path.join(workdir, "tensorboard"))
        except ImportError:
            self._board = None

    def write(self, step: int, metrics: dict, prefix: str = "train") -> None:
        if self._jsonl is None:
            return
        record = {"step": step, "split": prefix} | metrics
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if self._board is not None:
            for name, value in metrics.items():
                self._board.add_scalar(f"{prefix}/{name}", value, step)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._board is not None:
            self._board.close()


def _evaluate(config: PretrainConfig, eval_step, params, mesh) -> dict | None:
    try:
        dataset = PreparedDataset.open(config.data, split="eval", verify_checksums=False)
    except ValueError as error:  # no eval split, or an empty one
        _LOG.info("no evaluation: %s", error)
        return None
    per_process = config.batch_size // jax.process_count()
    loader = AlbertLoader(dataset, LoaderConfig(batch_size=per_process, seed=config.data_seed, num_epochs=1,
                                                shuffle=False), sharding=batch_sharding(mesh))
    if not loader.num_batches:
        return None
    # MLM figures are pooled over predictions (batches hold different numbers
    # of them), the others averaged over batches (all of one size)
    pooled = ("mlm_loss", "mlm_accuracy")
    totals: dict[str, float] = {}
    batches_read = 0
    with iter(loader) as batches:
        for _, batch in zip(range(config.eval_batches), batches):
            metrics = {k: float(v) for k, v in jax.device_get(eval_step(params, batch)).items()}
            for name, value in metrics.items():
                weight = metrics["mlm_predictions"] if name in pooled else 1.0
                totals[name] = totals.get(name, 0.0) + value * weight
            batches_read += 1
    result = {name: value / (totals["mlm_predictions"] if name in pooled else batches_read)
              for name, value in totals.items() if name != "mlm_predictions"}
    result["loss"] = result["mlm_loss"] + result["sop_loss"]
    return result | {"mlm_predictions": totals["mlm_predictions"], "instances": batches_read * config.batch_size}


_SIZES = ("vocab_size", "max_position_embeddings")  # fitted to the data, not part of a model's name


def _latest_step(directory: str) -> int | None:
    if not os.path.isdir(directory):
        return None
    manager = ocp.CheckpointManager(directory)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def _same_architecture(a: AlbertConfig, b: AlbertConfig) -> bool:
    return dataclasses.replace(a, **{k: getattr(b, k) for k in _SIZES}) == b


def _resolve_model(config: PretrainConfig, has_checkpoint: bool, vocab_size: int,
                   seq_len: int) -> tuple[PretrainConfig, AlbertConfig, dict | None]:
    """The run's config as it will be saved, the model's config, and the
    parameters to start from (None: from the seed, or from the checkpoint).

    A resumed run keeps what its config.json records, so neither --config,
    --init-from nor the seeds need repeating (a run that died before its first
    checkpoint starts again as first configured); ones that disagree with it
    are refused. A new run takes --init-from's weights and their config, or
    the named config (base by default) sized to the data's vocabulary.
    """
    saved_path = os.path.join(config.workdir, "config.json")
    if has_checkpoint and not os.path.exists(saved_path):
        raise PretrainError(f"{config.workdir} has checkpoints but no config.json: not an albertprep run?")
    if os.path.exists(saved_path) and (has_checkpoint or config.init_from is None):
        with open(saved_path) as f:
            saved = json.load(f)
        if "model_config" not in saved:
            raise PretrainError(f"{saved_path}: no model_config: not an albertprep run's config?")
        saved_model = AlbertConfig(**saved["model_config"])
        if config.model is not None and not _same_architecture(get_config(config.model), saved_model):
            raise PretrainError(f"{config.workdir} holds a run of another model "
                                f"({saved.get('model') or saved.get('init_from')}); --config {config.model} "
                                "cannot resume it")
        if config.init_from not in (None, saved.get("init_from")):
            raise PretrainError(f"{config.workdir} holds a run started from {saved.get('init_from')}; "
                                f"--init-from {config.init_from} cannot resume it")
        config = dataclasses.replace(config, model=saved.get("model"), init_from=saved.get("init_from"))
        if has_checkpoint:  # and its seeds: the weights and the loader's state were drawn with them
            old = saved.get("seed")  # albertprep 0.1 had one seed for everything
            config = dataclasses.replace(
                config, init_seed=saved.get("init_seed", config.init_seed if old is None else old),
                data_seed=saved.get("data_seed", config.data_seed if old is None else old))
            return config, saved_model, None
    if not config.init_from:
        config = dataclasses.replace(config, model=config.model or "base")
        return config, get_config(config.model, vocab_size=vocab_size, max_position_embeddings=max(
            seq_len, get_config(config.model).max_position_embeddings)), None
    from albertprep.model.convert import load_weights

    try:
        params, model_config = load_weights(config.init_from, get_config(config.model or "base"))
    except (OSError, KeyError, ValueError) as error:
        raise PretrainError(f"--init-from {config.init_from}: {error}") from error
    if model_config.vocab_size != vocab_size or model_config.max_position_embeddings < seq_len:
        raise PretrainError(f"--init-from {config.init_from}: vocabulary {model_config.vocab_size} and "
                            f"{model_config.max_position_embeddings} positions; the data needs vocabulary "
                            f"{vocab_size} and {seq_len} positions")
    if model_config.attention_probs_dropout_prob:
        raise PretrainError(f"--init-from {config.init_from}: attention dropout "
                            f"{model_config.attention_probs_dropout_prob} (an ALBERT v1 config); this model "
                            "trains without it, as ALBERT v2 does")
    _LOG.info("initialised from %s", config.init_from)
    # the architecture is the weights'; a config name is kept only if it names that architecture
    named = config.model if config.model and _same_architecture(get_config(config.model), model_config) else None
    return dataclasses.replace(config, model=named), model_config, params


def _available_memory() -> tuple[int | None, str]:
    """(bytes one device may use, what it is): the accelerator's own limit, or
    on a CPU the host's available memory shared by its virtual devices."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"each {device.device_kind} has {{}} for arrays"
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None, "the host"  # unknown: nothing is refused
    shared = jax.local_device_count()
    each = f" for each of its {shared} CPU devices" if shared > 1 else ""
    return available // shared, "the host has {} available" + each


def _memory_estimate(config: PretrainConfig, model_config: AlbertConfig, seq_len: int, predictions: int,
                     batch_size: int) -> memory.MemoryEstimate:
    on_cpu = jax.default_backend() == "cpu"
    half = jnp.dtype(config.dtype).itemsize == 2
    return memory.estimate(
        model_config, batch_per_device=batch_size // jax.device_count(), seq_len=seq_len,
        masked_positions=predictions, compute_bytes=4 if on_cpu else jnp.dtype(config.dtype).itemsize,
        devices=jax.device_count(), fsdp=config.fsdp, remat=config.remat and not on_cpu,
        accumulation_steps=config.optimizer.accumulation_steps,
        flash_attention=jax.default_backend() == "gpu" and half)


def _check_memory(config: PretrainConfig, model_config: AlbertConfig, seq_len: int, predictions: int) -> None:
    """Logs the parameter count and the memory estimate, or refuses, before
    anything is compiled, a run whose estimate exceeds the device's memory
    (the one line then holds both)."""
    estimate = _memory_estimate(config, model_config, seq_len, predictions, config.batch_size)
    available, where = _available_memory()
    name = config.model or "the --init-from model"
    if available is None or estimate.total_bytes <= available:
        _LOG.info("%s: %s parameters; batch %d of %d tokens needs %s", name, f"{estimate.parameters:,}",
                  config.batch_size, seq_len, estimate.describe())
        return
    step = jax.device_count()
    # the advice leaves 15% of headroom: the estimate is within about 15% of XLA's own figure
    fits = memory.largest_batch(lambda b: _memory_estimate(config, model_config, seq_len, predictions, b * step)
                                .total_bytes <= 0.85 * available, config.batch_size // step) * step
    if fits == 0:
        advice = "even a batch of one row a device does not fit: a smaller --config, or a device with more memory"
    else:
        k = -(-config.batch_size // fits)
        advice = (f"lower --batch-size to {fits} or less (with --accumulation-steps {k} to keep about the same "
                  "batch per update)")
        if not config.remat and jax.default_backend() != "cpu":
            advice += ", or add --remat"
    raise PretrainError(f"batch {config.batch_size} of {seq_len} tokens with {name} ({estimate.parameters:,} "
                        f"parameters) needs {estimate.describe()}; "
                        f"{where.format(memory.format_bytes(available))}: {advice}")


def pretrain(config: PretrainConfig, resume: bool = False) -> dict:
    """Runs to config.steps; returns the last logged train and eval metrics.
    Everything a user can get wrong is checked before the workdir is made."""
    train_data = PreparedDataset.open(config.data, split="train", verify_checksums=config.verify_checksums)
    vocab_size = train_data.manifest.tokenizer.vocab_size
    seq_len = train_data.layout.max_seq_length
    if config.batch_size % (jax.process_count() * jax.local_device_count()):
        raise PretrainError(f"batch size {config.batch_size} does not split over {jax.device_count()} devices")
    checkpoints = os.path.abspath(os.path.join(config.workdir, "checkpoints"))
    latest = _latest_step(checkpoints)
    if latest is not None and not resume:
        raise FileExistsError(f"{config.workdir} has checkpoints up to step {latest}; "
                              "pass --resume to continue or use another workdir")
    if latest is None and resume and not os.path.exists(os.path.join(config.workdir, "config.json")):
        # (a run that died before its first checkpoint left its config.json: it restarts as it was configured)
        raise PretrainError(f"--resume: {config.workdir} holds no checkpoint to resume from (a mistyped workdir?); "
                            "leave out --resume to start a run there")
    resuming = latest is not None
    config, model_config, initial_params = _resolve_model(config, resuming, vocab_size, seq_len)
    _check_memory(config, model_config, seq_len, train_data.layout.max_predictions_per_seq)
    os.makedirs(config.workdir, exist_ok=True)
    model = AlbertForPreTraining(model_config, dtype=jnp.dtype(config.dtype), remat=config.remat)
    optimizer = make_optimizer(config.optimizer)
    schedule = applied_schedule(config.optimizer)
    mesh = make_mesh()
    # initial weights and dropout from one seed, by split keys (never the same key twice)
    init_key, dropout_key = jax.random.split(jax.random.key(config.init_seed))
    state, shardings = init_state(model, optimizer, init_key, mesh, config.fsdp, initial_params)
    train_step = make_train_step(model, optimizer, schedule, shardings, mesh, dropout_key)
    eval_step = make_eval_step(model, shardings, mesh)
    loader = AlbertLoader(train_data, LoaderConfig(batch_size=config.batch_size // jax.process_count(),
                                                   seed=config.data_seed, dynamic_masking=config.dynamic_masking,
                                                   worker_count=config.worker_count),
                          sharding=batch_sharding(mesh))
    batches = iter(loader)
    manager = ocp.CheckpointManager(checkpoints, options=ocp.CheckpointManagerOptions(
        max_to_keep=config.keep_checkpoints, create=True, enable_async_checkpointing=True))
    start = 0
    if resuming:
        start = latest
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
        restored = manager.restore(start, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=grain.PyGrainCheckpointRestore(batches)))
        state = restored.state
        _LOG.info("resumed at step %d", start)
    primary = jax.process_index() == 0
    if primary:  # atomically: the other processes of a resumed run read it
        with atomic.local_path(os.path.join(config.workdir, "config.json")) as temporary, open(temporary, "w") as f:
            json.dump(dataclasses.asdict(config) | {"model_config": dataclasses.asdict(model_config)}, f, indent=2)

    flops_per_step = train_step_flops(model_config, seq_len, train_data.layout.max_predictions_per_seq) \
        * config.batch_size
    peak = _peak_flops(config.peak_tflops)
    logs = _Logs(config.workdir, primary)
    progress = None
    if config.progress and primary:
        from tqdm import tqdm

        progress = tqdm(total=config.steps, initial=start, unit="step", dynamic_ncols=True)
    last_train: dict = {}
    last_eval: dict | None = None
    timer, timed_steps = time.perf_counter(), 0
    try:
        for step in range(start, config.steps):
            state, metrics = train_step(state, next(batches))
            timed_steps += 1
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                seconds = (time.perf_counter() - timer) / timed_steps
                metrics |= {"steps_per_second": 1 / seconds, "tokens_per_second": config.batch_size * seq_len / seconds}
                if peak:
                    metrics["mfu"] = flops_per_step / seconds / peak
                logs.write(done, metrics)
                last_train = metrics
                timer, timed_steps = time.perf_counter(), 0
                if progress is not None:
                    progress.set_postfix(loss=f"{metrics['loss']:.3f}", mlm_acc=f"{metrics['mlm_accuracy']:.3f}",
                                         sop_acc=f"{metrics['sop_accuracy']:.3f}", refresh=False)
            if done % config.checkpoint_every == 0 or done == config.steps:
                manager.save(done, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                           data=grain.PyGrainCheckpointSave(batches)))
            if done % config.eval_every == 0 or done == config.steps:
                last_eval = _evaluate(config, eval_step, state.params, mesh)
                if last_eval:
                    logs.write(done, last_eval, prefix="eval")
                timer, timed_steps = time.perf_counter(), 0
            if progress is not None:
                progress.update(1)
    finally:
        manager.wait_until_finished()
        manager.close()
        batches.close()
        logs.close()
        if progress is not None:
            progress.close()
    return {"train": last_train, "eval": last_eval, "steps": config.steps}


def read_metrics(workdir: str) -> list[dict]:
    """metrics.jsonl, the last line for each (split, step): a resumed run
    logs again the steps after its checkpoint."""
    latest: dict[tuple[str, int], dict] = {}
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise PretrainError(f"--workdir {workdir}: no training run there (no metrics.jsonl)")
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            latest[(record["split"], record["step"])] = record
    return [latest[key] for key in sorted(latest, key=lambda k: (k[1], k[0]))]

