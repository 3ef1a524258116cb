"""ALBERT's text normalisation and SentencePiece tokenisation.

As google-research/albert's tokenization.py (`preprocess_text`, which its
create_pretraining_data.py runs on every line): whitespace collapsed, NFKD
with combining accents stripped, lower-cased when `do_lower_case` (ALBERT's
English model has no upper-case pieces), and a piece like "▁9," split into
"▁9" + "," as ALBERT's encode_pieces does. One difference, ours: `` and ''
become " (as XLNet's and Hugging Face's ALBERT tokenizers do; ALBERT's
own does not, and its 30k-clean model then encodes `` as <unk>), so that
the TeX-style quotes of older e-texts and the straight ones are one token.
No Beam here: the loader and the model's tests use it too.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import unicodedata
from typing import TYPE_CHECKING

import numpy as np

from albertprep.core.errors import UserError
from albertprep.core.records import MaskingVocab, cut

if TYPE_CHECKING:
    import sentencepiece as spm

SPECIAL_PIECES = {"<pad>": 0, "<unk>": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
WORD_START = "\u2581"  # SentencePiece's "▁"


class VocabularyError(UserError, ValueError):
    """A SentencePiece model ALBERT cannot use; the message says why."""


# ALBERT's list of punctuation pieces: string.punctuation without "'", "<",
# "=" and ">" (its "€" and "£" were added as bytes, so they never match).
_ALBERT_PUNCTUATION = frozenset('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
_ALBERT_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz") | _ALBERT_PUNCTUATION


def _is_albert_start(piece: str) -> bool:
    return (piece.startswith((WORD_START, "<")) or piece in _ALBERT_PUNCTUATION
            or not all(char.lower() in _ALBERT_CHARACTERS for char in piece))


def normalize(text: str, do_lower_case: bool = True, tex_quotes: bool = True) -> str:
    """ALBERT's preprocess_text; with `tex_quotes` (ours, not ALBERT's), `` and '' become "."""
    text = " ".join(text.split())
    if tex_quotes:
        text = text.replace("``", '"').replace("''", '"')
    if not text.isascii():  # NFKD leaves ASCII as it is: most text skips this
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower() if do_lower_case else text


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """A checked SentencePiece model; picklable (it carries the model bytes)."""

    model: bytes
    do_lower_case: bool = True
    tex_quotes: bool = True  # `` and '' to " before encoding (ours); False: exactly ALBERT's preprocess_text

    def __post_init__(self) -> None:
        processor = self.processor
        needed = ", ".join(f"{piece}={i}" for piece, i in SPECIAL_PIECES.items())
        missing = [piece for piece in SPECIAL_PIECES
                   if piece != "<unk>" and processor.is_unknown(processor.piece_to_id(piece))]
        if missing:
            raise VocabularyError(f"the SentencePiece model has no {', '.join(missing)}; ALBERT needs {needed}")
        misplaced = [f"{piece} is {processor.piece_to_id(piece)}" for piece, i in SPECIAL_PIECES.items()
                     if processor.piece_to_id(piece) != i]
        if misplaced:
            raise VocabularyError(f"the SentencePiece model has {', '.join(misplaced)}; ALBERT needs {needed}")

    @classmethod
    def from_file(cls, path: str, do_lower_case: bool = True) -> Tokenizer:
        with open(path, "rb") as f:
            return cls(f.read(), do_lower_case)

    @functools.cached_property
    def processor(self) -> spm.SentencePieceProcessor:
        # imported here, not at the top: the corpus stage's processes import
        # this module (through the CLI) but never tokenize, and SentencePiece
        # is 6 MB of their RSS
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=self.model)

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.model).hexdigest()

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    @functools.cached_property
    def pieces(self) -> list[str]:
        return [self.processor.id_to_piece(i) for i in range(self.vocab_size)]

    @functools.cached_property
    def word_start(self) -> np.ndarray:
        """[vocab] bool: the piece begins a word (starts with ▁)."""
        return np.array([p.startswith(WORD_START) for p in self.pieces], bool)

    @functools.cached_property
    def albert_word_start(self) -> np.ndarray:
        """[vocab] bool: the piece starts a word unit by ALBERT's own rule
        (create_pretraining_data.py's `_is_start_piece_sp`), which its
        `token_boundary` feature and whole-word masking use: a piece that
        begins with ▁ or <, a lone punctuation mark of its list, or any piece
        with a character that is neither an ASCII letter nor one of those
        marks (a digit, an apostrophe, a non-ASCII letter, "€"); [CLS] and
        [SEP] too. So "▁knightley" + "," is two units, not one word."""
        starts = np.array([_is_albert_start(piece) for piece in self.pieces], bool)
        for piece in ("[CLS]", "[SEP]"):
            starts[self.processor.piece_to_id(piece)] = True
        return starts

    @functools.cached_property
    def random_ids(self) -> np.ndarray:
        """Ids a random replacement may draw: no control, unknown or unused piece."""
        p = self.processor
        return np.array([i for i in range(self.vocab_size)
                         if not (p.is_control(i) or p.is_unknown(i) or p.is_unused(i))], np.int64)

    def masking_vocab(self) -> MaskingVocab:
        """What masking needs of the vocabulary: [MASK] and the random replacements."""
        return MaskingVocab(mask_id=self.processor.piece_to_id("[MASK]"), random_ids=self.random_ids)

    @functools.cached_property
    def _digit_comma(self) -> np.ndarray:
        return np.array([len(p) > 1 and p[-1] == "," and p[-2].isdigit() for p in self.pieces], bool)

    def encode(self, sentences: list[str], threads: int = 1) -> list[np.ndarray]:
        """Token ids of each sentence, normalised first (`encode_joined`, cut
        into sentences)."""
        return cut(*self.encode_joined(sentences, threads))

    def encode_joined(self, sentences: list[str], threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The token ids of all the sentences end to end, and each one's count.

        One thread by default: a Beam worker is one core's share of the job.
        The digit-comma pieces are looked for in the whole document at once,
        and only the sentences that hold one are split again, one at a time:
        looking sentence by sentence took longer than SentencePiece itself.
        """
        texts = [normalize(s, self.do_lower_case, self.tex_quotes) for s in sentences]
        encoded = self.processor.encode(texts, out_type=int, num_threads=threads)
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        ids = np.fromiter(itertools.chain.from_iterable(encoded), np.int64, int(lengths.sum()))
        hits = np.flatnonzero(self._digit_comma[ids])
        if not len(hits):
            return ids, lengths
        pieces = cut(ids, lengths)
        for i in np.unique(np.searchsorted(np.cumsum(lengths), hits, side="right")).tolist():
            pieces[i] = self._split_digit_commas(encoded[i])
        return np.concatenate(pieces), np.fromiter(map(len, pieces), np.int64, len(pieces))

    def _split_digit_commas(self, ids: list[int]) -> np.ndarray:
        """One sentence's ids with each digit-comma piece split as ALBERT's
        encode_pieces does (`encode_joined` calls it on the sentences that hold one)."""
        out: list[int] = []
        for i in ids:
            if not self._digit_comma[i]:
                out.append(i)
                continue
            piece = self.pieces[i]
            parts = self.processor.encode(piece[:-1].replace(WORD_START, ""), out_type=str)
            if piece[0] != WORD_START and parts and parts[0].startswith(WORD_START):
                parts = parts[1:] if len(parts[0]) == 1 else [parts[0][1:], *parts[1:]]
            out.extend(self.processor.piece_to_id(p) for p in [*parts, ","])
        return np.asarray(out, np.int64)
