"""The instance stage on the real books with ALBERT's own vocabulary."""

import hashlib
import json

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordReader
from conftest import ALBERT_MODEL, BOOKS, CORPORA

from albertprep import cli
from albertprep.core import atomic, layout, records
from albertprep.core.tokenizer import Tokenizer
from albertprep.pipelines import prepare, runs

ALBERT_SHA256 = "fefb02b667a6c5c2fe27602d28e5fb3428f66ab89c7d6f388e7c8d44a02d0336"


def run_prepare(inputs, output, *extra):
    code = cli.main(["prepare", *map(str, inputs), "--output", str(output), *map(str, extra)])
    assert code == 0
    return json.loads((output / "manifest.json").read_text())


def all_records(output, manifest):
    for split in layout.SPLITS:
        for shard in manifest["splits"][split]["shards"]:
            reader = ArrayRecordReader(str(output / shard["file"]))
            yield from ((split, record) for record in reader.read_all())
            reader.close()


@pytest.fixture(scope="module")
def books_prepared(tmp_path_factory):
    output = tmp_path_factory.mktemp("prepared")
    manifest = run_prepare([BOOKS], output, "--spm-model", ALBERT_MODEL, "--dupe-factor", "3",
                           "--eval-fraction", "0.2", "--num-shards", "4")
    return output, manifest, list(all_records(output, manifest))


def test_manifest_describes_the_shards(books_prepared):
    output, manifest, _ = books_prepared
    assert manifest["format"] == "albertprep.instances" and manifest["manifest_version"] == 2
    assert manifest["record_version"] == records.RECORD_VERSION
    assert manifest["features"]["max_seq_length"] == 512 and manifest["features"]["token_dtype"] == "uint16"
    assert manifest["tokenizer"]["sha256"] == ALBERT_SHA256
    assert manifest["tokenizer"]["normalization"]["do_lower_case"] is True
    assert manifest["config"]["dupe_factor"] == 3 and manifest["config"]["train_shards"] == 4
    assert len(manifest["splits"]["train"]["shards"]) == 4 and len(manifest["splits"]["eval"]["shards"]) == 1
    for split in layout.SPLITS:
        for shard in manifest["splits"][split]["shards"]:
            data = (output / shard["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == shard["sha256"]
            assert ArrayRecordReader(str(output / shard["file"])).num_records() == shard["records"]
    assert (output / "COMPLETED").exists()
    assert (output / "spm.model").read_bytes() == ALBERT_MODEL.read_bytes()
    corpus = manifest["corpus"][0]
    assert corpus["by_source"] == {"books": {"article": 9}}
    assert sorted(i["path"] for i in manifest["inputs"]) == sorted(str(p) for p in BOOKS.glob("*.txt"))
    documents = manifest["documents"]
    assert documents["read"] == 9 == documents["train"] + documents["eval"] == documents["used"]


def test_every_instance_is_well_formed(books_prepared):
    _, manifest, stored = books_prepared
    tokenizer = Tokenizer.from_file(str(ALBERT_MODEL))
    control = {0, 2, 3, 4}  # <pad>, [CLS], [SEP], [MASK]; <unk> is text the vocabulary lacks
    assert len(stored) == sum(manifest["splits"][s]["records"] for s in layout.SPLITS) > 4000
    for _, record in stored:
        instance = records.decode(record)
        assert records.encode(instance, tokenizer.vocab_size) == record
        ids, length, len_a = instance.original_ids(), len(instance.input_ids), instance.len_a
        assert 5 <= length <= 512 and 1 <= len_a <= length - 4
        assert ids[0] == 2 and ids[len_a + 1] == 3 and ids[-1] == 3
        assert not set(np.delete(ids, [0, len_a + 1, length - 1]).tolist()) & control
        positions = instance.masked_positions
        assert 1 <= len(positions) <= min(20, max(1, round(length * 0.15)))
        assert np.all(np.diff(positions.astype(int)) > 0)
        assert not set(positions.tolist()) & {0, len_a + 1, length - 1}
        assert instance.word_starts[1] and instance.word_starts[len_a + 2]
        assert instance.sop_label in (0, 1)


def test_statistics_match_albert(books_prepared):
    _, manifest, stored = books_prepared
    labels, kinds = [], np.zeros(3)
    for _, record in stored:
        instance = records.decode(record)
        labels.append(instance.sop_label)
        replaced = instance.input_ids[instance.masked_positions]
        kinds += [(replaced == 4).sum(), ((replaced != 4) & (replaced != instance.masked_ids)).sum(),
                  (replaced == instance.masked_ids).sum()]
    assert abs(np.mean(labels) - 0.5) <= 0.02
    np.testing.assert_allclose(kinds / kinds.sum(), [0.8, 0.1, 0.1], atol=0.02)
    train, evaluation = (manifest["splits"][s]["statistics"] for s in layout.SPLITS)
    free = np.array([train["ngram_fractions_when_free"][n] * 1.0 for n in "123"])
    np.testing.assert_allclose(free, [6 / 11, 3 / 11, 2 / 11], atol=0.03)
    assert abs(train["short_target_fraction"] - 0.1) <= 0.02
    # the manifest's figures are the data's
    swapped = train["sop"]["swapped"] + evaluation["sop"]["swapped"]
    assert swapped == sum(labels)
    assert train["replacement_fractions"]["mask"] == pytest.approx(0.8, abs=0.02)
    assert sum(train["length_histogram"]) == train["instances"] == manifest["splits"]["train"]["records"]


def test_finished_shards_are_not_overwritten(books_prepared, capsys):
    output, _, _ = books_prepared
    assert cli.main(["prepare", str(output / "documents"), "--output", str(output),
                     "--spm-model", str(ALBERT_MODEL)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_a_model_without_albert_specials_is_refused(tmp_path, capsys):
    code = cli.main(["prepare", str(BOOKS / "blake-poems.txt"), "--output", str(tmp_path),
                     "--spm-model", str(CORPORA / "spm" / "botchan-unigram1000.model")])
    assert code == 2
    assert "no <pad>, [CLS], [SEP], [MASK]" in capsys.readouterr().err


def test_empty_shards_exist(tmp_path):
    manifest = run_prepare([BOOKS / "blake-poems.txt"], tmp_path, "--spm-model", ALBERT_MODEL, "--dupe-factor", "1",
                           "--num-shards", "100", "--eval-fraction", "0", "--max-seq-length", "128")
    shards = manifest["splits"]["train"]["shards"]
    assert len(shards) == 100 and manifest["splits"]["eval"]["shards"] == []
    empty = [s for s in shards if s["records"] == 0]
    assert empty and all(ArrayRecordReader(str(tmp_path / s["file"])).num_records() == 0 for s in empty)
    assert sum(s["records"] for s in shards) == manifest["splits"]["train"]["statistics"]["instances"] > 40


def test_a_shard_is_the_merge_of_its_runs_sorted_by_key(tmp_path):
    keys = np.random.default_rng(0).permutation(50).tolist()
    written = ((0, 0, keys[:20]), (0, 1, keys[20:45]), (7, 0, keys[45:]))  # task 0's two flushes, task 7's one
    for task, part, chunk in written:
        with atomic.created(prepare.run_path(str(tmp_path / layout.RUNS), (0, 0), task, part)) as f:
            runs.write_run(f, sorted((key, f"record {key}".encode()) for key in chunk))
    tasks = [(0, (0, 1)), (7, (0,))]
    (kind, split, info), = prepare.WriteShard(str(tmp_path), {"train": 1, "eval": 0}).process(((0, 0), tasks))
    assert (kind, split, info["records"]) == ("shard", "train", 50)
    stored = ArrayRecordReader(str(tmp_path / info["file"])).read_all()
    assert stored == [f"record {key}".encode() for key in range(50)]
    assert info["sha256"] == hashlib.sha256((tmp_path / info["file"]).read_bytes()).hexdigest()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert not [p for p in (tmp_path / layout.RUNS).rglob("*") if p.is_file()]  # the runs are gone


def test_albert_compat_borrows_b_and_stays_reproducible(tmp_path):
    runs = []
    for name in ("one", "two"):
        manifest = run_prepare([CORPORA / "wiki" / "enwiki-table-markup.xml.bz2"], tmp_path / name,
                               "--spm-model", ALBERT_MODEL, "--albert-compat", "--max-seq-length", "64",
                               "--dupe-factor", "2", "--num-shards", "1", "--eval-fraction", "0")
        runs.append({p.name: p.read_bytes() for p in sorted((tmp_path / name).glob("*.array_record"))})
    stats = manifest["splits"]["train"]["statistics"]
    assert stats["sop"]["random_b"] > 0 and stats["sop"]["swapped"] > 0
    assert runs[0] == runs[1]
    assert_exact_budget(list(all_records(tmp_path / "one", manifest)), manifest)


def assert_exact_budget(split_records, manifest):
    """ALBERT's budget, min(max_predictions, max(1, round(0.15 × length))),
    met in every instance: none gets fewer masks, none gets none."""
    config = manifest["masking"]
    short = []
    for _, record in split_records:
        instance = records.decode(record)
        length = len(instance.input_ids)
        budget = min(config["max_predictions_per_seq"], max(1, int(round(length * config["masked_lm_prob"]))))
        if len(instance.masked_positions) != budget:
            short.append((length, budget, len(instance.masked_positions)))
    assert split_records and not short, short[:5]


def test_every_instance_gets_its_whole_mask_budget(books_prepared, tmp_path):
    _, manifest, split_records = books_prepared
    assert_exact_budget(split_records, manifest)
    # at 128, where short instances of long words used to fall short of the budget or get no mask
    output = tmp_path / "short"
    manifest = run_prepare([BOOKS], output, "--spm-model", ALBERT_MODEL, "--dupe-factor", "3",
                           "--max-seq-length", "128")  # 17,552 instances: 5 fell short before
    assert_exact_budget(list(all_records(output, manifest)), manifest)


def test_inspect_shows_instances_and_statistics(books_prepared):
    from albertprep.tools import inspect

    output, manifest, _ = books_prepared
    text = inspect.render(str(output), "train", 2)
    blocks = text.split("\n\n")
    assert [b.startswith("[train-0000") for b in blocks[:2]] == [True, True]
    assert blocks[0].count("[CLS]") == 1 and blocks[0].count("[SEP]") == 2 and "→" in blocks[0]
    statistics = json.loads(text.split("train statistics:\n", 1)[1])
    assert statistics["instances"] == manifest["splits"]["train"]["records"]


def _snapshot(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_failed_overwrite_leaves_the_finished_dataset_intact(tmp_path, capsys):
    output = tmp_path / "prepared"
    small = ["--spm-model", ALBERT_MODEL, "--dupe-factor", "1", "--max-seq-length", "128"]
    run_prepare([BOOKS / "blake-poems.txt"], output, *small)
    (output / "NOTES.txt").write_text("the user's own file")
    before = _snapshot(output)
    failures = {
        "missing input": ([tmp_path / "no-such-book.txt"], small),
        "missing --spm-model": ([BOOKS / "blake-poems.txt"], ["--spm-model", tmp_path / "no-such.model"]),
        "a model without [CLS]": ([BOOKS / "blake-poems.txt"],
                                  ["--spm-model", CORPORA / "spm" / "botchan-unigram1000.model"]),
    }
    for what, (inputs, extra) in failures.items():
        code = cli.main(["prepare", *map(str, inputs), "--output", str(output), "--overwrite", *map(str, extra)])
        err = capsys.readouterr().err
        assert code == 2, what
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (what, err)
        assert _snapshot(output) == before, what
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]  # no staging directory left beside it

    # a run that succeeds replaces the dataset's files, and only those
    manifest = run_prepare([BOOKS / "blake-poems.txt"], output, *small[:-4], "--dupe-factor", "2",
                           "--max-seq-length", "128", "--overwrite")
    after = _snapshot(output)
    assert after["NOTES.txt"] == before["NOTES.txt"]
    assert after["manifest.json"] != before["manifest.json"] and manifest["config"]["dupe_factor"] == 2
    assert set(after) == set(before) and (output / layout.COMPLETED).exists()
    assert all(str(output) in f["path"] for f in manifest["documents_files"])  # where they are now, not staged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_compat_encodes_quotes_as_albert_and_the_default_unifies_them(tmp_path):
    from albertprep.core.tokenizer import Tokenizer

    model = ALBERT_MODEL.read_bytes()
    text = ["He said ``hello'' to her."]
    ours = Tokenizer(model).encode(text)[0]
    albert = Tokenizer(model, tex_quotes=False).encode(text)[0]
    quote, unknown = Tokenizer(model).processor.piece_to_id('"'), Tokenizer(model).processor.unk_id()
    assert list(ours).count(quote) == 2 and unknown not in ours
    assert unknown in albert  # ALBERT's own preprocessing leaves `` to the model, which has no piece for it
    book = tmp_path / "quotes.txt"
    book.write_text("``Stop there,'' he said. She stopped at once.\n\nThen she went on. It was late.\n" * 40)
    for flag, expected, unknowns in (("--albert-compat", "kept, as ALBERT's", True), (None, "`` and '' to \"", False)):
        output = tmp_path / (flag or "default")
        manifest = run_prepare([book], output, "--spm-model", ALBERT_MODEL,
                               "--dupe-factor", "1", "--max-seq-length", "64", *([flag] if flag else []))
        assert manifest["tokenizer"]["normalization"]["quotes"] == expected
        originals = [records.decode(record).original_ids() for _, record in all_records(output, manifest)]
        assert any(unknown in ids for ids in originals) == unknowns


@pytest.mark.parametrize("command", ["extract", "vocab", "prepare"])
def test_a_mistyped_flag_is_refused_not_passed_to_beam(command, tmp_path, capsys):
    """Beam would drop an unknown flag with a warning and run on (a typo of
    --dupe-factor ran with dupe factor 10): one line names it, and nothing runs."""
    output = tmp_path / "out"
    code = cli.main([command, str(BOOKS / "blake-poems.txt"), "--output", str(output), "--dupe-facotr", "1",
                     "--job_name=albertprep-test"])  # a real Beam option passes
    error = capsys.readouterr().err.strip()
    assert code == 2 and not output.exists()
    assert error.count("\n") == 0 and "--dupe-facotr" in error and "--job_name" not in error
    if command == "prepare":
        assert "did you mean --dupe-factor?" in error


def test_the_stage_uses_the_tokenizer_the_command_shared_for_its_model_and_settings(tmp_path):
    """The command hands the tokenizer it checked to its in-process worker
    and to the warm workers forked from it (`share_tokenizer`): a stage
    reading the same model bytes from another path gets that one object,
    with its tables; --albert-compat (ALBERT's quotes) gets its own."""
    shared = Tokenizer.from_file(str(ALBERT_MODEL))
    prepare.share_tokenizer(shared)
    copy = tmp_path / "spm.model"
    copy.write_bytes(ALBERT_MODEL.read_bytes())
    assert prepare._worker_tokenizer(str(copy), True, False) is shared
    compat = prepare._worker_tokenizer(str(copy), True, True)
    assert compat is not shared and not compat.tex_quotes
