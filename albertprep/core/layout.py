"""The files of a prepared directory, named once for the writer and the readers.

No Beam here: the loader imports it.
"""

import hashlib

MANIFEST = "manifest.json"
COMPLETED = "COMPLETED"  # written last: its presence means the directory is whole
SPM_MODEL = "spm.model"
DOCUMENTS = "documents"  # the corpus stage's output, when prepare is given raw inputs
DEDUPLICATED = "deduplicated"  # the dedup stage's output, when prepare is given --dedup
RUNS = "runs.tmp"  # sorted runs of records while prepare runs (pipelines/runs.py); gone when it ends
PREPARED_FILES = (MANIFEST, COMPLETED, SPM_MODEL)  # with the *.array_record shards and DOCUMENTS/
SPLITS = ("train", "eval")


def sha256_file(path: str, block_size: int = 8 << 20) -> str:
    """The hex sha256 the manifest records for a shard. hashlib releases the
    GIL on large blocks, so threads hash several files in parallel."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(block_size), b""):
            digest.update(block)
    return digest.hexdigest()
