"""The warm workers' client (pipelines/warm_client.py): its wire format, and
how it ends when no zygote takes it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from albertprep.pipelines import warm_client


def test_the_request_carries_the_directory_and_every_environment_entry_as_bytes(tmp_path, monkeypatch):
    """What the zygote reads is what the client had: values holding `=`,
    bytes that are not UTF-8, an empty value."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "environb", {b"PLAIN": b"1", b"WITH_EQUALS": b"a=b=c", b"LATIN1": b"caf\xe9",
                                         b"EMPTY": b""})
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(warm_client.request_bytes())
        cwd, environ = warm_client.read_request(theirs)
    assert cwd == os.fsencode(tmp_path)
    assert environ == {b"PLAIN": b"1", b"WITH_EQUALS": b"a=b=c", b"LATIN1": b"caf\xe9", b"EMPTY": b""}


def test_a_client_whose_socket_has_no_zygote_fails_its_worker_in_one_line(tmp_path):
    """Run as Beam runs it (a script, the standard library only): a socket
    left behind by a dead zygote is refused, and the worker command exits 1
    with one line on stderr rather than hang or print a traceback."""
    address = str(tmp_path / "workers.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(address)
    stale.close()  # the file stays; nobody listens
    done = subprocess.run([sys.executable, "-I", "-S", warm_client.__file__, address],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"albertprep worker: the warm worker processes at {address} are gone"]
