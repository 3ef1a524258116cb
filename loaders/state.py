"""The loader's checkpoint: Grain's iterator state inside our own JSON document.

Grain's state says where each worker is in the index stream; it does not
say which data or settings that stream belongs to, and a state restored
into a loader with other shards, batch size, process count or worker count
would silently yield other batches. The document therefore carries a
fingerprint of everything that decides the stream, and restoring refuses
any difference with an error naming it. Prefetch depths and read threads
are left out: they change speed, not batches.

    {"format": "albertprep.loader_state", "version": 2,
     "fingerprint": {...}, "batches": 120, "grain": {Grain's state}}
"""

from __future__ import annotations

import json
import os

from albertprep.core import atomic
from albertprep.core.errors import UserError

STATE_FORMAT = "albertprep.loader_state"
STATE_VERSION = 2  # 2: Grain's dataset-API iterator state (1 was its DataLoader's)

# What a field of the fingerprint means, for the error message.
_DESCRIPTIONS = {
    "split": "split",
    "records": "number of records",
    "shards": "shard list (sha256 of the shards' record counts and checksums)",
    "layout": "feature layout",
    "batch_size": "batch size",
    "drop_remainder": "drop_remainder",
    "num_epochs": "number of epochs",
    "shuffle": "shuffle",
    "seed": "seed",
    "dynamic_masking": "dynamic masking",
    "masking": "masking settings",
    "process_index": "process index",
    "process_count": "process count",
    "worker_count": "worker count",
}


class IncompatibleStateError(UserError, ValueError):
    """A saved state that does not belong to this loader; the message says why."""


def encode_state(fingerprint: dict, grain_state: dict, batches: int) -> bytes:
    document = {"format": STATE_FORMAT, "version": STATE_VERSION, "fingerprint": fingerprint,
                "batches": batches, "grain": grain_state}
    return json.dumps(document, indent=1, sort_keys=True).encode("utf-8")


def decode_state(state: bytes | str, fingerprint: dict) -> tuple[dict, int]:
    """(Grain's state, batches consumed) once the document is checked against
    this loader's fingerprint; raises IncompatibleStateError."""
    try:
        document = json.loads(state)
    except ValueError as error:
        raise IncompatibleStateError(f"the loader state is not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise IncompatibleStateError(f"not an albertprep loader state (format {STATE_FORMAT!r} expected); "
                                     "a bare Grain state cannot be checked, so it is refused")
    if document.get("version") != STATE_VERSION:
        raise IncompatibleStateError(f"loader state version {document.get('version')}, this loader reads "
                                     f"version {STATE_VERSION}")
    differences = describe_differences(document.get("fingerprint", {}), fingerprint)
    if differences:
        raise IncompatibleStateError("the saved loader state belongs to another configuration and would not "
                                     "resume the same batches: " + "; ".join(differences))
    return document["grain"], int(document["batches"])


def describe_differences(saved: dict, current: dict) -> list[str]:
    differences = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            name = _DESCRIPTIONS.get(key, key)
            differences.append(f"{name}: {_show(saved.get(key))} in the state, {_show(current.get(key))} now")
    return differences


def _show(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def write_state_file(path: str | os.PathLike, state: bytes) -> None:
    """Atomically and synced to disk (albertprep/core/atomic.py), so a process
    killed mid-write leaves the previous state."""
    with atomic.local_path(path, fsync=True) as temporary, open(temporary, "wb") as f:
        f.write(state)


def read_state_file(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as f:
        return f.read()
