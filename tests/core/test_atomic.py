"""Files appear whole or not at all: a failed write leaves the old file and no debris."""

import os

import pytest

from albertprep.core import atomic


class _Killed(Exception):
    pass


def test_local_path_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(_Killed):
        with atomic.local_path(target) as temporary, open(temporary, "w") as f:
            assert os.path.dirname(temporary) == str(tmp_path) and os.path.basename(temporary).startswith(".")
            f.write("half of the n")
            raise _Killed
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]
    with atomic.local_path(target, fsync=True) as temporary, open(temporary, "w") as f:
        f.write("new")
        assert target.read_text() == "old"  # nothing shows until the rename
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["state.json"]


def test_created_on_a_beam_filesystem_behaves_alike(tmp_path):
    target = str(tmp_path / "manifest.json")
    with pytest.raises(_Killed):
        with atomic.created(target) as f:
            f.write(b"{")
            raise _Killed
    assert os.listdir(tmp_path) == []
    with atomic.created(target) as f:
        f.write(b"{}")
        assert not os.path.exists(target)
    with atomic.created(target) as f:  # an existing file is replaced
        f.write(b'{"v": 2}')
    assert open(target, "rb").read() == b'{"v": 2}' and os.listdir(tmp_path) == ["manifest.json"]
