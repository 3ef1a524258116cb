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
