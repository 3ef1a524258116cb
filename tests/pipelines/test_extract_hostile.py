"""Hostile and wrong input: counted skips and mended text, never a traceback,
never a silent loss, and the rest of the input still read."""

import bz2
import json
import random
import re
import shutil

import pytest
from conftest import BOOKS, WIKI, load_documents, run_extract

from albertprep import cli

_SAMPLE = bz2.decompress((WIKI / "enwiki-sample.xml.bz2").read_bytes())


def _page(title: str, page_id: int, text: str) -> bytes:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (f"<page><title>{title}</title><ns>0</ns><id>{page_id}</id><revision><id>1</id>"
            f"<text>{escaped}</text></revision></page>\n").encode()


def _dump(*pages: bytes) -> bytes:
    return b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">\n' + b"".join(pages) + b"</mediawiki>\n"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile")
    rng = random.Random(0)
    (data / "random.txt").write_bytes(rng.randbytes(200_000))
    shutil.copy("/bin/ls", data / "elf.txt")  # an executable named like a book
    (data / "nul.txt").write_bytes(b"A fine day.\x00\x00 It rained.\n\nThe end came.\n")
    (data / "notxml.xml").write_text("this is a note, not a dump\n")
    # one invalid byte inside Anarchism's first sentence: the page is kept, and every page after it
    at = _SAMPLE.index(b"'''Anarchism''' is a [[political") + len(b"'''Anarchism''' ")
    (data / "enwiki-badbyte.xml").write_bytes(_SAMPLE[:at] + b"\xff" + _SAMPLE[at:])
    # a page whose whole text is one line, the real Albedo article's prose joined
    albedo = re.search(rb"<title>Albedo</title>.*?<text[^>]*>(.*?)</text>", _SAMPLE, re.S)[1].decode()
    prose = " ".join(line for line in albedo.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
                     .split("\n") if line.strip() and line[0] not in "*{|!=[")
    long_sentence = "Word " + " ".join(["word"] * 4999) + "."
    pages = [
        _page("One line", 1, prose),
        _page("Huge", 2, "Big. " * 500_000),  # 2.5 M characters: over the page limit
        _page("Hostile links", 3, "[http://" * 35_000),  # unclosed links: minutes in the parser
        _page("Long", 4, f"Short one. {long_sentence} {'X' * 300} is not a word. Last one."),
        _page("After", 5, "The pages after the bad ones are read."),
    ]
    (data / "enwiki-pages.xml").write_bytes(_dump(*pages))
    output = tmp_path_factory.mktemp("hostile-out")
    summary = run_extract([str(data)], output, expect=cli.EXIT_INPUT_PROBLEMS)
    return data, summary, load_documents(output, summary)


def test_binary_files_are_a_counted_skip(hostile):
    data, summary, _ = hostile
    assert summary["by_file"][str(data / "random.txt")] == {"binary": 1}
    assert summary["by_file"][str(data / "elf.txt")] == {"binary": 1}
    assert summary["read"] == sum(summary["outcomes"].values())


def test_control_characters_never_reach_the_output(hostile):
    _, summary, documents = hostile
    assert documents["books:nul"].sentences == ("A fine day. It rained.", "The end came.")
    assert summary["sentences_dropped"]["control_characters_removed"] >= 1
    for document in documents.values():
        for sentence in document.sentences:
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", sentence)


def test_over_long_sentences_are_split_and_junk_words_dropped(hostile):
    _, summary, documents = hostile
    sentences = documents["enwiki-pages:4"].sentences
    assert sentences[0] == "Short one." and sentences[-1] == "Last one."
    assert all(len(s) <= 2000 and len(s.split()) <= 300 for s in sentences)
    assert sum(len(s.split()) for s in sentences[1:-1]) == 5000  # every word of the long sentence kept
    assert summary["sentences_dropped"]["split_too_long"] == 1
    assert summary["sentences_dropped"]["word_too_long"] == 1  # the 300-character "word"


def test_oversized_and_pathological_pages_are_skipped_and_the_file_goes_on(hostile):
    data, summary, documents = hostile
    counts = summary["by_file"][str(data / "enwiki-pages.xml")]
    assert counts == {"article": 3, "too_large": 1, "too_complex": 1}
    reasons = {s["place"]: s["reason"] for s in summary["skipped_examples"]}
    assert "over the limit" in reasons["page 'Huge' (id 2)"]
    assert "unclosed" in reasons["page 'Hostile links' (id 3)"]
    assert documents["enwiki-pages:5"].sentences == ("The pages after the bad ones are read.",)


def test_an_invalid_byte_is_replaced_and_counted_and_every_page_is_read(hostile):
    data, summary, documents = hostile
    path = str(data / "enwiki-badbyte.xml")
    assert summary["by_file"][path] == {"article": 105, "empty": 1, "redirect": 99, "other_namespace": 1}
    assert summary["files"]["repaired"][path]["invalid_bytes"] == 1
    assert path not in summary["files"]["truncated"]
    anarchism = next(d for d in documents.values() if d.id.startswith("enwiki-badbyte:") and d.title == "Anarchism")
    assert anarchism.sentences[0].startswith("Anarchism \ufffdis a political philosophy")


def test_a_file_that_is_not_xml_is_a_parse_error_not_a_cut(hostile):
    data, summary, _ = hostile
    path = str(data / "notxml.xml")
    assert summary["by_file"][path] == {"parse_error": 1}
    assert path in summary["files"]["malformed"] and path not in summary["files"]["truncated"]


def test_a_one_line_page_is_read_like_any_other(hostile):
    _, _, documents = hostile
    sentences = documents["enwiki-pages:1"].sentences
    assert len(sentences) > 50
    assert sentences[0].startswith("Albedo")


def test_exit_codes_and_one_line_messages(tmp_path, capsys):
    binary = tmp_path / "in" / "random.txt"
    binary.parent.mkdir()
    binary.write_bytes(random.Random(1).randbytes(10_000))
    assert cli.main(["extract", str(binary), "--output", str(tmp_path / "a")]) == cli.EXIT_NOTHING_READ
    err = capsys.readouterr().err
    assert f"{binary}: not read: binary" in err and "no documents" in err
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["outcomes"]["binary"] == 1

    book = str(BOOKS / "blake-poems.txt")
    assert cli.main(["extract", book, str(binary), "--output", str(tmp_path / "b")]) == cli.EXIT_INPUT_PROBLEMS
    assert capsys.readouterr().err.strip().endswith(f"{binary}: not read: binary, not text")

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert cli.main(["extract", book, "--output", str(a_file)]) == cli.EXIT_NOT_STARTED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err

    (tmp_path / "empty").mkdir()
    assert cli.main(["extract", str(tmp_path / "empty"), "--output", str(tmp_path / "c")]) == cli.EXIT_NOT_STARTED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "an empty directory" in err
