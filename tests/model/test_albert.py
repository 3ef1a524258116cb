"""Flax ALBERT against transformers' AlbertForPreTraining, on real tokens."""

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ALBERT_MODEL, BOOKS

from albertprep.core.records import MaskingConfig, MaskingVocab, mask_instance
from albertprep.core.tokenizer import Tokenizer
from albertprep.model import convert
from albertprep.model.albert import AlbertForPreTraining, attend, init_params
from albertprep.model.config import get_config
from albertprep.model.flops import forward_flops
from albertprep.pipelines.books import decode, parse_book
from albertprep.pipelines.sentences import split_sentences

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def real_batch():
    """Two ALBERT instances from Emma, tokenised and masked by the pipeline's code."""
    tokenizer = Tokenizer.from_file(str(ALBERT_MODEL))
    book = parse_book(decode((BOOKS / "austen-emma.txt").read_bytes()).text, "emma")
    sentences = [s for p in book.paragraphs[:40] for s in split_sentences(p)]
    vocab = MaskingVocab(4, tokenizer.random_ids)
    batch = {k: [] for k in ("input_ids", "input_mask", "segment_ids", "positions")}
    seq_len, predictions = 96, 12
    for start in (0, 10):
        a, b = tokenizer.encode(sentences[start: start + 3]), tokenizer.encode(sentences[start + 3: start + 5])
        ids_a, ids_b = np.concatenate(a)[:50], np.concatenate(b)[:40]
        ids = np.concatenate([[2], ids_a, [3], ids_b, [3]])
        masked, positions, _ = mask_instance(ids, tokenizer.word_start[ids], len(ids_a), np.random.default_rng(start),
                                             MaskingConfig(predictions, 0.15, 3), vocab)
        pad = seq_len - len(ids)
        batch["input_ids"].append(np.pad(masked, (0, pad)))
        batch["input_mask"].append(np.pad(np.ones(len(ids), np.int64), (0, pad)))
        batch["segment_ids"].append(np.pad(np.r_[np.zeros(len(ids_a) + 2), np.ones(len(ids_b) + 1)], (0, pad)))
        batch["positions"].append(np.pad(positions, (0, predictions - len(positions))))
    return {k: np.stack(v).astype(np.int64) for k, v in batch.items()}


def _reference(config, seed=0):
    torch.manual_seed(seed)
    hf = transformers.AlbertForPreTraining(transformers.AlbertConfig(**convert.transformers_config(config)))
    return hf.eval()


def _hf_logits(hf, batch):
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(batch["input_ids"]), attention_mask=torch.tensor(batch["input_mask"]),
                 token_type_ids=torch.tensor(batch["segment_ids"]))
    mlm = np.take_along_axis(out.prediction_logits.numpy(), batch["positions"][..., None], axis=1)
    return mlm, out.sop_logits.numpy()


def _our_logits(params, config, batch, dtype=jnp.float32):
    model = AlbertForPreTraining(config, dtype=dtype)
    return model.apply({"params": params}, *(jnp.asarray(batch[k]) for k in
                                             ("input_ids", "input_mask", "segment_ids", "positions")))


def _template(config):
    return jax.eval_shape(lambda: init_params(config, jax.random.key(0)))


@pytest.mark.parametrize("name", ["tiny", "base"])
def test_logits_equal_transformers_in_fp32(name, real_batch):
    config = get_config(name)
    hf = _reference(config)
    params = convert.from_transformers(hf.state_dict(), _template(config))
    hf_mlm, hf_sop = _hf_logits(hf, real_batch)
    mlm, sop = _our_logits(params, config, real_batch)
    assert mlm.shape == hf_mlm.shape and mlm.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(mlm), hf_mlm, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(sop), hf_sop, atol=1e-5, rtol=0)
    assert np.abs(hf_mlm).max() > 0.1  # the comparison is not of zeros


def test_export_then_import_is_exact_and_transformers_loads_it(tmp_path, real_batch):
    config = get_config("tiny")
    params = init_params(config, jax.random.key(1))
    convert.save_pretrained(str(tmp_path), params, config)
    loaded, loaded_config = convert.load_pretrained(str(tmp_path))
    assert loaded_config == config
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), params, loaded)
    hf = transformers.AlbertForPreTraining.from_pretrained(str(tmp_path)).eval()
    assert hf.predictions.decoder.weight.data_ptr() == hf.albert.embeddings.word_embeddings.weight.data_ptr()
    hf_mlm, hf_sop = _hf_logits(hf, real_batch)
    mlm, sop = _our_logits(params, config, real_batch)
    np.testing.assert_allclose(np.asarray(mlm), hf_mlm, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(sop), hf_sop, atol=1e-5, rtol=0)


def test_a_pytorch_bin_and_a_masked_lm_checkpoint_load(tmp_path, real_batch, caplog):
    """pytorch_model.bin is read as model.safetensors is; an AlbertForMaskedLM
    directory (the hub's albert-*-v2 are such) gets fresh pooler and SOP heads
    and gives transformers' MLM logits."""
    config = get_config("tiny")
    hf = _reference(config, seed=4)
    (tmp_path / "bin").mkdir()
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    (tmp_path / "bin" / "config.json").write_text(json.dumps(convert.transformers_config(config)))
    loaded, _ = convert.load_pretrained(str(tmp_path / "bin"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded,
                           convert.from_transformers(hf.state_dict(), _template(config)))

    torch.manual_seed(5)
    masked_lm = transformers.AlbertForMaskedLM(transformers.AlbertConfig(**convert.transformers_config(config)))
    masked_lm.save_pretrained(str(tmp_path / "mlm"))
    with caplog.at_level("WARNING"):
        params, _ = convert.load_pretrained(str(tmp_path / "mlm"))
    assert "has no pooler or sop_classifier weights" in caplog.text
    with torch.no_grad():
        hf_mlm_btv = masked_lm.eval()(input_ids=torch.tensor(real_batch["input_ids"]),
                                      attention_mask=torch.tensor(real_batch["input_mask"]),
                                      token_type_ids=torch.tensor(real_batch["segment_ids"])).logits.numpy()
    mlm_bpv, _ = _our_logits(params, config, real_batch)
    hf_mlm_bpv = np.take_along_axis(hf_mlm_btv, real_batch["positions"][..., None], axis=1)
    np.testing.assert_allclose(np.asarray(mlm_bpv), hf_mlm_bpv, atol=1e-5, rtol=0)


# The variables of google-research/albert's released albert_base v2 checkpoint
# (model.ckpt-best), without the optimizer slots and global_step.
ALBERT_BASE_VARIABLES = {
    "bert/embeddings/word_embeddings": (30000, 128), "bert/embeddings/position_embeddings": (512, 128),
    "bert/embeddings/token_type_embeddings": (2, 128), "bert/embeddings/LayerNorm/gamma": (128,),
    "bert/embeddings/LayerNorm/beta": (128,), "bert/encoder/embedding_hidden_mapping_in/kernel": (128, 768),
    "bert/encoder/embedding_hidden_mapping_in/bias": (768,), "bert/pooler/dense/kernel": (768, 768),
    "bert/pooler/dense/bias": (768,), "cls/predictions/output_bias": (30000,),
    "cls/predictions/transform/dense/kernel": (768, 128), "cls/predictions/transform/dense/bias": (128,),
    "cls/predictions/transform/LayerNorm/gamma": (128,), "cls/predictions/transform/LayerNorm/beta": (128,),
    "cls/seq_relationship/output_weights": (2, 768), "cls/seq_relationship/output_bias": (2,),
    **{f"bert/encoder/transformer/group_0/inner_group_0/{name}": shape for name, shape in {
        "attention_1/self/query/kernel": (768, 768), "attention_1/self/query/bias": (768,),
        "attention_1/self/key/kernel": (768, 768), "attention_1/self/key/bias": (768,),
        "attention_1/self/value/kernel": (768, 768), "attention_1/self/value/bias": (768,),
        "attention_1/output/dense/kernel": (768, 768), "attention_1/output/dense/bias": (768,),
        "LayerNorm/gamma": (768,), "LayerNorm/beta": (768,),
        "ffn_1/intermediate/dense/kernel": (768, 3072), "ffn_1/intermediate/dense/bias": (3072,),
        "ffn_1/intermediate/output/dense/kernel": (3072, 768), "ffn_1/intermediate/output/dense/bias": (768,),
        "LayerNorm_1/gamma": (768,), "LayerNorm_1/beta": (768,)}.items()},
}


def test_tf_checkpoint_names_are_google_research_albert():
    config = get_config("base")
    params = init_params(config, jax.random.key(2))
    variables = convert.to_tf_variables(params)
    assert {k: v.shape for k, v in variables.items()} == ALBERT_BASE_VARIABLES
    reloaded = convert.from_tf_variables(variables | {"global_step": np.int64(1)}, _template(config))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), params, reloaded)


@pytest.mark.parametrize("name, seq_len", [("base", 128), ("base", 512), ("large", 128)])
def test_flops_counter_agrees_with_xla(name, seq_len):
    config = get_config(name)
    model = AlbertForPreTraining(config)
    ids = jax.ShapeDtypeStruct((1, seq_len), jnp.int32)
    positions = jax.ShapeDtypeStruct((1, 20), jnp.int32)
    compiled = jax.jit(lambda p, i, m: model.apply({"params": p}, i, i, i, m)).lower(
        _template(config), ids, positions).compile()
    cost = compiled.cost_analysis()
    xla_flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    ours = forward_flops(config, seq_len, 20)
    assert ours <= xla_flops <= ours * 1.02  # XLA adds the elementwise work


def test_bf16_compute_keeps_fp32_params_and_logits(real_batch):
    config = get_config("tiny")
    hf = _reference(config, seed=3)
    params = convert.from_transformers(hf.state_dict(), _template(config))
    mlm, sop = _our_logits(params, config, real_batch, dtype=jnp.bfloat16)
    assert mlm.dtype == jnp.float32 and sop.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    hf_mlm, _ = _hf_logits(hf, real_batch)
    np.testing.assert_allclose(np.asarray(mlm), hf_mlm, atol=0.05)  # bf16: close, not equal


def test_the_key_lengths_cudnn_is_given_mask_what_the_padding_mask_does(real_batch):
    """On a GPU, attention goes to cuDNN with the padding as key lengths; that
    is the same mask for ALBERT's end padding (the real batch has some).
    cuDNN itself needs a GPU: here XLA evaluates both formulations."""
    mask_bt = jnp.asarray(real_batch["input_mask"], bool)
    assert not mask_bt.all()  # there is padding to mask
    b, t = mask_bt.shape
    q_btnh, k_btnh, v_btnh = jax.random.normal(jax.random.key(0), (3, b, t, 4, 8))
    with_mask = attend(q_btnh, k_btnh, v_btnh, mask_bt, implementation="xla")
    with_lengths = jax.nn.dot_product_attention(q_btnh, k_btnh, v_btnh, implementation="xla",
                                                key_value_seq_lengths=mask_bt.sum(-1, dtype=jnp.int32))
    np.testing.assert_allclose(np.asarray(with_lengths), np.asarray(with_mask), atol=1e-6)
    unmasked = attend(q_btnh, k_btnh, v_btnh, jnp.ones_like(mask_bt), implementation="xla")
    assert np.abs(np.asarray(unmasked) - np.asarray(with_mask)).max() > 0.1  # the mask matters
    # bf16 on the CPU goes straight to XLA (no cuDNN attempt, so no fallback
    # warning); on a GPU to cuDNN, which takes this shape: no warning either
    half = [x.astype(jnp.bfloat16) for x in (q_btnh, k_btnh, v_btnh)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = attend(*half, mask_bt)
    np.testing.assert_allclose(np.asarray(chosen, np.float32), np.asarray(with_mask), atol=0.05)
    if jax.default_backend() == "cpu":
        with pytest.warns(UserWarning, match="cuDNN attention unavailable"):
            forced = attend(*half, mask_bt, implementation="cudnn")  # refused here, so XLA serves
        np.testing.assert_array_equal(np.asarray(forced), np.asarray(chosen))
