import pytest

from pipelines.sentences import split_sentences


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mr. Smith went to Washington. He arrived at 3.5 p.m. on Monday.",
         ["Mr. Smith went to Washington.", "He arrived at 3.5 p.m. on Monday."]),
        ("The U.S. economy grew 2.5 percent in 2019. Analysts were surprised.",
         ["The U.S. economy grew 2.5 percent in 2019.", "Analysts were surprised."]),
        ("Some fruits, e.g. apples and pears, are sweet. Others are not.",
         ["Some fruits, e.g. apples and pears, are sweet.", "Others are not."]),
        ('"Stop!" he said. She left.', ['"Stop!" he said.', "She left."]),
        ("Dr. J. R. R. Tolkien wrote books. They sold well.", ["Dr. J. R. R. Tolkien wrote books.", "They sold well."]),
        ("It cost $1.50 in St. Louis. That is cheap.", ["It cost $1.50 in St. Louis.", "That is cheap."]),
        ("I met Mrs. Weston; and Mr. Knightley was there. Emma smiled.",
         ["I met Mrs. Weston; and Mr. Knightley was there.", "Emma smiled."]),
    ],
)
def test_abbreviations_decimals_and_quotes_do_not_split(text, expected):
    assert split_sentences(text) == expected


def test_no_empty_sentences_and_text_is_kept_verbatim():
    text = "First one.   ...   Second   one!  \n ?? Third. \u2026"
    sentences = split_sentences(text)
    assert sentences == ["First one. ...", "Second one!", "?? Third."]
    normalized = " ".join(text.split())
    assert " ".join(sentences) in normalized


def test_the_fast_path_agrees_with_syntok_on_real_paragraphs():
    """split_sentences runs syntok only where a piece is ambiguous; on real
    books it must give syntok's sentences, except in the few paragraphs where
    syntok ends a sentence at a semicolon ("Very well;" | "I shall..."), after
    an opening parenthetical, or before a quoted lower-case word ("Oh!" |
    "'tis a nice place!"), which we do not."""
    from conftest import BOOKS

    from pipelines import books
    from pipelines.sentences import split_sentences_syntok

    paragraphs = []
    for path in sorted(BOOKS.glob("*.txt")):
        paragraphs += books.parse_book(books.decode(path.read_bytes()).text, path.stem).paragraphs
    differ = [p for p in paragraphs if split_sentences(p) != split_sentences_syntok(p)]
    assert len(paragraphs) > 10_000
    assert sum(";" in p for p in differ) > 0.9 * len(differ)
    assert len(differ) < 0.04 * len(paragraphs)
