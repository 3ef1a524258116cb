"""A corpus prepared with tensorflow-datasets, read without TensorFlow."""

import json
import pathlib
import subprocess
import sys

import tensorflow_datasets as tfds
from conftest import load_documents, run_extract

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTICLES = [
    ("Ada Lovelace", "Ada Lovelace was an English mathematician. She wrote about the Analytical Engine.\n\n"
                     "Her notes include an algorithm."),
    ("Empty", "   "),
    ("Dr. Who", "Dr. Who is a television programme. It began in 1963."),
]


class TinyWiki(tfds.core.GeneratorBasedBuilder):
    """Shaped like tfds's wikipedia builder: title and text."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = tfds.features.FeaturesDict({"title": tfds.features.Text(), "text": tfds.features.Text()})
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(ARTICLES), "test": self._generate_examples(ARTICLES[:1])}

    def _generate_examples(self, articles):
        for key, (title, text) in enumerate(articles):
            yield key, {"title": title, "text": text}


def test_prepared_tfds_dataset_is_read_as_documents(tmp_path):
    builder = TinyWiki(data_dir=str(tmp_path / "tfds"), file_format="array_record")
    builder.download_and_prepare()
    summary = run_extract([f"tfds:{builder.data_dir}"], tmp_path / "out")
    assert summary["by_source"] == {"tiny_wiki": {"article": 3, "empty": 1}}
    documents = load_documents(tmp_path / "out", summary)
    by_title = {d.title: d for d in documents.values()}
    assert set(by_title) == {"Ada Lovelace", "Dr. Who"}
    assert by_title["Ada Lovelace"].sentences == (
        "Ada Lovelace was an English mathematician.",
        "She wrote about the Analytical Engine.",
        "Her notes include an algorithm.",
    )
    assert by_title["Dr. Who"].sentences == ("Dr. Who is a television programme.", "It began in 1963.")
    # ids carry the dataset's full name (config and version), so two datasets never share one
    assert sorted(documents) == ["tiny_wiki/1.0.0:test:0", "tiny_wiki/1.0.0:train:0", "tiny_wiki/1.0.0:train:2"]


def test_tfds_name_with_data_dir(tmp_path):
    builder = TinyWiki(data_dir=str(tmp_path / "tfds"), file_format="array_record")
    builder.download_and_prepare()
    summary = run_extract(["tfds:tiny_wiki", "--tfds-data-dir", str(tmp_path / "tfds")], tmp_path / "out")
    assert summary["documents"] == 3


def test_the_albertprep_command_reads_a_tfds_dataset_with_beams_extras_left_out(tmp_path):
    """The command leaves pyarrow and Beam's other unused imports out
    (pipelines/warm.py); tensorflow-datasets reads the prepared dataset all
    the same, in the command and in its two warm workers."""
    builder = TinyWiki(data_dir=str(tmp_path / "tfds"), file_format="array_record")
    builder.download_and_prepare()
    done = subprocess.run([sys.executable, "-m", "albertprep", "extract", f"tfds:{builder.data_dir}",
                           "--output", str(tmp_path / "out"), "--workers", "2"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["by_source"] == {"tiny_wiki": {"article": 3, "empty": 1}}
