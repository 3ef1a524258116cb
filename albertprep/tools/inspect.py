"""`albertprep inspect`: prepared instances as a person reads them.

A masked position shows what the model sees and what it must predict:
`[MASK]→word` replaced by [MASK], `~other~→word` replaced by a random
piece, `{word}` kept as it was.
"""

from __future__ import annotations

import json

from array_record.python.array_record_module import ArrayRecordReader

from albertprep.core import records
from albertprep.core.tokenizer import Tokenizer
from albertprep.loaders.dataset import PreparedDataset


def render_instance(instance: records.Instance, pieces: list[str], albert_compat: bool = False) -> str:
    originals = dict(zip(instance.masked_positions.tolist(), instance.masked_ids.tolist()))
    words = []
    for position, token in enumerate(instance.input_ids.tolist()):
        if position not in originals:
            words.append(pieces[token])
        elif token == originals[position]:
            words.append("{" + pieces[token] + "}")
        elif pieces[token] == "[MASK]":
            words.append(f"[MASK]→{pieces[originals[position]]}")
        else:
            words.append(f"~{pieces[token]}~→{pieces[originals[position]]}")
    one = "swapped or B from another document (1)" if albert_compat else "swapped (1)"
    label = one if instance.sop_label else "natural order (0)"
    header = (f"length {len(instance.input_ids)}, A {instance.len_a} tokens, "
              f"{len(originals)} masked, sentence order: {label}")
    return header + "\n  " + " ".join(words)


def render(directory: str, split: str = "train", count: int = 3) -> str:
    """Opened as the loader opens it (complete, of this format), without
    hashing the shards: inspecting is reading a few records."""
    dataset = PreparedDataset.open(directory, split=split, verify_checksums=False)
    pieces = Tokenizer.from_file(dataset.tokenizer_path, dataset.do_lower_case).pieces
    albert_compat = dataset.manifest.albert_compat
    lines = []
    for shard in dataset.shards:
        if len(lines) >= count:
            break
        if not shard.records:
            continue
        reader = ArrayRecordReader(shard.path)
        for record in reader.read(list(range(min(count - len(lines), shard.records)))):
            lines.append(f"[{shard.file}] " + render_instance(records.decode(record), pieces, albert_compat))
        reader.close()
    statistics = dataset.manifest.splits[split].statistics or {}
    shown = {k: v for k, v in statistics.items() if k != "length_histogram"}
    return "\n\n".join(lines) + f"\n\n{split} statistics:\n" + json.dumps(shown, indent=2)
