"""The dedup stage on planted duplicates of ../shared's books and articles:
what it finds, what it keeps, what it removes and how it accounts for it."""

import json
import pathlib

import pytest
from conftest import ALBERT_MODEL, BOOKS, WIKI, dask_args, load_documents, run_extract

from albertprep import cli
from albertprep.core.documents import read_documents_jsonl
from albertprep.tools import planted as plant

BOOK_NAMES = ("blake-poems.txt", "botchan.txt", "chesterton-brown.txt", "shakespeare-caesar.txt",
              "shakespeare-hamlet.txt")


def _dedup(inputs, output, *extra, expect=0) -> dict:
    assert cli.main(["dedup", *map(str, inputs), "--output", str(output), *extra]) == expect
    return json.loads((output / "summary.json").read_text()) if expect == 0 else {}


def _duplicates(output: pathlib.Path) -> dict[str, str]:
    return {e["id"]: e["duplicate_of"] for e in map(json.loads, (output / "duplicates.jsonl").open())}


def _files(output: pathlib.Path) -> dict[str, bytes]:
    names = [p for p in output.iterdir() if p.name.startswith("documents-")]
    return {p.name: p.read_bytes() for p in sorted(names + [output / "summary.json", output / "duplicates.jsonl"])}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Extracts of the originals (five books, the enwiki sample) and of their planted copies."""
    root = tmp_path_factory.mktemp("planted")
    wiki = root / "wiki"
    wiki_summary = run_extract([str(WIKI / "enwiki-sample.xml.bz2")], wiki)
    articles = sorted(load_documents(wiki, wiki_summary).values(), key=lambda d: d.id)[:30]
    books = root / "books"
    books.mkdir()
    for name in BOOK_NAMES:
        (books / name).write_bytes((BOOKS / name).read_bytes())
    planted = plant.plant_books(sorted(books.iterdir()), root / "copies")
    planted += plant.plant_articles(articles, root / "copies" / f"{plant.PREFIX}-articles.jsonl")
    originals, copies = root / "originals", root / "copies-extract"
    documents = load_documents(originals, run_extract([str(books)], originals))
    documents |= load_documents(wiki, wiki_summary)
    documents |= load_documents(copies, run_extract([str(root / "copies")], copies))
    return {"inputs": [wiki, originals, copies], "planted": planted, "documents": documents, "root": root}


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    output = tmp_path_factory.mktemp("deduplicated")
    return output, _dedup(corpus["inputs"], output)


def test_planted_copies_at_jaccard_08_are_found_and_no_original_is_removed(corpus, reference):
    output, summary = reference
    score = plant.score(corpus["planted"], corpus["documents"], _duplicates(output))
    assert score["pairs_at_threshold"] >= 60  # exact, encoding, header and most chapter copies
    assert score["recall"] >= 0.95, score["missed"]
    assert score["precision"] == 1.0 and score["originals_removed"] == []
    for kind in ("exact", "encoding", "header"):  # the same words: always found
        assert score["by_kind"][kind]["found"] == score["by_kind"][kind]["pairs"]
    assert score["by_kind"]["words30"]["found"] == 0  # Jaccard about 0.1: distinct texts now


@pytest.mark.parametrize("kind", plant.KINDS)
def test_each_kind_of_copy_is_found_at_jaccard_08_and_not_far_under_it(corpus, reference, kind):
    rows = [r for r in plant.score(corpus["planted"], corpus["documents"], _duplicates(reference[0]))["rows"]
            if r["kind"] == kind]
    assert len(rows) == len(BOOK_NAMES) + (30 if kind in plant.ARTICLE_KINDS else 0)
    assert all(r["found"] for r in rows if r["jaccard"] >= 0.8), [r for r in rows if not r["found"]]
    assert not any(r["found"] for r in rows if r["jaccard"] < 0.5)
    if kind in ("exact", "encoding", "header"):
        assert all(r["jaccard"] > 0.99 for r in rows)
    if kind in ("words10", "words30"):  # most are other texts now (5-shingles: each changed word breaks five)
        assert sum(r["jaccard"] < 0.5 for r in rows) > len(rows) / 2


def test_every_document_is_accounted_for(corpus, reference):
    output, summary = reference
    duplicates = _duplicates(output)
    kept = {d.id for name in summary["outputs"]["jsonl"] for d in read_documents_jsonl(str(output / name))}
    assert len(kept) == summary["documents"] == summary["dedup"]["documents_out"]
    assert kept | set(duplicates) == set(corpus["documents"]) and not kept & set(duplicates)
    assert summary["outcomes"]["duplicate"] == len(duplicates)
    upstream = [json.loads((d / "summary.json").read_text()) for d in corpus["inputs"]]
    assert summary["read"] == sum(u["read"] for u in upstream) == sum(summary["outcomes"].values())
    found = summary["dedup"]["duplicates"]
    assert found["exact"] + found["near"] == len(duplicates)
    assert set(duplicates.values()) <= kept  # each points at the document kept for it
    assert sum(counts["duplicate"] for counts in summary["by_source"].values() if "duplicate" in counts) \
        == len(duplicates)


def test_shared_books_and_articles_are_all_distinct(corpus_extract, tmp_path):
    """Precision on real text: no book or article of ../shared merged with another."""
    directory, extract_summary, documents = corpus_extract
    summary = _dedup([directory], tmp_path / "out")
    assert summary["outcomes"]["duplicate"] == 0 and _duplicates(tmp_path / "out") == {}
    assert summary["documents"] == extract_summary["documents"] == len(documents)


def test_two_workers_dask_and_input_order_give_identical_bytes(corpus, reference, dask_cluster, tmp_path):
    expected = _files(reference[0])
    _dedup(corpus["inputs"][::-1], tmp_path / "two", "--workers", "2")
    assert _files(tmp_path / "two") == expected
    _dedup(corpus["inputs"], tmp_path / "dask", *dask_args(dask_cluster))
    assert _files(tmp_path / "dask") == expected


NOTICE = ("This edition was set in type by the Planted Press of Example City, and it is given away free of charge "
          "to readers everywhere.")
RARE = "Printed for the two friends of the Planted Press, who asked for a copy of each of these books."


def test_boilerplate_paragraphs_are_removed_where_many_documents_have_them(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    names = ("austen-emma", "austen-persuasion", "austen-sense", "blake-poems", "botchan", "chesterton-ball")
    for i, name in enumerate(names):
        text = (BOOKS / f"{name}.txt").read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        # inside the book's own text (a Gutenberg header and licence are cut before counting)
        third, two_thirds = (text.index("\n", len(text) * k // 3) for k in (1, 2))
        rare = f"{RARE}\n\n" if i < 2 else ""
        text = f"{text[:third]}\n\n{NOTICE}\n\n{rare}{text[third:two_thirds]}\n\n{NOTICE}\n\n{text[two_thirds:]}"
        (books / f"{name}.txt").write_text(text, encoding="utf-8")
    extract_summary = run_extract([str(books)], tmp_path / "extract")
    summary = _dedup([tmp_path / "extract"], tmp_path / "out")
    block = summary["dedup"]["boilerplate"]
    assert block["distinct_paragraphs"] == 1  # the notice; the paragraph in two books stays
    assert block["paragraphs_removed"] == 2 * len(names)
    kept = load_documents(tmp_path / "out", summary)
    assert len(kept) == len(names)
    for document in kept.values():
        assert NOTICE not in document.sentences and not any("Planted Press of Example" in s
                                                            for s in document.sentences)
    assert sum(RARE in d.sentences for d in kept.values()) == 2
    assert summary["sentences"] == extract_summary["sentences"] - block["sentences_removed"]


def test_exclude_removes_evaluation_text_and_counts_it_per_file(corpus_extract, tmp_path):
    directory, _, documents = corpus_extract
    article = next(d for d in sorted(documents.values(), key=lambda d: d.id)
                   if d.id.startswith("enwiki-sample:") and len(d.sentences) > 30)
    book = documents["books:austen-emma"]
    passage = " ".join(article.sentences[10:13])  # as a reading-comprehension set quotes a paragraph
    squad = tmp_path / "squad-dev.jsonl"
    squad.write_text(json.dumps({"id": "q1", "context": passage, "question": "What is this about?",
                                 "answers": [{"text": "nothing", "answer_start": 0}]}) + "\n")
    story = tmp_path / "race-test.txt"
    story.write_text(" ".join(book.sentences[100:104]) + "\n")
    summary = _dedup([directory], tmp_path / "out", "--exclude", str(squad), str(story))
    by_file = {pathlib.Path(e["file"]).name: e for e in summary["dedup"]["exclude"]}
    assert by_file["squad-dev.jsonl"]["sentences_removed"] >= 3
    assert by_file["race-test.txt"]["sentences_removed"] >= 4
    kept = load_documents(tmp_path / "out", summary)
    assert not set(article.sentences[10:13]) & set(kept[article.id].sentences)
    assert set(article.sentences[:9]) <= set(kept[article.id].sentences)  # the rest of it stays
    assert max(book.sentences[100:104], key=len) not in kept[book.id].sentences  # short ones recur in the book
    removed = sum(e["sentences_removed"] for e in by_file.values())
    assert summary["sentences"] == sum(len(d.sentences) for d in documents.values()) - removed


def test_a_document_made_of_excluded_text_is_removed_as_contaminated(tmp_path):
    texts = ["The first record is an ordinary paragraph that nobody asked to keep out of training at all.",
             "A question from the test set: which river runs through the old town of Example, and where does "
             "it meet the sea after its long journey through the hills?"]
    source = tmp_path / "notes.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    run_extract([str(source)], tmp_path / "extract")
    exclude = tmp_path / "test-set.txt"
    exclude.write_text(texts[1])
    summary = _dedup([tmp_path / "extract"], tmp_path / "out", "--exclude", str(exclude))
    assert summary["outcomes"]["contaminated"] == 1 and summary["documents"] == 1
    assert summary["dedup"]["exclude"][0]["documents_removed"] == 1
    assert [s["place"] for s in summary["skipped_examples"] if s["outcome"] == "contaminated"] == \
        ["document notes:1"]
    exclude.write_text("\n\n".join(texts))  # everything: the run says so, and exits 4
    assert cli.main(["dedup", str(tmp_path / "extract"), "--output", str(tmp_path / "none"), "--exclude",
                     str(exclude)]) == cli.EXIT_NOTHING_READ


def test_mistakes_get_one_line(corpus, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{not json\n')
    cases = [
        ([str(BOOKS)], "not an extract output"),
        ([str(corpus["inputs"][1]), "--exclude", str(tmp_path / "missing.txt")], "missing.txt"),
        ([str(corpus["inputs"][1]), "--exclude", str(bad)], "bad.jsonl: line 2: invalid JSON"),
        ([str(corpus["inputs"][1]), "--jaccard", "1.5"], "--jaccard must be in (0, 1]"),
    ]
    for arguments, message in cases:
        capsys.readouterr()
        assert cli.main(["dedup", *arguments, "--output", str(tmp_path / "out")]) == cli.EXIT_NOT_STARTED
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "summary.json").exists()
    capsys.readouterr()
    assert cli.main(["prepare", str(BOOKS), "--output", str(tmp_path / "prepared"), "--exclude", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == "albertprep prepare: --exclude needs --dedup (the dedup stage is where " \
        "excluded text is removed)"


def test_prepare_dedup_runs_the_stage_first_and_records_it(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    for name in ("blake-poems.txt", "shakespeare-caesar.txt"):
        (books / name).write_bytes((BOOKS / name).read_bytes())
    (books / "zz-caesar-again.txt").write_bytes((BOOKS / "shakespeare-caesar.txt").read_bytes())
    output = tmp_path / "prepared"
    assert cli.main(["prepare", str(books), "--output", str(output), "--spm-model", str(ALBERT_MODEL), "--dedup",
                     "--dupe-factor", "1", "--max-seq-length", "128", "--num-shards", "2",
                     "--eval-fraction", "0"]) == 0
    manifest = json.loads((output / "manifest.json").read_text())
    (corpus,) = manifest["corpus"]
    assert corpus["outcomes"]["duplicate"] == 1 and corpus["documents"] == 2
    assert corpus["dedup"]["duplicates"]["exact"] == 1
    assert all("/deduplicated/" in f["path"] for f in manifest["documents_files"])
    assert (output / "deduplicated" / "duplicates.jsonl").read_text().count("\n") == 1
    assert manifest["documents"]["read"] == 2


def test_a_damaged_documents_file_is_counted_not_fatal(corpus, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    source = corpus["inputs"][1]  # the originals' extract
    for path in source.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    name = json.loads((damaged / "summary.json").read_text())["outputs"]["jsonl"][0]
    lines = (damaged / name).read_bytes().splitlines(keepends=True)
    hostile = [b'[1, 2]', b'{"id": "p", "source": "books", "title": "", "sentences": ["One."], "paragraphs": [5]}',
               b'{"id": "s", "source": "books", "title": "", "sentences": ["A lone \\ud800 surrogate."]}']
    (damaged / name).write_bytes(b'{"id": "cut", "sentences": ["half a rec\n' + b"".join(lines[1:])
                                 + b"\n".join(hostile) + b"\n")
    upstream_read = json.loads((damaged / "summary.json").read_text())["read"]
    summary = _dedup([damaged], tmp_path / "out")
    skips = [s for s in summary["skipped_examples"] if s["outcome"] == "parse_error"]
    assert summary["outcomes"]["parse_error"] == 4 and len(skips) == 4
    assert summary["read"] == upstream_read + 3  # one line replaced, three added
    assert all(s["file"].endswith(name) and s["place"].startswith("record at byte ") for s in skips)
    assert sum(summary["outcomes"].values()) == summary["read"]
    assert summary["outcomes"]["article"] == summary["documents"] == len(load_documents(tmp_path / "out", summary))
    (damaged / name).unlink()
    capsys.readouterr()
    assert cli.main(["dedup", str(damaged), "--output", str(tmp_path / "again")]) == cli.EXIT_NOT_STARTED
    err = capsys.readouterr().err
    assert f"lists {name}, which is missing" in err and len(err.strip().splitlines()) == 1


def test_near_pairs_join_whole_components():
    """a~c and b~c verify, a~b does not: all three are one cluster (no pair is dropped after a first match)."""
    import numpy as np

    from albertprep.pipelines import dedup, fingerprints

    config = dedup.DedupConfig()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=config.num_hashes, dtype=np.uint8)
    a, b, c = base.copy(), base.copy(), base.copy()
    a[:16] += 1  # a and b differ in 32 of 112 values (estimate ~0.71: not verified); each differs from c in 16
    b[16:32] += 1
    assert fingerprints.estimate_jaccard(a.tobytes(), b.tobytes()) < fingerprints.acceptance(0.8, 112)
    group = [bytes([1]) + sketch.tobytes() + ident for sketch, ident in ((a, b"a"), (b, b"b"), (c, b"c"))]
    clusters = fingerprints.Clusters()
    for first, second, *_ in dedup.match_group(group, config):
        clusters.join(first, second)
    assert clusters.duplicates() == {"b": "a", "c": "a"}


def test_clashing_ids_and_empty_inputs_get_one_line_or_an_empty_output(corpus, tmp_path, capsys):
    again = tmp_path / "again"
    run_extract([str(BOOKS / "botchan.txt")], again)  # books:botchan, as in the corpus's originals
    for inputs, message in (([corpus["inputs"][1], again], "ids would clash"),
                            ([corpus["inputs"][1], corpus["inputs"][1]], "is given twice")):
        capsys.readouterr()
        assert cli.main(["dedup", *map(str, inputs), "--output", str(tmp_path / "out")]) == cli.EXIT_NOT_STARTED
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    empty = tmp_path / "empty"
    source = tmp_path / "nothing.jsonl"
    source.write_text('{"text": ""}\n')
    run_extract([str(source)], empty, expect=cli.EXIT_NOTHING_READ)
    assert cli.main(["dedup", str(empty), "--output", str(tmp_path / "none")]) == cli.EXIT_NOTHING_READ
    assert json.loads((tmp_path / "none" / "summary.json").read_text())["documents"] == 0
