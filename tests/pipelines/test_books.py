import pytest
from conftest import BOOKS

from albertprep.pipelines.books import decode, parse_book
from albertprep.pipelines.sentences import split_sentences


def _book(name):
    decoded = decode((BOOKS / name).read_bytes())
    return decoded, parse_book(decoded.text, name)


@pytest.mark.parametrize("name, words", [
    ("chesterton-ball.txt", ["Brunetière", "Lemaître", "café", "Barrès", "Coppée"]),
    ("shakespeare-caesar.txt", ["Cæsar"]),
])
def test_latin1_books_decode_with_a_counted_fallback(name, words):
    decoded, book = _book(name)
    assert decoded.fallback and decoded.encoding == "cp1252"
    assert "\ufffd" not in decoded.text
    text = " ".join(book.paragraphs)
    for word in words:
        assert word in text


def test_utf8_bom_and_crlf():
    decoded, book = _book("botchan.txt")
    assert not decoded.fallback and decoded.encoding == "utf-8"
    assert not decoded.text.startswith("\ufeff")
    assert not any("\r" in p for p in book.paragraphs)


def test_gutenberg_header_and_footer_are_removed():
    decoded, book = _book("botchan.txt")
    assert "Project Gutenberg" in decoded.text
    text = " ".join(book.paragraphs)
    assert "Gutenberg" not in text and "gutenberg" not in text
    assert "This eBook is for the use of anyone" not in text
    assert book.title == "Botchan (Master Darling)"
    assert book.paragraphs[1].startswith("No translation can expect to equal, much less to excel, the original.")
    assert any("Kiyo" in p for p in book.paragraphs[-20:])


def test_footer_without_header_is_removed():
    _, book = _book("chesterton-ball.txt")
    assert book.title == "The Ball and The Cross"
    assert not any("Gutenberg" in p for p in book.paragraphs)


# Bounds on mean words per sentence by genre: English prose fiction runs
# 15-25 words a sentence (Austen ~21, Chesterton ~18); verse drama and
# poems 6-15. A failure to unwrap lines gives sentences cut at line ends
# (means far below), a failure to split gives paragraph-long ones (above).
@pytest.mark.parametrize("name, low, high", [
    ("austen-emma.txt", 17, 25), ("austen-persuasion.txt", 17, 25), ("austen-sense.txt", 17, 27),
    ("chesterton-ball.txt", 14, 22), ("chesterton-brown.txt", 14, 22), ("botchan.txt", 12, 20),
    ("shakespeare-caesar.txt", 6, 12), ("shakespeare-hamlet.txt", 6, 12), ("blake-poems.txt", 8, 20),
])
def test_sentence_lengths_within_genre_bounds(name, low, high):
    _, book = _book(name)
    sentences = [s for p in book.paragraphs for s in split_sentences(p)]
    words = [len(s.split()) for s in sentences]
    assert low <= sum(words) / len(words) <= high
    assert max(words) < 300  # no sentence runs across paragraphs
    assert not any(s.startswith(("CHAPTER", "Chapter ", "VOLUME")) for s in sentences)
