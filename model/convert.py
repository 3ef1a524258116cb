"""Weights in and out: transformers' AlbertForPreTraining, google-research/albert, our own runs.

Our parameter tree uses transformers' names, so a transformers key is our
path with dots, "scale"/"embedding" read "weight", and Dense kernels
transposed (torch stores [out, in]). google-research/albert's TF checkpoint
names are mapped one by one; their kernels are [in, out] like ours.
`load_weights` opens any of the three sources (`albertprep convert` and
`albertprep pretrain --init-from` use it); `save_pretrained` writes the
format transformers loads.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping

import numpy as np
from flax import traverse_util

from albertprep.core import atomic
from albertprep.model.config import AlbertConfig

_LOG = logging.getLogger(__name__)
_GROUP_LAYER = re.compile(r"albert_layer_groups_(\d+)_albert_layers_(\d+)")


def _hf_key(path: tuple[str, ...]) -> tuple[str, bool]:
    """(transformers key, transpose?) of one of our parameter paths."""
    *modules, leaf = path
    dotted = ".".join(modules)
    dotted = _GROUP_LAYER.sub(r"albert_layer_groups.\1.albert_layers.\2", dotted)
    if modules[0] in ("embeddings", "encoder", "pooler"):
        dotted = "albert." + dotted
    if modules[0] == "sop_classifier":
        dotted = "sop_classifier.classifier"
    if dotted == "predictions" and leaf == "bias":
        return "predictions.bias", False
    name = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}[leaf]
    return f"{dotted}.{name}", leaf == "kernel"


def _import(values: Mapping, params_template: Mapping, name_of, source: str) -> dict:
    """Our params from named arrays: each leaf's name and transpose from name_of(path)."""
    flat = {}
    for path, template in traverse_util.flatten_dict(params_template).items():
        name, transpose = name_of(path)
        if name not in values:
            raise ValueError(f"the {source} has no {name} (for {'/'.join(path)})")
        value = values[name]
        value = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, np.float32)
        value = value.T if transpose else value
        if value.shape != tuple(template.shape):
            raise ValueError(f"{name}: shape {value.shape}, expected {tuple(template.shape)}")
        flat[path] = value
    return traverse_util.unflatten_dict(flat)


def _export(params: Mapping, name_of) -> dict[str, np.ndarray]:
    named = {}
    for path, value in traverse_util.flatten_dict(params).items():
        name, transpose = name_of(path)
        value = np.asarray(value, np.float32)
        named[name] = np.ascontiguousarray(value.T if transpose else value)
    return named


def from_transformers(state_dict: Mapping, params_template: Mapping) -> dict:
    """Our params from an AlbertForPreTraining state dict (numpy or torch values)."""
    return _import(state_dict, params_template, _hf_key, "state dict")


def to_transformers(params: Mapping) -> dict[str, np.ndarray]:
    """An AlbertForPreTraining state dict, with the tied decoder written out."""
    state = _export(params, _hf_key)
    state["predictions.decoder.weight"] = state["albert.embeddings.word_embeddings.weight"]
    state["predictions.decoder.bias"] = state["predictions.bias"]
    return state


def transformers_config(config: AlbertConfig) -> dict:
    """config.json that transformers' AlbertConfig.from_pretrained reads."""
    return {
        "architectures": ["AlbertForPreTraining"],
        "model_type": "albert",
        "vocab_size": config.vocab_size,
        "embedding_size": config.embedding_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_hidden_groups": config.num_hidden_groups,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "inner_group_num": config.inner_group_num,
        "hidden_act": "gelu_new",
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "classifier_dropout_prob": config.classifier_dropout_prob,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": config.layer_norm_eps,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }


def config_from_transformers(hf_config: Mapping) -> AlbertConfig:
    if hf_config.get("hidden_act", "gelu_new") != "gelu_new":
        raise ValueError(f"hidden_act {hf_config['hidden_act']!r}: this ALBERT implements gelu_new")
    fields = AlbertConfig.__dataclass_fields__
    return AlbertConfig(**{k: v for k, v in hf_config.items() if k in fields})


def save_pretrained(directory: str, params: Mapping, config: AlbertConfig) -> None:
    """model.safetensors and config.json: `AlbertForPreTraining.from_pretrained(directory)` loads them."""
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    state = to_transformers(params)
    state.pop("predictions.decoder.weight")  # tied: safetensors stores each tensor once
    state.pop("predictions.decoder.bias")
    with atomic.local_path(os.path.join(directory, "model.safetensors")) as temporary:
        save_file(state, temporary, metadata={"format": "pt"})
    _write_text(os.path.join(directory, "config.json"), json.dumps(transformers_config(config), indent=2))


def _write_text(path: str, text: str) -> None:
    """Whole or not at all, as every other output (albertprep/core/atomic.py)."""
    with atomic.local_path(path) as temporary, open(temporary, "w") as f:
        f.write(text)


# Heads an AlbertForMaskedLM checkpoint lacks (the hub's albert/albert-*-v2 are such).
_HEADS_OUTSIDE_MASKED_LM = ("pooler", "sop_classifier")


def load_pretrained(directory: str) -> tuple[dict, AlbertConfig]:
    """Our params and config from a transformers checkpoint directory
    (model.safetensors, or pytorch_model.bin when torch is installed).

    An AlbertForMaskedLM checkpoint has no pooler or SOP head: those are
    initialised afresh (seed 0), with a warning, as transformers does when it
    loads one into AlbertForPreTraining. Anything else missing is an error.
    """
    import jax

    from albertprep.model.albert import init_params

    with open(os.path.join(directory, "config.json")) as f:
        config = config_from_transformers(json.load(f))
    safetensors_path = os.path.join(directory, "model.safetensors")
    bin_path = os.path.join(directory, "pytorch_model.bin")
    if os.path.exists(safetensors_path):
        from safetensors.numpy import load_file

        state = load_file(safetensors_path)
    elif os.path.exists(bin_path):
        try:
            import torch
        except ImportError as error:
            raise ImportError(f"{bin_path}: reading it needs torch (or convert it to model.safetensors)") from error
        state = torch.load(bin_path, map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{directory}: neither model.safetensors nor pytorch_model.bin")
    template = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    missing = {path[0] for path in traverse_util.flatten_dict(template) if _hf_key(path)[0] not in state}
    if missing and missing <= set(_HEADS_OUTSIDE_MASKED_LM):
        _LOG.warning("%s has no %s weights (an AlbertForMaskedLM checkpoint?): initialised afresh",
                     directory, " or ".join(sorted(missing)))
        fresh = traverse_util.flatten_dict(init_params(config, jax.random.key(0)))
        state = dict(state)
        for path, value in fresh.items():
            if path[0] in missing:
                name, transpose = _hf_key(path)
                state[name] = np.asarray(value).T if transpose else np.asarray(value)
    return from_transformers(state, template), config


# --- google-research/albert TF checkpoints ----------------------------------

_TF_LAYER = {
    "attention/query": "attention_1/self/query",
    "attention/key": "attention_1/self/key",
    "attention/value": "attention_1/self/value",
    "attention/dense": "attention_1/output/dense",
    "attention/LayerNorm": "LayerNorm",
    "ffn": "ffn_1/intermediate/dense",
    "ffn_output": "ffn_1/intermediate/output/dense",
    "full_layer_layer_norm": "LayerNorm_1",
}


def _tf_name(path: tuple[str, ...]) -> tuple[str, bool]:
    """(google-research/albert variable name, transpose?) of one of our paths."""
    *modules, leaf = path
    tf_leaf = {"kernel": "kernel", "bias": "bias", "scale": "gamma", "embedding": ""}[leaf]
    if modules[-1] == "LayerNorm" or modules[-1] == "full_layer_layer_norm":
        tf_leaf = {"scale": "gamma", "bias": "beta"}[leaf]
    head = modules[0]
    if head == "embeddings":
        name = f"bert/embeddings/{modules[1]}" + (f"/{tf_leaf}" if tf_leaf else "")
    elif head == "encoder" and modules[1] == "embedding_hidden_mapping_in":
        name = f"bert/encoder/embedding_hidden_mapping_in/{tf_leaf}"
    elif head == "encoder":
        group, inner = _GROUP_LAYER.fullmatch(modules[1]).groups()
        layer = _TF_LAYER["/".join(modules[2:])]
        name = f"bert/encoder/transformer/group_{group}/inner_group_{inner}/{layer}/{tf_leaf}"
    elif head == "pooler":
        name = f"bert/pooler/dense/{tf_leaf}"
    elif head == "predictions" and len(modules) == 1:
        name = "cls/predictions/output_bias"
    elif head == "predictions":
        name = f"cls/predictions/transform/{modules[1]}/{tf_leaf}"
    else:  # sop_classifier: output_weights are [2, H]
        return ("cls/seq_relationship/output_weights", True) if leaf == "kernel" else (
            "cls/seq_relationship/output_bias", False)
    return name, False


def from_tf_variables(variables: Mapping[str, np.ndarray], params_template: Mapping) -> dict:
    """Our params from google-research/albert's variables (name → array),
    e.g. `{n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}`
    of `tf.train.load_checkpoint(path)`; optimizer slots are ignored."""
    return _import(variables, params_template, _tf_name, "checkpoint")


def to_tf_variables(params: Mapping) -> dict[str, np.ndarray]:
    return _export(params, _tf_name)


def albert_json(config: AlbertConfig) -> dict:
    """google-research/albert's albert_config.json for `config` (its "gelu" is gelu_new)."""
    keys = ("attention_probs_dropout_prob", "hidden_dropout_prob", "embedding_size", "hidden_size",
            "initializer_range", "intermediate_size", "max_position_embeddings", "num_attention_heads",
            "num_hidden_layers", "num_hidden_groups", "inner_group_num", "type_vocab_size", "vocab_size")
    return {"hidden_act": "gelu", "net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0,
            "down_scale_factor": 1, **{key: getattr(config, key) for key in keys}}


def save_tf_checkpoint(directory: str, params: Mapping, config: AlbertConfig, step: int = 0) -> str:
    """model.ckpt-STEP (google-research/albert's variable names), its `checkpoint`
    file and albert_config.json: what that repository's run_classifier.py and
    run_squad.py take as --init_checkpoint and --albert_config_file. Written
    without TensorFlow; returns the checkpoint prefix."""
    from albertprep.model.tfcheckpoint import write_checkpoint

    os.makedirs(directory, exist_ok=True)
    name = f"model.ckpt-{step}"
    write_checkpoint(os.path.join(directory, name),
                     to_tf_variables(params) | {"global_step": np.array(step, np.int64)})
    # the checkpoint's files first, then the `checkpoint` file that points at them
    _write_text(os.path.join(directory, "albert_config.json"), json.dumps(albert_json(config), indent=2))
    _write_text(os.path.join(directory, "checkpoint"),
                f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    return os.path.join(directory, name)


def load_tf_checkpoint(path: str, config: AlbertConfig) -> dict:
    """Our params from a google-research/albert checkpoint (a prefix, its .index, or its directory).

    Read by model/tfcheckpoint.py, without TensorFlow; only the model's
    variables are read, not the optimizer's slots.
    """
    from albertprep.model.tfcheckpoint import TFCheckpoint

    return _tf_params(TFCheckpoint(path), config)


def _tf_params(checkpoint, config: AlbertConfig) -> dict:
    """Our params from an opened model.tfcheckpoint.TFCheckpoint."""
    import jax

    from albertprep.model.albert import init_params
    from albertprep.model.tfcheckpoint import CheckpointError

    template = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    names = [_tf_name(leaf_path)[0] for leaf_path in traverse_util.flatten_dict(template)]
    missing = [name for name in names if name not in checkpoint.entries]
    if missing:
        raise CheckpointError(f"{checkpoint.index_path} lacks {len(missing)} of the {len(names)} variables of "
                              f"this config, e.g. {missing[0]}: another config or not an ALBERT checkpoint?")
    return from_tf_variables(checkpoint.read_all(names), template)


def config_from_albert_json(albert_config: Mapping) -> AlbertConfig:
    """google-research/albert's albert_config.json, shipped beside its checkpoints.

    Its "gelu" is the tanh approximation (gelu_new); the structure options
    that the released models leave at their defaults are refused otherwise.
    """
    if albert_config.get("hidden_act", "gelu") not in ("gelu", "gelu_new"):
        raise ValueError(f"hidden_act {albert_config['hidden_act']!r}: this ALBERT implements gelu (tanh)")
    for key, default in (("net_structure_type", 0), ("down_scale_factor", 1), ("gap_size", 0),
                         ("num_memory_blocks", 0), ("layers_to_keep", [])):
        if albert_config.get(key, default) != default:
            raise ValueError(f"{key} {albert_config[key]!r}: only the released structure ({default!r}) is supported")
    fields = AlbertConfig.__dataclass_fields__
    return AlbertConfig(**{k: v for k, v in albert_config.items() if k in fields})


def _is_run(path: str) -> bool:
    config_json = os.path.join(path, "config.json")
    if not (os.path.isdir(path) and os.path.exists(config_json)):
        return False
    with open(config_json) as f:
        return "model_config" in json.load(f)


def _run_checkpoints(workdir: str):
    import grain.python as grain
    import orbax.checkpoint as ocp

    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                                 item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                                                "data": grain.PyGrainCheckpointHandler()})  # unread: quiets orbax


def saved_step(path: str) -> int | None:
    """The training step of what `load_weights(path)` reads without a step:
    the latest checkpoint of a pretrain workdir; None for other sources."""
    if not _is_run(path):
        return None
    manager = _run_checkpoints(path)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def _run_weights(workdir: str, step: int | None) -> tuple[dict, AlbertConfig]:
    """The params of an `albertprep pretrain` workdir's checkpoint (the latest, or `step`).

    Only the parameters (not the optimizer's moments), restored whole onto
    the CPU whatever topology saved them (FSDP, several hosts): the target is
    built from the checkpoint's own shapes and dtypes, since orbax would
    otherwise insist on the saving mesh.
    """
    import jax
    import orbax.checkpoint as ocp

    with open(os.path.join(workdir, "config.json")) as f:
        config = AlbertConfig(**json.load(f)["model_config"])
    manager = _run_checkpoints(workdir)
    try:
        step = manager.latest_step() if step is None else step
        if step is None or step not in manager.all_steps():
            raise FileNotFoundError(f"{workdir}/checkpoints: no checkpoint at step {step} "
                                    f"(saved: {list(manager.all_steps()) or 'none'})")
        saved = manager.item_metadata(step)["state"]
        cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
        target = {"params": jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype),
                                                   getattr(saved, "tree", saved)["params"])}
        restore_args = jax.tree_util.tree_map(lambda _: ocp.ArrayRestoreArgs(sharding=cpu), target)
        state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=target, restore_args=restore_args, partial_restore=True))).state
    finally:
        manager.close()
    return jax.tree_util.tree_map(np.asarray, state["params"]), config


def load_weights(path: str, config: AlbertConfig | None = None, step: int | None = None) -> tuple[dict, AlbertConfig]:
    """(params, config) from whatever `path` holds, told apart by its files:

    - an `albertprep pretrain` workdir (config.json with a model_config, and
      checkpoints/): its latest checkpoint, or `step`;
    - a transformers directory (config.json, model.safetensors or
      pytorch_model.bin);
    - a google-research/albert TF checkpoint (a prefix, its .index, or its
      directory): the config from albert_config.json beside it, else
      `config` with the vocabulary and positions the checkpoint's
      embeddings have.
    """
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise FileNotFoundError(f"{path}: not found (a pretrain workdir, a transformers directory or a TF "
                                "checkpoint prefix were expected)")
    config_json = os.path.join(path, "config.json")
    if os.path.isdir(path) and os.path.exists(config_json):
        with open(config_json) as f:
            described = json.load(f)
        if "model_config" in described:
            return _run_weights(path, step)
        if step is not None:
            raise ValueError(f"{path} is a transformers directory: it has no steps to choose from")
        return load_pretrained(path)
    if step is not None:
        raise ValueError(f"{path} is not an albertprep pretrain workdir: it has no steps to choose from")
    from albertprep.model.tfcheckpoint import TFCheckpoint

    checkpoint = TFCheckpoint(path)
    albert_json = os.path.join(os.path.dirname(checkpoint.prefix), "albert_config.json")
    if os.path.exists(albert_json):
        with open(albert_json) as f:
            config = config_from_albert_json(json.load(f))
    elif config is None:
        raise ValueError(f"{checkpoint.prefix}: no albert_config.json beside it; name the config (e.g. --config base)")
    else:
        import dataclasses

        shapes = {name: entry.shape for name, entry in checkpoint.entries.items()}
        config = dataclasses.replace(
            config, vocab_size=shapes.get("bert/embeddings/word_embeddings", (config.vocab_size,))[0],
            max_position_embeddings=shapes.get("bert/embeddings/position_embeddings",
                                               (config.max_position_embeddings,))[0])
    return _tf_params(checkpoint, config), config
