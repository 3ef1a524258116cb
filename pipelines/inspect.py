"""`albertprep inspect`: prepared instances as a person reads them.

A masked position shows what the model sees and what it must predict:
`[MASK]→word` replaced by [MASK], `~other~→word` replaced by a random
piece, `{word}` kept as it was.
"""

from __future__ import annotations

import json
import os

from array_record.python.array_record_module import ArrayRecordReader

from pipelines import layout, records
from pipelines.tokenizer import Tokenizer


def render_instance(instance: records.Instance, pieces: list[str]) -> str:
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
    label = "swapped (1)" if instance.sop_label else "natural order (0)"
    header = (f"length {len(instance.input_ids)}, A {instance.len_a} tokens, "
              f"{len(originals)} masked, sentence order: {label}")
    return header + "\n  " + " ".join(words)


def render(directory: str, split: str = "train", count: int = 3) -> str:
    with open(os.path.join(directory, layout.MANIFEST)) as f:
        manifest = json.load(f)
    tokenizer = Tokenizer.from_file(os.path.join(directory, manifest["tokenizer"]["file"]),
                                    manifest["tokenizer"]["normalization"]["do_lower_case"])
    pieces = tokenizer.pieces
    lines = []
    for shard in manifest["splits"][split]["shards"]:
        if len(lines) >= count:
            break
        if not shard["records"]:
            continue
        reader = ArrayRecordReader(os.path.join(directory, shard["file"]))
        wanted = min(count - len(lines), shard["records"])
        for record in reader.read(list(range(wanted))):
            lines.append(f"[{shard['file']}] " + render_instance(records.decode(record), pieces))
        reader.close()
    stats = {k: v for k, v in (manifest["splits"][split]["statistics"] or {}).items() if k != "length_histogram"}
    return "\n\n".join(lines) + f"\n\n{split} statistics:\n" + json.dumps(stats, indent=2)
