"""ALBERT in Flax: factorised embeddings, cross-layer sharing, MLM and SOP heads.

Equivalent to google-research/albert and to transformers' AlbertForPreTraining
(the parity test converts one into the other). Parameter names follow
transformers' so that conversion is a rename and a transpose.

Shape suffixes: b batch, t sequence, d hidden (H), e embedding (E),
n heads, h head size, f feed-forward (intermediate), p masked positions,
v vocabulary. Parameters are fp32; `dtype` is the compute type (bf16 on
accelerators); logits come out in fp32.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
from flax import linen as nn

from albertprep.model.config import AlbertConfig


def gelu_new(x):
    """ALBERT's gelu: the tanh approximation."""
    return jax.nn.gelu(x, approximate=True)


def _dense(config: AlbertConfig, features: int, dtype: jnp.dtype, name: str) -> nn.Dense:
    """Every dense layer of ALBERT: normal(initializer_range) kernels, zero biases."""
    return nn.Dense(features, dtype=dtype, kernel_init=nn.initializers.normal(config.initializer_range), name=name)


CUDNN_REFUSED = "cuDNN attention unavailable"  # the fallback warning's text; the benchmark looks for it


def attend(q_btnh: jax.Array, k_btnh: jax.Array, v_btnh: jax.Array, key_mask_bt: jax.Array,
           implementation: str | None = None) -> jax.Array:
    """Softmax attention over the unmasked keys: cuDNN's fused flash attention
    on a GPU in half precision, XLA's elsewhere (`implementation` forces one).

    jax.nn.dot_product_attention takes XLA unless told otherwise, so the
    choice is made here. cuDNN is given the padding as key lengths, which is
    the same mask because ALBERT pads only at the end (the CPU tests check the
    two agree). Where cuDNN refuses at trace time (an older GPU or cuDNN, a
    head size beyond its limit), XLA serves, with a warning.
    """
    if implementation is None:
        on_gpu = jax.default_backend() == "gpu" and q_btnh.dtype in (jnp.bfloat16, jnp.float16)
        implementation = "cudnn" if on_gpu else "xla"
    if implementation == "cudnn":
        try:
            return jax.nn.dot_product_attention(q_btnh, k_btnh, v_btnh, implementation="cudnn",
                                                key_value_seq_lengths=key_mask_bt.sum(-1, dtype=jnp.int32))
        except (NotImplementedError, RuntimeError, ValueError) as error:
            warnings.warn(f"{CUDNN_REFUSED} ({error}); using XLA's", stacklevel=2)
    return jax.nn.dot_product_attention(q_btnh, k_btnh, v_btnh, mask=key_mask_bt[:, None, None, :],
                                        implementation="xla")


class Embeddings(nn.Module):
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, input_ids_bt, segment_ids_bt, deterministic: bool):
        c = self.config
        init = nn.initializers.normal(c.initializer_range)
        word = nn.Embed(c.vocab_size, c.embedding_size, embedding_init=init, name="word_embeddings")
        position = nn.Embed(c.max_position_embeddings, c.embedding_size, embedding_init=init,
                            name="position_embeddings")
        token_type = nn.Embed(c.type_vocab_size, c.embedding_size, embedding_init=init,
                              name="token_type_embeddings")
        positions_t = jnp.arange(input_ids_bt.shape[1])
        x_bte = word(input_ids_bt) + position(positions_t)[None] + token_type(segment_ids_bt)
        x_bte = nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=self.dtype, name="LayerNorm")(x_bte)
        return nn.Dropout(c.hidden_dropout_prob)(x_bte, deterministic=deterministic).astype(self.dtype)


class Attention(nn.Module):
    """Self-attention with its residual and post-LayerNorm (ALBERT's order)."""

    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_btd, key_mask_bt, deterministic: bool):
        c = self.config
        b, t, _ = x_btd.shape
        q_btnh, k_btnh, v_btnh = (_dense(c, c.hidden_size, self.dtype, n)(x_btd)
                                  .reshape(b, t, c.num_attention_heads, c.head_size)
                                  for n in ("query", "key", "value"))
        if c.attention_probs_dropout_prob and not deterministic:
            raise NotImplementedError("attention dropout (ALBERT v1) is not supported: v2 models use none")
        context_btnh = attend(q_btnh, k_btnh, v_btnh, key_mask_bt)
        out_btd = _dense(c, c.hidden_size, self.dtype, "dense")(context_btnh.reshape(b, t, c.hidden_size))
        out_btd = nn.Dropout(c.hidden_dropout_prob)(out_btd, deterministic=deterministic)
        return nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=self.dtype, name="LayerNorm")(x_btd + out_btd)


class Layer(nn.Module):
    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_btd, key_mask_bt, deterministic: bool):
        c = self.config
        attended_btd = Attention(c, self.dtype, name="attention")(x_btd, key_mask_bt, deterministic)
        h_btf = gelu_new(_dense(c, c.intermediate_size, self.dtype, "ffn")(attended_btd))
        out_btd = _dense(c, c.hidden_size, self.dtype, "ffn_output")(h_btf)
        out_btd = nn.Dropout(c.hidden_dropout_prob)(out_btd, deterministic=deterministic)
        return nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=self.dtype,
                            name="full_layer_layer_norm")(out_btd + attended_btd)


class Encoder(nn.Module):
    """E → H, then num_hidden_layers applications of the shared layer groups."""

    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    remat: bool = False  # recompute activations in the backward pass: memory for time

    @nn.compact
    def __call__(self, x_bte, key_mask_bt, deterministic: bool):
        c = self.config
        x_btd = _dense(c, c.hidden_size, self.dtype, "embedding_hidden_mapping_in")(x_bte)
        layer_class = nn.remat(Layer, static_argnums=(3,)) if self.remat else Layer
        groups = [[layer_class(c, self.dtype, name=f"albert_layer_groups_{g}_albert_layers_{i}")
                   for i in range(c.inner_group_num)] for g in range(c.num_hidden_groups)]
        layers_per_group = c.num_hidden_layers // c.num_hidden_groups
        for step in range(c.num_hidden_layers):
            for layer in groups[step // layers_per_group]:  # the same parameters, step after step
                x_btd = layer(x_btd, key_mask_bt, deterministic)
        return x_btd


class MLMHead(nn.Module):
    """Dense H → E, gelu, LayerNorm, then the decoder tied to the word embeddings."""

    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_bpd, word_embeddings_ve):
        c = self.config
        x_bpe = _dense(c, c.embedding_size, self.dtype, "dense")(x_bpd)
        x_bpe = nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=jnp.float32, name="LayerNorm")(gelu_new(x_bpe))
        bias_v = self.param("bias", nn.initializers.zeros, (c.vocab_size,))
        return x_bpe.astype(jnp.float32) @ word_embeddings_ve.T.astype(jnp.float32) + bias_v


class AlbertForPreTraining(nn.Module):
    """Returns (MLM logits at the masked positions [b, p, v], SOP logits [b, 2]), fp32."""

    config: AlbertConfig
    dtype: jnp.dtype = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, input_ids_bt, input_mask_bt, segment_ids_bt, masked_lm_positions_bp,
                 deterministic: bool = True):
        c = self.config
        embeddings = Embeddings(c, self.dtype, name="embeddings")
        x_bte = embeddings(input_ids_bt, segment_ids_bt, deterministic)
        x_btd = Encoder(c, self.dtype, self.remat, name="encoder")(x_bte, input_mask_bt.astype(bool), deterministic)
        pooled_bd = jnp.tanh(_dense(c, c.hidden_size, self.dtype, "pooler")(x_btd[:, 0]))
        # the MLM head runs only where there is something to predict
        masked_bpd = jnp.take_along_axis(x_btd, masked_lm_positions_bp[..., None], axis=1)
        word_embeddings_ve = embeddings.variables["params"]["word_embeddings"]["embedding"]
        mlm_logits_bpv = MLMHead(c, self.dtype, name="predictions")(masked_bpd, word_embeddings_ve)
        pooled_bd = nn.Dropout(c.classifier_dropout_prob)(pooled_bd, deterministic=deterministic)
        sop_logits_b2 = _dense(c, 2, jnp.float32, "sop_classifier")(pooled_bd.astype(jnp.float32))
        return mlm_logits_bpv, sop_logits_b2


def init_params(config: AlbertConfig, rng: jax.Array, seq_len: int = 16, predictions: int = 4) -> dict:
    model = AlbertForPreTraining(config)
    ids = jnp.zeros((1, seq_len), jnp.int32)
    positions = jnp.zeros((1, predictions), jnp.int32)
    return model.init(rng, ids, jnp.ones_like(ids), ids, positions)["params"]
