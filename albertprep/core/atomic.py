"""Files that appear whole or not at all.

Every output file (extracted documents, shards, the manifest, TFRecords,
loader state) is written under a hidden temporary name beside its target
and renamed when complete, so a killed or retried worker never leaves half
a file under the final name, and a reader sees the old file or the new one
(on local disks and object stores; see `created` for HDFS).
The temporary name carries the process id and a clock, so two attempts at
the same file never write into each other. Beam is imported only by
`created`, the one for remote filesystems: the loader uses `local_path`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import BinaryIO


def temporary_name(name: str) -> str:
    """Hidden, so globs for outputs never match it; unique to this process and moment."""
    return f".{name}.tmp-{os.getpid()}-{time.monotonic_ns()}"


@contextlib.contextmanager
def local_path(path: str | os.PathLike, fsync: bool = False) -> Iterator[str]:
    """A temporary path to write `path` through (for writers that want a
    path, such as ArrayRecord's); renamed to `path` on success, removed on
    error. `fsync` flushes the file and then the rename to disk, for state a
    crash must not lose."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, temporary_name(name))
    try:
        yield temporary
        if fsync:
            with open(temporary, "rb") as f:
                os.fsync(f.fileno())
        os.replace(temporary, path)
        if fsync:
            handle = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(handle)
            finally:
                os.close(handle)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextlib.contextmanager
def created(path: str) -> Iterator[BinaryIO]:
    """A binary file on any Beam filesystem (local, gs://, s3://, hdfs://),
    renamed to `path` on success, deleted on error. Local renames and object
    stores' copies replace the old file in one step; a filesystem whose
    rename refuses an existing target (HDFS) has it deleted first, which
    leaves a moment with neither (only there: elsewhere a failed rename is
    an error, not a reason to delete the old file)."""
    from apache_beam.io.filesystem import BeamIOError
    from apache_beam.io.filesystems import FileSystems

    directory, name = path.rsplit("/", 1) if "/" in path else ("", path)
    temporary = FileSystems.join(directory, temporary_name(name)) if directory else temporary_name(name)
    file = FileSystems.create(temporary)
    renamed = False
    try:
        try:
            yield file
        finally:
            file.close()
        try:
            FileSystems.rename([temporary], [path])
        except BeamIOError:
            if not path.startswith("hdfs://") or not FileSystems.exists(path):
                raise
            FileSystems.delete([path])
            FileSystems.rename([temporary], [path])
        renamed = True
    finally:
        if not renamed and FileSystems.exists(temporary):  # no extra round trip on success
            FileSystems.delete([temporary])
