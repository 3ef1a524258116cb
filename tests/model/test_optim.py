"""ALBERT's LAMB step, against the arithmetic of lamb_optimizer.py by hand."""

import jax.numpy as jnp
import numpy as np
import optax

from albertprep.model.optim import OptimizerConfig, albert_schedule, applied_schedule, decay_mask, make_optimizer

PARAMS = {
    "dense": {"kernel": np.array([[0.5, -1.0], [2.0, 0.25]], np.float32), "bias": np.array([0.1, -0.2], np.float32)},
    "LayerNorm": {"scale": np.array([1.0, 1.5], np.float32), "bias": np.array([0.0, 0.3], np.float32)},
}
GRADS = [
    {"dense": {"kernel": np.array([[0.3, 0.1], [-0.2, 0.4]], np.float32), "bias": np.array([0.5, -0.5], np.float32)},
     "LayerNorm": {"scale": np.array([0.2, -0.1], np.float32), "bias": np.array([0.05, 0.0], np.float32)}},
    {"dense": {"kernel": np.array([[3.0, -2.0], [1.0, 0.5]], np.float32), "bias": np.array([0.0, 1.0], np.float32)},
     "LayerNorm": {"scale": np.array([-0.4, 0.6], np.float32), "bias": np.array([0.1, 0.2], np.float32)}},
]
CONFIG = OptimizerConfig(learning_rate=0.1, warmup_steps=2, total_steps=10, weight_decay=0.01)


def _by_hand(params, grads_seq, config):
    """lamb_optimizer.py, written out for numpy arrays."""
    names = [("dense", "kernel"), ("dense", "bias"), ("LayerNorm", "scale"), ("LayerNorm", "bias")]
    p = {n: params[n[0]][n[1]].astype(np.float64) for n in names}
    m = {n: np.zeros_like(p[n]) for n in names}
    v = {n: np.zeros_like(p[n]) for n in names}
    for step, grads in enumerate(grads_seq):
        g = {n: grads[n[0]][n[1]].astype(np.float64) for n in names}
        norm = np.sqrt(sum((x ** 2).sum() for x in g.values()))
        g = {n: x * (1.0 / max(norm, 1.0)) for n, x in g.items()}  # clip_by_global_norm(1.0)
        lr = 0.1 * step / 2 if step < 2 else 0.1 * (1 - step / 10)
        for n in names:
            m[n] = 0.9 * m[n] + 0.1 * g[n]
            v[n] = 0.999 * v[n] + 0.001 * g[n] ** 2
            update = m[n] / (np.sqrt(v[n]) + 1e-6)
            excluded = n[0] == "LayerNorm" or n[1] == "bias"
            ratio = 1.0
            if not excluded:
                update = update + 0.01 * p[n]
                w_norm, u_norm = np.linalg.norm(p[n]), np.linalg.norm(update)
                ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
            p[n] = p[n] - ratio * lr * update
    return p


def test_lamb_matches_albert_arithmetic():
    optimizer = make_optimizer(CONFIG)
    params = {k: {n: jnp.asarray(a) for n, a in v.items()} for k, v in PARAMS.items()}
    state = optimizer.init(params)
    grads_seq = GRADS + GRADS  # four steps: warmup (lr 0 then 0.05), then decay
    for grads in grads_seq:
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    expected = _by_hand(PARAMS, grads_seq, CONFIG)
    for (module, leaf), value in expected.items():
        np.testing.assert_allclose(np.asarray(params[module][leaf]), value, rtol=2e-6, atol=1e-7)
    # and it is not optax.lamb (bias correction, trust ratio on LayerNorm and bias)
    lamb = optax.lamb(albert_schedule(CONFIG), eps=1e-6, weight_decay=0.01, mask=decay_mask)
    other = {k: {n: jnp.asarray(a) for n, a in v.items()} for k, v in PARAMS.items()}
    other_state = lamb.init(other)
    for grads in grads_seq:
        updates, other_state = lamb.update(grads, other_state, other)
        other = optax.apply_updates(other, updates)
    assert not np.allclose(np.asarray(other["dense"]["kernel"]), expected[("dense", "kernel")], rtol=1e-3)


def test_schedule_is_albert_warmup_and_linear_decay():
    schedule = albert_schedule(OptimizerConfig(learning_rate=1.0, warmup_steps=10, total_steps=100))
    np.testing.assert_allclose([float(schedule(s)) for s in (0, 5, 10, 55, 100, 120)], [0, 0.5, 0.9, 0.45, 0, 0])


def test_decay_mask_excludes_layer_norm_and_biases():
    mask = decay_mask({"encoder": {"full_layer_layer_norm": {"scale": 1, "bias": 1}, "ffn": {"kernel": 1, "bias": 1}},
                       "embeddings": {"word_embeddings": {"embedding": 1}, "LayerNorm": {"scale": 1}},
                       "predictions": {"bias": 1}})
    assert mask == {"encoder": {"full_layer_layer_norm": {"scale": False, "bias": False},
                                "ffn": {"kernel": True, "bias": False}},
                    "embeddings": {"word_embeddings": {"embedding": True}, "LayerNorm": {"scale": False}},
                    "predictions": {"bias": False}}


def test_gradient_accumulation_averages_micro_batches():
    config = OptimizerConfig(learning_rate=0.1, warmup_steps=0, total_steps=10, accumulation_steps=2)
    accumulated = make_optimizer(config)
    single = make_optimizer(OptimizerConfig(learning_rate=0.1, warmup_steps=0, total_steps=10))
    params = {k: {n: jnp.asarray(a) for n, a in v.items()} for k, v in PARAMS.items()}
    state = accumulated.init(params)
    p = params
    for grads in GRADS:
        updates, state = accumulated.update(grads, state, p)
        p = optax.apply_updates(p, updates)
    mean = {k: {n: (GRADS[0][k][n] + GRADS[1][k][n]) / 2 for n in v} for k, v in GRADS[0].items()}
    updates, _ = single.update(mean, single.init(params), params)
    expected = optax.apply_updates(params, updates)
    for k in expected:
        for n in expected[k]:
            np.testing.assert_allclose(np.asarray(p[k][n]), np.asarray(expected[k][n]), rtol=1e-5, atol=1e-7)


def test_accumulation_keeps_the_schedule_in_micro_steps():
    """k=2 micro-batches an update over 8 micro-steps with 2 of warmup is the
    plain optimizer over 4 updates with 1 of warmup, fed the mean gradients."""
    accumulated = make_optimizer(OptimizerConfig(learning_rate=0.1, warmup_steps=2, total_steps=8,
                                                 accumulation_steps=2))
    plain = make_optimizer(OptimizerConfig(learning_rate=0.1, warmup_steps=1, total_steps=4))
    params = {k: {n: jnp.asarray(a) for n, a in v.items()} for k, v in PARAMS.items()}
    a_params, a_state = params, accumulated.init(params)
    p_params, p_state = params, plain.init(params)
    micro = GRADS * 4
    for step, grads in enumerate(micro):
        updates, a_state = accumulated.update(grads, a_state, a_params)
        a_params = optax.apply_updates(a_params, updates)
        if step % 2 == 1:
            mean = {k: {n: (micro[step - 1][k][n] + grads[k][n]) / 2 for n in v} for k, v in grads.items()}
            updates, p_state = plain.update(mean, p_state, p_params)
            p_params = optax.apply_updates(p_params, updates)
    for k in p_params:
        for n in p_params[k]:
            np.testing.assert_allclose(np.asarray(a_params[k][n]), np.asarray(p_params[k][n]), rtol=1e-5, atol=1e-7)
    rate = applied_schedule(OptimizerConfig(learning_rate=1.0, warmup_steps=2, total_steps=8, accumulation_steps=2))
    np.testing.assert_allclose([float(rate(s)) for s in range(8)], [0, 0, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25])
