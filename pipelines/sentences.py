"""Sentence splitting with syntok.

Why syntok: on the cases that matter for pretraining text (titles such as
"Mr." and "Dr.", initials, "U.S.", "e.g."/"i.e.", decimals, quotations
such as '"Stop!" he said.') it is as accurate as pysbd and about four times
faster (1.3 vs 0.3 MB/s on Austen, one core); blingfire is 15x faster still
but splits "Mr. Weston" after a semicolon. Numbers in README.md.

Sentences are cut from the original paragraph by syntok's token offsets,
so the text of a sentence is exactly the text of the input (syntok's own
token values can differ from it, e.g. for hyphenated line breaks).
"""

from __future__ import annotations

import re

import syntok.segmenter

_WORD_CHARACTER = re.compile(r"\w")


def split_sentences(paragraph: str) -> list[str]:
    """Splits one paragraph (no newlines needed) into non-empty sentences."""
    starts = [
        sentence[0].offset
        for sentences in syntok.segmenter.analyze(paragraph)
        for sentence in sentences
        if sentence
    ]
    ends = starts[1:] + [len(paragraph)]
    result = []
    for start, end in zip(starts, ends):
        sentence = " ".join(paragraph[start:end].split())
        if _WORD_CHARACTER.search(sentence):
            result.append(sentence)
    return result
