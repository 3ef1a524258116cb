"""Golden output: the sentences of three real articles of the shared sample,
read against their wikitext by a person and written down in
tests/fixtures/golden/ ("#" lines are headings, one "#" per level). Any
change to rendering, paragraphs or splitting that alters them fails here."""

import pathlib

import pytest
from conftest import WIKI, load_documents, run_extract

GOLDEN = pathlib.Path(__file__).parents[1] / "fixtures" / "golden"
ARTICLES = {"Aa River": "aa-river", "Actrius": "actrius", "Algorithms (journal)": "algorithms-journal"}


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    output = tmp_path_factory.mktemp("golden")
    summary = run_extract([str(WIKI / "enwiki-sample.xml.bz2")], output)
    return {d.title: d for d in load_documents(output, summary).values()}


@pytest.mark.parametrize("title", sorted(ARTICLES))
def test_sentences_of_a_real_article_are_exactly_what_a_reader_sees(documents, title):
    document = documents[title]
    headings = {}
    for section in document.sections:
        headings.setdefault(section.first_sentence, []).append("#" * section.level + " " + section.title)
    lines = []
    for index, sentence in enumerate(document.sentences):
        lines += headings.pop(index, [])
        lines.append(sentence)
    lines += [h for index in sorted(headings) for h in headings[index]]
    assert "\n".join(lines) + "\n" == (GOLDEN / f"{ARTICLES[title]}.txt").read_text()
