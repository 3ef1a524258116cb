"""albertprep.core.manifest: the one writer and parser of manifest.json."""

from __future__ import annotations

import dataclasses
import json

import pytest

from albertprep.core import manifest, records
from albertprep.pipelines.instances import InstanceConfig
from albertprep.pipelines.prepare import PrepareConfig, VocabConfig


def test_a_prepared_manifest_reads_back_to_the_same_bytes(small_prepared):
    written = (small_prepared / "manifest.json").read_bytes()
    parsed = manifest.read(str(small_prepared))
    assert parsed.encode() == written
    assert parsed.num_records == sum(split["records"] for split in json.loads(written)["splits"].values()) > 0
    assert parsed.layout == records.FeatureLayout(128, 20) and parsed.masking == records.MaskingConfig()


def test_the_documented_schema_is_the_written_one(small_prepared):
    """Every top-level field and every feature field is named in the module's schema."""
    document = json.loads((small_prepared / "manifest.json").read_text())
    documented = manifest.__doc__
    for key in [*document, *document["features"], *document["masking"], *document["tokenizer"]]:
        assert f" {key}" in documented, key
    assert document["config"]["version"] == 1 and document["tokenizer"]["vocab_config"] is None  # --spm-model given


def _leaves(config) -> set[str]:
    names = set()
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        names |= _leaves(value) if dataclasses.is_dataclass(value) else {field.name}
    return names


def test_every_setting_is_written_and_none_by_reflection():
    """The config blocks are written field by field (so renaming a dataclass
    field cannot silently change the schema) and leave no setting out."""
    config = PrepareConfig(instances=InstanceConfig(max_seq_length=128), dupe_factor=3)
    block = config.to_manifest(train_shards=8)
    assert set(block) == _leaves(config) | {"version", "train_shards"}
    assert block["max_seq_length"] == 128 and block["dupe_factor"] == 3 and block["train_shards"] == 8
    assert set(VocabConfig().to_manifest()) == _leaves(VocabConfig()) | {"version"}


def test_a_config_without_its_version_is_refused(small_prepared):
    parsed = manifest.read(str(small_prepared))
    with pytest.raises(ValueError, match="its own integer 'version'"):
        dataclasses.replace(parsed, config={"dupe_factor": 1})


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(manifest_version=1), "manifest.json version 1, this albertprep reads version 2"),
    (lambda m: m.update(format="albertprep.documents"), "format is 'albertprep.documents'"),
    (lambda m: m["splits"]["train"]["shards"][0].update(file="../elsewhere.array_record"),
     "shard entry '../elsewhere.array_record'"),
    (lambda m: m["tokenizer"].update(vocab_size=70000), "features.token_dtype 'uint16'"),
    (lambda m: m.pop("masking"), "bad or missing field 'masking'"),
])
def test_other_versions_and_broken_fields_are_refused_with_the_directory_named(small_prepared, edit, message):
    document = json.loads((small_prepared / "manifest.json").read_text())
    edit(document)
    with pytest.raises(manifest.ManifestError, match=message) as error:
        manifest.decode(json.dumps(document).encode(), "some/dir")
    assert str(error.value).startswith("some/dir: ")
