"""TFRecord export, checked with the real protobuf library rather than our own decoder."""

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordReader
from conftest import ALBERT_MODEL, BOOKS, CORPORA
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from albertprep import cli
from albertprep.core import crc32c, records
from albertprep.core.tokenizer import Tokenizer
from albertprep.tools import tfrecord

ALBERT_NAMES = {"input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
                "masked_lm_weights", "next_sentence_labels"}

# --- tf.train.Example, built from a descriptor (TensorFlow is not installed) -----

_F = descriptor_pb2.FieldDescriptorProto


def _field(name, number, kind, label=_F.LABEL_OPTIONAL, type_name=None, oneof_index=None):
    field = _F(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = type_name
    if oneof_index is not None:
        field.oneof_index = oneof_index
    return field


def _example_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="test_tfrecord/example.proto", package="tensorflow",
                                              syntax="proto3")
    file.message_type.add(name="BytesList").field.append(_field("value", 1, _F.TYPE_BYTES, _F.LABEL_REPEATED))
    for name, kind in (("FloatList", _F.TYPE_FLOAT), ("Int64List", _F.TYPE_INT64)):
        value = _field("value", 1, kind, _F.LABEL_REPEATED)
        value.options.packed = True
        file.message_type.add(name=name).field.append(value)
    feature = file.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (name, type_name) in enumerate((("bytes_list", "BytesList"), ("float_list", "FloatList"),
                                                ("int64_list", "Int64List")), start=1):
        feature.field.append(_field(name, number, _F.TYPE_MESSAGE, type_name=f".tensorflow.{type_name}",
                                    oneof_index=0))
    features = file.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.append(_field("key", 1, _F.TYPE_STRING))
    entry.field.append(_field("value", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.Feature"))
    features.field.append(_field("feature", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED,
                                 type_name=".tensorflow.Features.FeatureEntry"))
    file.message_type.add(name="Example").field.append(
        _field("features", 1, _F.TYPE_MESSAGE, type_name=".tensorflow.Features"))
    return file


def _example_class():
    file = _example_file()
    if hasattr(message_factory, "GetMessageClassesForFiles"):
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        classes = message_factory.GetMessageClassesForFiles([file.name], pool)
    else:
        classes = message_factory.GetMessages([file])
    return classes["tensorflow.Example"]


Example = _example_class()


def parse(payload: bytes) -> dict[str, tuple[str, list]]:
    """name → (which list, values), as TensorFlow would parse the Example."""
    example = Example.FromString(payload)
    parsed = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        parsed[name] = (kind, list(getattr(feature, kind).value))
    return parsed


# --- framing ------------------------------------------------------


def _masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32


def test_file_layout_is_tfrecord(tmp_path):
    payloads = [b"", b"x", b"tf.train.Example" * 20]
    path = tmp_path / "layout.tfrecord"
    assert tfrecord.write_tfrecord(str(path), payloads) == 3
    expected = b"".join(
        struct.pack("<QI", len(p), _masked(crc32c.crc32c(struct.pack("<Q", len(p)))))
        + p + struct.pack("<I", _masked(crc32c.crc32c(p)))
        for p in payloads
    )
    assert path.read_bytes() == expected


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    # more records than one CRC batch, of uneven lengths, some empty
    payloads = [rng.integers(0, 256, rng.integers(0, 600)).astype(np.uint8).tobytes() for _ in range(2500)]
    payloads[100] = b""
    path = tmp_path / "out" / "round.tfrecord"
    path.parent.mkdir()
    assert tfrecord.write_tfrecord(str(path), iter(payloads)) == len(payloads)
    assert list(tfrecord.read_tfrecord(str(path))) == payloads
    assert os.listdir(path.parent) == ["round.tfrecord"]  # no temporary file left behind
    assert path.stat().st_size == sum(16 + len(p) for p in payloads)


def _offsets(payloads):
    return np.concatenate([[0], np.cumsum([16 + len(p) for p in payloads])[:-1]]).tolist()


def test_corrupt_data_is_detected_at_its_offset(tmp_path):
    payloads = [bytes([i]) * (50 + i) for i in range(20)]
    path = tmp_path / "corrupt.tfrecord"
    tfrecord.write_tfrecord(str(path), payloads)
    offset = _offsets(payloads)[13]
    data = bytearray(path.read_bytes())
    data[offset + 12 + 7] ^= 0x01  # one bit of record 13's data
    path.write_bytes(bytes(data))
    read = []
    with pytest.raises(ValueError, match=rf"corrupt\.tfrecord: corrupt record data .* byte offset {offset}$"):
        for record in tfrecord.read_tfrecord(str(path)):
            read.append(record)
    assert read == payloads[:13]


def test_corrupt_length_and_truncation_are_detected(tmp_path):
    payloads = [b"a" * 10, b"b" * 20, b"c" * 30]
    path = tmp_path / "length.tfrecord"
    tfrecord.write_tfrecord(str(path), payloads)
    good = path.read_bytes()
    offset = _offsets(payloads)[1]
    data = bytearray(good)
    data[offset] ^= 0x04  # record 1's length: 20 → 16
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"length\.tfrecord: corrupt record length .* byte offset {offset}$"):
        list(tfrecord.read_tfrecord(str(path)))
    path.write_bytes(good[:-5])
    with pytest.raises(ValueError, match=rf"truncated record data at byte offset {_offsets(payloads)[2]}$"):
        list(tfrecord.read_tfrecord(str(path)))


# --- Example encoding -------------------------------------------------------------


def test_encode_example_is_what_protobuf_reads_and_writes():
    features = {
        "z_ints": np.array([0, 1, 127, 128, 300, 2**31, 2**63 - 1, -1, -(2**63)], np.int64),
        "a_floats": np.array([0.0, -1.5, 3.25, 1e-8, np.inf], np.float32),
        "m_scalar": np.int32(1),
        "b_bytes": np.array([b"", b"piece", b"\x00\xff"]),
        "empty_ints": np.zeros(0, np.int32),
        "u_small": np.array([7, 0], np.uint16),
    }
    payload = tfrecord.encode_example(features)
    parsed = parse(payload)
    assert parsed == {
        "z_ints": ("int64_list", features["z_ints"].tolist()),
        "a_floats": ("float_list", features["a_floats"].tolist()),
        "m_scalar": ("int64_list", [1]),
        "b_bytes": ("bytes_list", [b"", b"piece", b"\x00\xff"]),
        "empty_ints": ("int64_list", []),
        "u_small": ("int64_list", [7, 0]),
    }
    # byte for byte what protobuf's deterministic serialization (keys sorted) writes
    assert Example.FromString(payload).SerializeToString(deterministic=True) == payload
    # the same features in another insertion order give the same bytes
    assert tfrecord.encode_example(dict(reversed(list(features.items())))) == payload
    with pytest.raises(TypeError, match="complex128"):
        tfrecord.encode_example({"c": np.array([1j])})


# --- real prepared instances ----------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """blake-poems prepared with ALBERT's vocabulary in two train shards."""
    output = tmp_path_factory.mktemp("tfrecord") / "prepared"
    code = cli.main(["prepare", str(BOOKS / "blake-poems.txt"), "--output", str(output),
                     "--spm-model", str(ALBERT_MODEL), "--dupe-factor", "1", "--max-seq-length", "128",
                     "--num-shards", "2", "--eval-fraction", "0"])
    assert code == 0
    manifest = json.loads((output / "manifest.json").read_text())
    layout = records.FeatureLayout(manifest["features"]["max_seq_length"],
                                   manifest["features"]["max_predictions_per_seq"])
    shards = {}
    for shard in manifest["splits"]["train"]["shards"]:
        reader = ArrayRecordReader(str(output / shard["file"]))
        shards[shard["file"]] = reader.read_all()
        reader.close()
    return output, manifest, layout, shards


def assert_albert_example(payload, features, layout, word_start=None):
    parsed = parse(payload)
    if word_start is not None:
        kind, boundary = parsed.pop("token_boundary")
        ids, mask = np.array(features["input_ids"]), np.asarray(features["input_mask"])
        masked = np.asarray(features["masked_lm_weights"]) > 0
        ids[np.asarray(features["masked_lm_positions"])[masked]] = np.asarray(features["masked_lm_ids"])[masked]
        assert kind == "int64_list" and len(boundary) == layout.max_seq_length
        np.testing.assert_array_equal(boundary, word_start[ids] & (mask != 0))  # of the pieces before masking
    assert set(parsed) == ALBERT_NAMES
    for name in ALBERT_NAMES - {"masked_lm_weights", "next_sentence_labels"}:
        kind, values = parsed[name]
        assert kind == "int64_list"
        np.testing.assert_array_equal(values, features[name], err_msg=name)
    kind, weights = parsed["masked_lm_weights"]
    assert kind == "float_list"
    np.testing.assert_array_equal(np.array(weights, np.float32), features["masked_lm_weights"])
    assert parsed["next_sentence_labels"] == ("int64_list", [int(features["sentence_order_label"])])
    assert len(parsed["input_ids"][1]) == layout.max_seq_length
    assert len(parsed["masked_lm_ids"][1]) == layout.max_predictions_per_seq


def test_albert_example_carries_every_feature(prepared):
    _, _, layout, shards = prepared
    all_records = [record for shard in shards.values() for record in shard]
    assert len(all_records) > 40
    labels = set()
    for record in all_records:
        features = records.to_features(records.decode(record), layout)
        assert_albert_example(tfrecord.albert_example(features), features, layout)
        labels.add(int(features["sentence_order_label"]))
    assert labels == {0, 1}  # both sentence orders were carried over
    with pytest.raises(ValueError, match="missing .*sentence_order_label"):
        tfrecord.albert_example({k: v for k, v in features.items() if k != "sentence_order_label"})


def test_albert_word_units_follow_albert_rule():
    """create_pretraining_data.py's _is_start_piece_sp, piece by piece."""
    tokenizer = Tokenizer.from_file(str(ALBERT_MODEL))
    starts = dict(zip(tokenizer.pieces, tokenizer.albert_word_start.tolist()))
    for piece in ["▁knight", ",", "'", "2", "€", "[CLS]", "[SEP]", "<pad>", "▁the"]:
        assert starts[piece], piece
    for piece in ["s", "ing", "[MASK]"]:
        assert not starts[piece], piece
    differ = int((tokenizer.albert_word_start != tokenizer.word_start).sum())
    assert 900 < differ < 1000  # the two rules disagree on about 3% of the vocabulary


def test_export_writes_one_tfrecord_per_shard(prepared, tmp_path):
    directory, manifest, layout, shards = prepared
    word_start = Tokenizer.from_file(str(directory / "spm.model")).albert_word_start
    paths = tfrecord.export(str(directory), str(tmp_path / "tf"))
    stems = [s["file"].removesuffix(".array_record") for s in manifest["splits"]["train"]["shards"]]
    assert [os.path.basename(p) for p in paths] == [f"{stem}.tfrecord" for stem in stems]
    assert sorted(os.listdir(tmp_path / "tf")) == sorted(os.path.basename(p) for p in paths)
    for path, (name, shard_records) in zip(paths, shards.items()):
        assert os.path.basename(path) == name.replace(".array_record", ".tfrecord")
        exported = list(tfrecord.read_tfrecord(path))
        assert len(exported) == len(shard_records) > 0
        for payload, record in zip(exported, shard_records):
            assert_albert_example(payload, records.to_features(records.decode(record), layout), layout, word_start)
    total = sum(1 for path in paths for _ in tfrecord.read_tfrecord(path))
    assert total == manifest["splits"]["train"]["records"]
    with pytest.raises(ValueError, match="no split 'test'"):
        tfrecord.export(str(directory), str(tmp_path / "tf"), split="test")


def test_export_refuses_a_damaged_shard(prepared, tmp_path):
    directory, manifest, _, _ = prepared
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    damaged = manifest["splits"]["train"]["shards"][1]["file"]
    data = bytearray((copy / damaged).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / damaged).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"shard {damaged} has sha256"):
        tfrecord.export(str(copy), str(tmp_path / "tf"))
    assert not (tmp_path / "tf").exists()  # checked before the first shard was written


def test_albert_reference_tool_reads_the_word_units_of_an_export(prepared, tmp_path):
    """../shared/reference/instance_stats.py, the tool that measured ALBERT's
    own output, finds token_boundary in ours, and masked runs that start at
    a word unit but where a truncated segment begins inside a word (as
    ALBERT's truncation also leaves it): our masking never starts inside one."""
    directory, manifest, _, _ = prepared
    paths = tfrecord.export(str(directory), str(tmp_path / "tf"))
    tool = CORPORA.parent / "reference" / "instance_stats.py"
    result = subprocess.run([sys.executable, str(tool), *paths, "--spm_model", str(ALBERT_MODEL)],
                            capture_output=True, text=True, check=True)
    stats = json.loads(result.stdout)
    assert stats["instances"] == manifest["splits"]["train"]["records"]
    assert stats["fields_present"]["token_boundary"]
    alignment = stats["masking"]["span_word_alignment"]
    runs = sum(h["count"] for h in stats["masking"]["span_length_words_histogram"].values())
    mid_word = runs - alignment["starts_at_word_start"]
    assert runs > 500
    assert mid_word <= (alignment.get("instances_segment_A_starts_mid_word", 0)
                        + alignment.get("B_leading_fragment_masked", 0))
