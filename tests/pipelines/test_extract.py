import json
import re

import pytest
from conftest import BOOKS, WIKI, run_extract

from albertprep import cli

MARKUP = re.compile(r"\{\{|\}\}|\[\[|\]\]|<ref|\{\||'''")


def test_every_page_and_file_is_accounted_for(corpus_extract):
    _, summary, documents = corpus_extract
    assert summary["read"] == sum(summary["outcomes"].values())
    by_file = summary["by_file"]
    # "List of anthropologists" is all list: no prose, so empty (lists are not prose by default)
    sample = {"article": 105, "empty": 1, "redirect": 99, "other_namespace": 1}
    assert by_file[str(WIKI / "enwiki-sample.xml.bz2")] == sample
    assert by_file[str(WIKI / "enwiki-table-markup.xml.bz2")] == {"article": 5}
    assert summary["by_source"]["enwiki"] == {"article": 110, "empty": 1, "redirect": 99, "other_namespace": 1}
    assert summary["by_source"]["bgwiki"] == {"article": 1, "other_namespace": 2}
    viwiki = summary["by_source"]["viwiki"]  # the Main Page has no prose: empty
    assert viwiki == {"article": 5, "empty": 1, "redirect": 3, "other_namespace": 1}
    assert summary["by_source"]["books"] == {"article": 9}
    assert summary["read"] == 206 + 5 + 3 + 10 + 9
    assert summary["documents"] == len(documents) == summary["outcomes"]["article"]
    files = summary["files"]
    assert files["read"] == 4 + 9
    assert files["decoding_fallback"] == {
        str(BOOKS / "chesterton-ball.txt"): "cp1252", str(BOOKS / "shakespeare-caesar.txt"): "cp1252"
    }
    assert list(files["truncated"]) == [str(WIKI / "viwiki-truncated.xml")]
    # split into byte ranges by default: the last range reports the cut, after its own complete pages
    assert re.search(r"^bytes \d+-339516: after \d+ complete pages: no element found",
                     files["truncated"][str(WIKI / "viwiki-truncated.xml")])
    empty = [s for s in summary["skipped_examples"] if s["outcome"] == "empty"]
    assert [(s["file"], s["place"]) for s in empty] == [
        (str(WIKI / "enwiki-sample.xml.bz2"), "page 'List of anthropologists' (id 728)"),
        (str(WIKI / "viwiki-truncated.xml"), "page 'Trang Chính' (id 2)"),
    ]


def test_no_markup_left_in_any_sentence(corpus_extract):
    _, _, documents = corpus_extract
    sentences = [s for d in documents.values() for s in d.sentences]
    assert len(sentences) > 50_000
    leftovers = [s for s in sentences if MARKUP.search(s)]
    assert leftovers == []
    assert all(s and s == s.strip() and "\n" not in s for s in sentences)


def test_anarchism_reads_as_plain_english(corpus_extract):
    _, _, documents = corpus_extract
    anarchism = documents["enwiki-sample:12"]
    assert anarchism.title == "Anarchism"
    assert anarchism.sentences[0] == (
        "Anarchism is a political philosophy that advocates self-governed societies based on voluntary institutions."
    )
    assert [s.title for s in anarchism.sections][:3] == ["Etymology and terminology", "History", "Origins"]
    assert not any(s.title in ("References", "External links") for s in anarchism.sections)


def test_table_markup_articles_are_clean(corpus_extract):
    _, summary, documents = corpus_extract
    table_docs = [d for d in documents.values() if d.title == "Constructive vote of no confidence"]
    assert len(table_docs) == 1
    assert table_docs[0].sentences[0].startswith("The constructive vote of no confidence (in German: konstruktives")


def test_bert_text_output_matches_jsonl(corpus_extract):
    output, summary, documents = corpus_extract
    for jsonl_name, text_name in zip(summary["outputs"]["jsonl"], summary["outputs"]["text"]):
        ids = [json.loads(line)["id"] for line in (output / jsonl_name).read_text().splitlines()]
        blocks = (output / text_name).read_text().split("\n\n")
        assert blocks[-1] == ""
        assert [b.split("\n") for b in blocks[:-1]] == [list(documents[i].sentences) for i in ids]


def test_ids_are_stable_names(corpus_extract):
    _, _, documents = corpus_extract
    assert "books:austen-emma" in documents and "enwiki-table-markup:316" in documents
    assert "enwiki-sample:316" in documents  # the same page in two dumps: two ids
    assert all(re.fullmatch(r"(enwiki-sample|enwiki-table-markup|bgwiki-utf16-sample|viwiki-truncated):\d+"
                            r"|books:[\w-]+", i) for i in documents)


def test_finished_output_is_not_overwritten_silently(tmp_path, capsys):
    book = str(BOOKS / "blake-poems.txt")
    run_extract([book], tmp_path)
    assert cli.main(["extract", book, "--output", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    summary = run_extract([book], tmp_path, "--overwrite")
    assert summary["documents"] == 1


def test_missing_and_unknown_inputs_are_named(tmp_path, capsys):
    assert cli.main(["extract", str(tmp_path / "nope.xml"), "--output", str(tmp_path / "o")]) == 2
    assert "nope.xml: no such file" in capsys.readouterr().err
    odd = tmp_path / "corpus.bin"
    odd.write_bytes(b"x")
    assert cli.main(["extract", str(odd), "--output", str(tmp_path / "o")]) == 2
    assert "corpus.bin: cannot tell its format" in capsys.readouterr().err


def test_text_inputs_with_bad_records_are_counted(tmp_path):
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text('{"id": "a", "text": "One. Two."}\n{broken\n{"title": "no text"}\n{"text": "   "}\n')
    sentences = tmp_path / "bert.txt"
    sentences.write_bytes(b"S one.\nS two.\n\nOther doc.\n\n\xff\xfe bad\n\nLast.\n")
    summary = run_extract([f"jsonl:{jsonl}", f"sentences:{sentences}"], tmp_path / "out")
    assert summary["by_source"]["mine"] == {"article": 1, "parse_error": 2, "empty": 1}
    assert summary["by_source"]["bert"] == {"article": 3, "parse_error": 1}
    places = {(s["file"].rsplit("/", 1)[-1], s["place"]) for s in summary["skipped_examples"]}
    assert ("mine.jsonl", f"record at byte {jsonl.read_bytes().index(b'{broken')}") in places
    assert ("bert.txt", f"record at byte {sentences.read_bytes().index(bytes([255]))}") in places


@pytest.mark.parametrize("prefix", ["book", "sentences"])
def test_prefix_chooses_the_reader(tmp_path, prefix):
    text = tmp_path / "t.txt"
    text.write_text("One sentence here.\nAnother line.\n")
    summary = run_extract([f"{prefix}:{text}"], tmp_path / "out")
    assert summary["documents"] == 1 and summary["inputs"][0]["kind"] == prefix


def test_a_bad_page_is_dropped_alone_and_counted(tmp_path):
    page = "<page><title>{t}</title><ns>{ns}</ns><id>{i}</id><revision><text>{text}</text></revision></page>"
    dump = tmp_path / "xxwiki-test.xml"
    dump.write_text("<mediawiki>" + "".join([
        page.format(t="Good", ns=0, i=1, text="A fine article. It has two sentences."),
        page.format(t="Bad ns", ns="zero", i=2, text="Lost."),
        page.format(t="No id", ns=0, i="", text="Lost too."),
        page.format(t="Also good", ns=0, i=4, text="Still read after the bad ones."),
    ]) + "</mediawiki>")
    summary = run_extract([str(dump)], tmp_path / "out")
    assert summary["outcomes"]["article"] == 2 and summary["outcomes"]["parse_error"] == 2
    reasons = {s["place"]: s["reason"] for s in summary["skipped_examples"]}
    assert reasons == {"page 'Bad ns' (id 2)": "<ns> is 'zero', not a number",
                       "page 'No id' (id )": "<id> is '', not a number"}


def test_a_file_named_twice_is_read_once(tmp_path):
    summary = run_extract([str(BOOKS), str(BOOKS / "blake-poems.txt")], tmp_path)
    assert summary["by_source"] == {"books": {"article": 9}}


def test_a_glob_of_books(tmp_path):
    summary = run_extract([str(BOOKS / "austen-*.txt")], tmp_path)
    assert sorted(summary["by_file"]) == [str(BOOKS / f"austen-{n}.txt") for n in ("emma", "persuasion", "sense")]
    assert summary["documents"] == 3
