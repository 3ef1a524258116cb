"""The worker command of the local runner's warm workers (pipelines/warm.py).

Beam starts one such command per worker (`SubprocessSDKEnvironment`) and
takes it for the worker: it must live as long as the worker does and exit
with its code. This client connects to the zygote's socket, hands over its
working directory and environment (where Beam put the runner's addresses),
and waits for the worker the zygote forked to end.

It is run as a script, `python -I -S warm_client.py ADDRESS`: the standard
library only, no site-packages and not the package, so it starts in about
19 ms against 45 ms for `python -m albertprep.pipelines.warm` (measured
whole-process, 15 runs each), and every 2-worker job starts two of them at
the moment its workers are wanted.

This module owns the wire format, which the zygote reads with
`read_request`:
- client to zygote: a 4-byte big-endian length, then the working directory
  and the environment's `NAME=value` entries, as bytes, joined by NUL
  (neither a path nor an environment entry can hold one);
- zygote to client: `TAKEN` once a worker holds the connection, then one
  byte, the worker's exit code. No byte: the worker or the pool ended first.
"""

import os
import signal
import socket
import struct
import sys

TAKEN = b"t"
# How long a worker command waits for the zygote to take it before it fails
# its pipeline with one line, rather than hang (the zygote died, or is still
# importing on a machine far slower than any seen).
ACCEPT_SECONDS = 300.0
_LENGTH = struct.Struct(">I")


def request_bytes() -> bytes:
    """This process's working directory and environment, framed."""
    payload = b"\0".join([os.getcwdb(), *(name + b"=" + value for name, value in os.environb.items())])
    return _LENGTH.pack(len(payload)) + payload


def _received(connection: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = connection.recv(left)
        if not chunk:
            raise ConnectionError(f"the worker command went away after {size - left} of {size} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_request(connection: socket.socket) -> tuple[bytes, dict[bytes, bytes]]:
    """(working directory, environment) as a client sent them."""
    size = _LENGTH.unpack(_received(connection, _LENGTH.size))[0]
    cwd, *entries = _received(connection, size).split(b"\0")
    return cwd, dict(entry.split(b"=", 1) for entry in entries)


def main(address: str) -> int:
    # SIGINT is ignored from before this interpreter started (`Pool.command`):
    # a Ctrl-C that lands while Python is still starting would otherwise end
    # it with "Fatal Python error" on the command's stderr.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(address)
        connection.sendall(request_bytes())
        connection.settimeout(ACCEPT_SECONDS)
        taken = connection.recv(1)
        connection.settimeout(None)
        code = connection.recv(1) if taken == TAKEN else b""
    except TimeoutError:
        print(f"albertprep worker: no warm worker process took this worker within {ACCEPT_SECONDS:.0f} s",
              file=sys.stderr)
        return 1
    except ConnectionRefusedError:  # the socket is there but no zygote listens: it died
        print(f"albertprep worker: the warm worker processes at {address} are gone", file=sys.stderr)
        return 1
    except OSError:  # the pool was closed or aborted (Ctrl-C) as this worker started
        return 1
    # No byte: the worker or the pool ended before the worker's result was
    # sent; the runner reports the failed worker, or has itself gone (Ctrl-C).
    return code[0] if code else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
