"""TF checkpoints read without TensorFlow, from a fixture that TensorFlow 2.21 wrote.

tests/fixtures/make_tf_checkpoint.py wrote the fixture from an integer
formula, so these tests know every value TensorFlow was given; it also
checked, at writing time, that TensorFlow's reader and transformers 4.x's
`load_tf_weights_in_albert` agree with ours.
"""

import dataclasses
import json
import os
import shutil

import jax
import numpy as np
import pytest
from fixtures.make_tf_checkpoint import (
    FIXTURE,
    PREFIX,
    SLOTTED,
    SMALL,
    expected_variables,
    fixture_config,
    small_tensors,
)

from albertprep import cli
from albertprep.model import convert
from albertprep.model.albert import AlbertForPreTraining
from albertprep.model.tfcheckpoint import CheckpointError, TFCheckpoint, checkpoint_prefix, write_checkpoint


@pytest.fixture(scope="module")
def expected():
    return expected_variables()


def test_every_tensor_reads_back_as_tensorflow_was_given_it(expected):
    checkpoint = TFCheckpoint(os.path.join(FIXTURE, PREFIX))
    assert checkpoint.num_shards == 2 and not checkpoint.big_endian
    assert {entry.shard for entry in checkpoint.entries.values()} == {0, 1}
    got = checkpoint.read_all()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert got["global_step"] == 100 and got["global_step"].dtype == np.int64
    got["bert/pooler/dense/bias"][0] = 1.0  # writable: the caller owns it


def test_prefix_index_path_and_directory_name_the_same_checkpoint(tmp_path):
    prefix = os.path.join(FIXTURE, PREFIX)
    assert checkpoint_prefix(prefix + ".index") == prefix
    # through the `checkpoint` file, whose path is the writing machine's
    assert "/home/albert/run/" in open(os.path.join(FIXTURE, "checkpoint")).read()
    assert checkpoint_prefix(FIXTURE) == prefix
    lone = tmp_path / "lone"
    lone.mkdir()
    for name in os.listdir(FIXTURE):
        if name != "checkpoint":
            shutil.copy(os.path.join(FIXTURE, name), lone / name)
    assert checkpoint_prefix(str(lone)) == str(lone / PREFIX)  # its only .index
    with pytest.raises(CheckpointError, match="no such checkpoint index"):
        checkpoint_prefix(str(tmp_path / "model.ckpt-7"))
    with pytest.raises(CheckpointError, match="found none"):
        checkpoint_prefix(str(tmp_path))


def test_a_google_research_checkpoint_becomes_a_model_transformers_runs_alike(expected, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = fixture_config()
    params = convert.load_tf_checkpoint(FIXTURE, config)
    np.testing.assert_array_equal(params["sop_classifier"]["kernel"],
                                  expected["cls/seq_relationship/output_weights"].T)
    np.testing.assert_array_equal(params["encoder"]["albert_layer_groups_0_albert_layers_0"]["ffn"]["kernel"],
                                  expected["bert/encoder/transformer/group_0/inner_group_0/ffn_1/intermediate/dense/kernel"])
    convert.save_pretrained(str(tmp_path), params, config)
    hf = transformers.AlbertForPreTraining.from_pretrained(str(tmp_path)).eval()
    ids_bt = (np.arange(2 * 24).reshape(2, 24) * 37 % 256).astype(np.int64)
    segments_bt = (np.arange(24) >= 10).astype(np.int64)[None].repeat(2, 0)
    positions_bp = np.array([[1, 5, 20], [2, 3, 23]])
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(ids_bt), token_type_ids=torch.tensor(segments_bt))
    mlm_bpv, sop_b2 = AlbertForPreTraining(config).apply({"params": params}, ids_bt, np.ones_like(ids_bt),
                                                          segments_bt, positions_bp)
    hf_mlm_bpv = np.take_along_axis(out.prediction_logits.numpy(), positions_bp[..., None], axis=1)
    assert np.abs(hf_mlm_bpv).max() > 1e-2  # not a comparison of zeros
    np.testing.assert_allclose(np.asarray(mlm_bpv), hf_mlm_bpv, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(sop_b2), out.sop_logits.numpy(), atol=1e-5, rtol=0)


def test_another_config_is_refused_by_name():
    with pytest.raises(CheckpointError, match="lacks .* variables of this config"):
        convert.load_tf_checkpoint(FIXTURE, dataclasses.replace(fixture_config(), num_hidden_groups=2))


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "ckpt")
    return str(tmp_path / "ckpt" / PREFIX)


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0x01]))


def test_a_damaged_tensor_is_named_with_its_file_and_offset(copy):
    checkpoint = TFCheckpoint(copy)
    entry = checkpoint.entries["bert/embeddings/word_embeddings"]
    data_path = checkpoint.data_path(entry.shard)
    _flip(data_path, entry.offset + 5)
    checkpoint.read("bert/pooler/dense/kernel")  # the others are intact
    with pytest.raises(CheckpointError, match=rf"{os.path.basename(data_path)}: 'bert/embeddings/word_embeddings' "
                                              rf"at byte {entry.offset} fails its CRC-32C"):
        checkpoint.read("bert/embeddings/word_embeddings")
    assert checkpoint.read("bert/embeddings/word_embeddings", verify=False).shape == (256, 16)


def test_a_damaged_or_truncated_index_and_a_missing_or_short_shard_are_named(copy):
    shard = TFCheckpoint(copy).entries[SLOTTED[0]].shard
    data_path = TFCheckpoint(copy).data_path(shard)
    os.truncate(data_path, 1000)
    with pytest.raises(CheckpointError, match="the file holds .*: truncated"):
        TFCheckpoint(copy).read_all()
    os.remove(data_path)
    with pytest.raises(CheckpointError, match=f"{os.path.basename(data_path)}: missing"):
        TFCheckpoint(copy).read(SLOTTED[0])
    index = f"{copy}.index"
    intact = open(index, "rb").read()
    _flip(index, 40)
    with pytest.raises(CheckpointError, match=r"model.ckpt-100.index: block at byte 0 fails its CRC-32C"):
        TFCheckpoint(copy)
    with open(index, "wb") as file:  # the footer has no CRC: a bad handle points into the wrong bytes
        file.write(intact[:-48] + bytes([0xFF] * 3) + intact[-45:])
    with pytest.raises(CheckpointError, match="model.ckpt-100.index: "):
        TFCheckpoint(copy)
    os.truncate(index, 1000)
    with pytest.raises(CheckpointError, match="no table magic number"):
        TFCheckpoint(copy)


def test_convert_takes_the_config_from_albert_config_json_or_the_named_one(copy, tmp_path, capsys):
    directory = os.path.dirname(copy)
    assert cli.main(["convert", directory, "--output", str(tmp_path / "none")]) == 2
    assert "no albert_config.json beside it; name the config" in capsys.readouterr().err

    config = fixture_config()
    # the keys google-research/albert's released albert_config.json files have
    released_keys = {"attention_probs_dropout_prob": 0, "hidden_act": "gelu", "hidden_dropout_prob": 0,
                     "embedding_size": config.embedding_size, "hidden_size": config.hidden_size,
                     "initializer_range": 0.02, "intermediate_size": config.intermediate_size,
                     "max_position_embeddings": config.max_position_embeddings,
                     "num_attention_heads": config.num_attention_heads,
                     "num_hidden_layers": config.num_hidden_layers, "num_hidden_groups": 1,
                     "net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0, "inner_group_num": 1,
                     "down_scale_factor": 1, "type_vocab_size": 2, "vocab_size": config.vocab_size}
    with open(os.path.join(directory, "albert_config.json"), "w") as file:
        json.dump(released_keys, file)
    assert cli.main(["convert", directory, "--output", str(tmp_path / "described")]) == 0
    params, loaded_config = convert.load_pretrained(str(tmp_path / "described"))
    assert loaded_config == config
    expected_params = convert.load_tf_checkpoint(FIXTURE, config)
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, expected_params)

    os.remove(os.path.join(directory, "albert_config.json"))  # the vocabulary and positions from the embeddings
    assert cli.main(["convert", copy + ".index", "--output", str(tmp_path / "named"), "--config", "tiny"]) == 0
    assert convert.load_pretrained(str(tmp_path / "named"))[1] == config

    with open(os.path.join(directory, "albert_config.json"), "w") as file:
        json.dump(released_keys | {"net_structure_type": 1}, file)
    assert cli.main(["convert", directory, "--output", str(tmp_path / "other")]) == 2
    assert "net_structure_type 1: only the released structure" in capsys.readouterr().err


def test_our_writer_matches_tensorflow_byte_for_byte(tmp_path):
    """The same tensors, in the same order, as TensorFlow 2.21's SaveV2 wrote them."""
    write_checkpoint(str(tmp_path / "model.ckpt"), small_tensors())
    for suffix in (".index", ".data-00000-of-00001"):
        ours = (tmp_path / f"model.ckpt{suffix}").read_bytes()
        assert ours == open(os.path.join(SMALL, f"model.ckpt{suffix}"), "rb").read(), suffix
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]


def test_a_model_goes_to_google_research_format_and_back(tmp_path):
    config = fixture_config()
    params = convert.load_tf_checkpoint(FIXTURE, config)
    convert.save_pretrained(str(tmp_path / "hf"), params, config)
    assert cli.main(["convert", str(tmp_path / "hf"), "--output", str(tmp_path / "tf"), "--format", "tf"]) == 0
    assert convert.config_from_albert_json(json.loads((tmp_path / "tf" / "albert_config.json").read_text())) == config
    exported = TFCheckpoint(str(tmp_path / "tf"))  # found through its `checkpoint` file
    assert exported.read("global_step") == 0
    back, back_config = convert.load_weights(str(tmp_path / "tf"))
    assert back_config == config
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)
