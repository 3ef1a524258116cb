import numpy as np
import pytest
from conftest import ALBERT_MODEL

from albertprep.core.tokenizer import WORD_START, Tokenizer, normalize

pytestmark = pytest.mark.skipif(ALBERT_MODEL is None or not ALBERT_MODEL.exists(), reason="no ALBERT model")

SENTENCES = ["In 1,000 years the town grew to 12,500 people, then 3,000,000.",
             "No numbers here, only words.",
             "",
             "It cost 4,5 and 6, in that order, 7,8,9,10."]


def _albert_pieces(tokenizer: Tokenizer, text: str) -> list[int]:
    """google-research/albert's encode_pieces rule, one piece at a time: a piece
    that ends in a digit and a comma is encoded again without the comma, and
    the comma follows it; the ▁ of the first re-encoded piece goes unless the
    original piece had one."""
    processor = tokenizer.processor
    out = []
    for piece in processor.encode(normalize(text, tokenizer.do_lower_case, tokenizer.tex_quotes), out_type=str):
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            parts = processor.encode(piece[:-1].replace(WORD_START, ""), out_type=str)
            if piece[0] != WORD_START and parts and parts[0].startswith(WORD_START):
                parts = parts[1:] if len(parts[0]) == 1 else [parts[0][1:], *parts[1:]]
            out.extend([*parts, ","])
        else:
            out.append(piece)
    return [processor.piece_to_id(p) for p in out]


def test_digit_commas_are_split_as_albert_splits_them_in_a_whole_document():
    tokenizer = Tokenizer(ALBERT_MODEL.read_bytes())
    hit = [any(tokenizer._digit_comma[tokenizer.processor.encode(normalize(s), out_type=int)]) for s in SENTENCES]
    assert hit == [False, False, False, True]  # "▁4,", "▁6,", "▁7,": the case is met, in one sentence of four
    ids, lengths = tokenizer.encode_joined(SENTENCES)
    expected = [_albert_pieces(tokenizer, s) for s in SENTENCES]
    assert lengths.tolist() == [len(e) for e in expected] and lengths[2] == 0
    assert ids.tolist() == [i for e in expected for i in e]
    assert [a.tolist() for a in tokenizer.encode(SENTENCES)] == expected
    assert np.array_equal(tokenizer.encode_joined(SENTENCES[1:2])[0], tokenizer.encode(SENTENCES[1:2])[0])
