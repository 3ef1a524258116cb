"""Opening a prepared directory: what is checked, what is refused and why."""

import json
import shutil

import pytest
from array_record.python import array_record_data_source

from albertprep.core import records
from albertprep.loaders import PreparedDataset, PreparedDatasetError
from albertprep.loaders.source import PreparedShardsSource


@pytest.fixture
def prepared(small_prepared):
    """Shared with other test modules: read it, damage only a `copy`."""
    return small_prepared


@pytest.fixture
def copy(prepared, tmp_path):
    """A private copy to damage."""
    target = tmp_path / "copy"
    shutil.copytree(prepared, target)
    return target


def edit_manifest(directory, edit):
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_open_takes_everything_from_the_manifest(prepared):
    manifest = json.loads((prepared / "manifest.json").read_text())
    dataset = PreparedDataset.open(prepared)
    assert dataset.split == "train" and len(dataset.shards) == 3
    assert dataset.num_records == manifest["splits"]["train"]["records"] > 100
    assert [s.records for s in dataset.shards] == [s["records"] for s in manifest["splits"]["train"]["shards"]]
    assert dataset.layout == records.FeatureLayout(128, 20)
    assert dataset.masking == records.MaskingConfig(20, 0.15, 3)
    vocab = dataset.masking_vocab()
    assert vocab.mask_id == 4 and not {0, 1, 2, 3, 4} & set(vocab.random_ids.tolist())


def test_opening_reads_no_shard_without_checksums(copy, monkeypatch):
    """Record counts come from the manifest: a shard replaced by garbage of the
    same size is not noticed until a record is read from it."""
    shard = copy / "train-00001-of-00003.array_record"
    shard.write_bytes(b"\x00" * shard.stat().st_size)

    def no_reader(*args, **kwargs):
        raise AssertionError("a shard was opened")

    monkeypatch.setattr(array_record_data_source.array_record_module, "ArrayRecordReader", no_reader)
    dataset = PreparedDataset.open(copy, verify_checksums=False)
    source = PreparedShardsSource(dataset)
    assert len(source) == dataset.num_records
    with pytest.raises(PreparedDatasetError, match="shard train-00001-of-00003.array_record has sha256"):
        PreparedDataset.open(copy)


def damage_shard_bytes(directory):
    shard = directory / "train-00002-of-00003.array_record"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "COMPLETED").unlink(), "incomplete: no COMPLETED marker"),
    (lambda d: (d / "manifest.json").unlink(), "incomplete: COMPLETED but no manifest.json"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "corrupt manifest.json"),
    (lambda d: edit_manifest(d, lambda m: m.update(record_version=records.RECORD_VERSION + 1)),
     f"record format version {records.RECORD_VERSION + 1}, this albertprep reads version {records.RECORD_VERSION}"),
    (lambda d: edit_manifest(d, lambda m: m.update(manifest_version=3)),
     "manifest.json version 3, this albertprep reads version 2"),
    (lambda d: edit_manifest(d, lambda m: m.pop("manifest_version")),  # as albertprep 0.1's manifests
     "manifest.json version 1, this albertprep reads version 2"),
    (lambda d: edit_manifest(d, lambda m: m["features"].update(fields=["input_ids"])),
     "bad or missing field features.fields"),
    (lambda d: edit_manifest(d, lambda m: m.update(format="albertprep.documents")),
     "not a prepared instances directory: manifest.json format is 'albertprep.documents'"),
    (lambda d: edit_manifest(d, lambda m: m.pop("features")), "bad or missing field 'features'"),
    (lambda d: edit_manifest(d, lambda m: m["splits"]["train"].update(records=1)),
     "split 'train' says 1 records"),
    (lambda d: (d / "train-00001-of-00003.array_record").unlink(),
     "incomplete: shard train-00001-of-00003.array_record is missing"),
    (lambda d: (d / "train-00000-of-00003.array_record").write_bytes(b"short"),
     "corrupt: shard train-00000-of-00003.array_record has 5 bytes"),
    (damage_shard_bytes, "corrupt: shard train-00002-of-00003.array_record has sha256"),
])
def test_damaged_directories_are_refused(copy, damage, message):
    damage(copy)
    with pytest.raises(PreparedDatasetError, match=message) as error:
        PreparedDataset.open(copy)
    assert str(copy) in str(error.value)


def test_checksums_can_be_skipped(copy):
    damage_shard_bytes(copy)
    assert PreparedDataset.open(copy, verify_checksums=False).num_records > 0


def test_splits_without_records_are_refused(prepared, tmp_path):
    with pytest.raises(PreparedDatasetError, match="split 'eval' has no records"):
        PreparedDataset.open(prepared, split="eval")
    with pytest.raises(PreparedDatasetError, match="no split 'validation'"):
        PreparedDataset.open(prepared, split="validation")
    with pytest.raises(PreparedDatasetError, match="no such directory"):
        PreparedDataset.open(tmp_path / "absent")


def test_a_changed_tokenizer_is_refused_for_dynamic_masking(copy):
    dataset = PreparedDataset.open(copy)
    model = copy / "spm.model"
    model.write_bytes(model.read_bytes() + b"\x00")
    with pytest.raises(PreparedDatasetError, match="spm.model has sha256"):
        dataset.masking_vocab()


def test_records_are_read_in_manifest_order(prepared):
    from array_record.python.array_record_module import ArrayRecordReader

    dataset = PreparedDataset.open(prepared)
    expected = []
    for shard in dataset.shards:
        reader = ArrayRecordReader(shard.path)
        expected.extend(reader.read_all())
        reader.close()
    source = PreparedShardsSource(dataset)
    assert [source[k] for k in range(len(source))] == expected
    assert "hash_of_paths" not in repr(source) and str(prepared) not in repr(source)  # the data may move


def test_opening_a_prepared_directory_does_not_import_grain():
    """The package's names load when first used: export-tfrecord and inspect
    open a prepared directory without Grain's 1.6 s import."""
    import subprocess
    import sys

    from albertprep import loaders

    assert sorted(loaders.__all__) == sorted(loaders._SOURCES)
    assert all(getattr(loaders, name) is not None for name in loaders.__all__)
    probe = ("import sys, albertprep.loaders.dataset; from albertprep.loaders import PreparedDataset; "
             "print('grain' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
