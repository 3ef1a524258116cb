"""Warm worker processes for the local runner's `--workers N`.

Beam's FnApiRunner in multi-processing mode starts each worker as
`python -m apache_beam.runners.worker.sdk_worker_main` when the job's first
stage runs, so every pipeline waits about a second while each worker imports
Beam (on two cores, N workers' imports and the command's own contend), and at
the end it stops the workers one after another, each taking a quarter of a
second to tear its interpreter down. On a job of ten seconds over two workers
that fixed cost alone held the speed-up near 1.55x.

This module keeps Beam's own SDK harness (`create_harness`, fed the
environment Beam gives its workers) but starts it differently:

- One template process (the zygote) imports Beam's worker and our stage
  modules once, then waits on a listening Unix socket. `prestart` starts it
  as the command starts, before the command itself imports Beam, so the two
  imports run side by side (the `albertprep` entry point and
  `python -m albertprep` call it; otherwise the first pipeline does).
- The worker command the runner launches (`attach`) is a small client: it
  connects, hands over its environment and exits with the worker's exit code.
- For each connection the zygote forks a worker, which runs the harness and
  leaves with `os._exit` once its results are sent: no worker imports Beam
  again, none waits on interpreter teardown, and every later pipeline of the
  job (dedup runs three) finds its workers ready at once.

Forking is safe here because the zygote never starts gRPC: importing grpc
starts no thread and opens no channel; every channel and server is made in
the forked worker. The zygote ends when its parent closes its stdin (the
parent exited or closed the pool); a worker ends when its client goes away
(the runner stopped it). Ctrl-C is the parent's to handle: the zygote, its
workers and the clients ignore SIGINT and end with their peers (so a
Ctrl-C prints the command's one line, not a traceback from each client).

This module imports no Beam at module level: `prestart` must run before the
command's own imports (it imports Beam itself, once the zygote is started).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

# What a warm process imports before it waits: Beam's worker and the modules
# whose DoFns the jobs ship, so that a pipeline's first bundle finds them
# loaded; and what the instance stage's DoFns import where they use it.
_PRELOAD = ("albertprep.pipelines.jobs",)
_PRELOAD_FOR = {
    "vocab": ("sentencepiece",),
    "prepare": ("sentencepiece", "array_record.python.array_record_module"),
}
# `import apache_beam` imports what its IO connectors need whenever it is
# installed, each behind `try: import ... except ImportError`: pyarrow
# (Parquet, batched DoFns) is 28 MB of a process's RSS, pymongo and bson
# (MongoDB) 6.5 MB, and Beam's BigQuery module, which brings requests and
# the Pub/Sub and GCS IO with it, 7 MB, on top of Beam's 84 MB. No job here
# uses any of them (remote files go through FileSystems, which imports the
# GCS filesystem on its own), so the processes of a job on the local runner,
# the command and its warm workers, leave them out
# (`leave_out_beam_extras`), as if they were not installed: 42 MB less in
# each. Processes of other runners (Dask's workers, a Dataflow VM) import
# Beam their own way and keep them.
_BEAM_EXTRAS = ("pyarrow", "pymongo", "bson", "apache_beam.io.gcp.bigquery")
_BEAM_COMMANDS = ("extract", "vocab", "dedup", "prepare")
_TAKEN = b"t"
# How long a worker command waits for the zygote to take it before it fails
# its pipeline with one line, rather than hang (the zygote died, or is still
# importing on a machine far slower than any seen).
_ACCEPT_SECONDS = 300.0


class Pool:
    """The zygote of this process's warm workers; see the module doc."""

    def __init__(self, command: str = "") -> None:
        self._dir = tempfile.mkdtemp(prefix="albertprep-workers-")
        self.address = os.path.join(self._dir, "workers.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)
        listener.listen(64)
        self._zygote = subprocess.Popen(
            [sys.executable, "-m", "albertprep.pipelines.warm", "serve", str(listener.fileno()), self._dir,
             *_PRELOAD_FOR.get(command, ())],
            pass_fds=(listener.fileno(),), stdin=subprocess.PIPE, close_fds=True)
        listener.close()  # the zygote holds it now

    def command(self) -> str:
        """The worker command line for Beam's SubprocessSDKEnvironment (a
        shell line: Beam starts it with `shell=True`). The client ignores
        SIGINT from its first instruction on: `trap` sets it ignored and
        `exec` keeps it so."""
        client = f"{shlex.quote(sys.executable)} -m albertprep.pipelines.warm attach {shlex.quote(self.address)}"
        return f"trap '' INT; exec {client}"

    def close(self) -> None:
        """Ends the zygote once its workers have ended; it removes the socket."""
        with contextlib.suppress(OSError):
            self._zygote.stdin.close()
        self._zygote.wait()

    def abort(self) -> None:
        """Ends the workers now (SIGKILL, from the zygote) and then the zygote:
        for Ctrl-C, before the runner goes, so that no worker outlives it to
        print its broken gRPC streams."""
        with contextlib.suppress(OSError):
            self._zygote.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._zygote.wait(timeout=10)


def abort() -> None:
    """`Pool.abort` of this process's pool, if it has one."""
    if _pool is not None:
        _pool.abort()


_pool: Pool | None = None


def pool(command: str = "") -> Pool:
    """This process's pool, made on first use and closed at exit; its
    workers preload what `command` (a CLI command's name) will use."""
    global _pool
    if _pool is None:
        _pool = Pool(command)
        atexit.register(_pool.close)
    return _pool


def leave_out_beam_extras() -> None:
    """Import Beam with its optional Arrow, MongoDB and BigQuery imports
    failing, as if those packages were not installed (see `_BEAM_EXTRAS`).
    Only in a process that has not imported Beam, and never for a module
    already imported. A Beam that needs one of them after all (a later
    release that imports it unguarded) is imported whole instead: a slower
    command, never a broken one."""
    if "apache_beam" in sys.modules:
        return
    left_out = [name for name in _BEAM_EXTRAS if sys.modules.setdefault(name, None) is None]  # None: ImportError
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        for name in list(sys.modules):
            if name in left_out or name == "apache_beam" or name.startswith("apache_beam."):
                del sys.modules[name]


# Beam's SDK harness times each bundle's steps with a sampling thread whose
# sleep grows from 2 ms to 200 ms, and a bundle's end joins that thread,
# waiting out its current sleep: up to 200 ms at the end of every long
# bundle, on every worker, and a stage waits for its slowest worker (py-spy
# on a 2-worker extract: 150 ms of a worker's last 350 ms in
# StateSampler.stop). Beam has no option for the period; its bundle
# processor makes every sampler with the default of StateSampler's
# constructor. A local job's processes set that default to 20 ms: the
# sampler then wakes 50 times a second, each a lock and an addition.
# Measured in paired runs: a 2-worker extract of the 54 MB dump 4.23 ->
# 4.13 s, a 2-worker prepare of books x4 2.34 -> 2.25 s.
_SAMPLING_PERIOD_MS = 20


def quick_bundle_ends() -> None:
    """Make this process's Beam bundles end without waiting on the state
    sampler's sleep (see `_SAMPLING_PERIOD_MS`); a Beam whose sampler has
    another constructor is left as it is."""
    from apache_beam.runners.worker import statesampler

    constructor = statesampler.StateSampler.__init__
    if constructor.__defaults__ == (statesampler.DEFAULT_SAMPLING_PERIOD_MS,):
        constructor.__defaults__ = (_SAMPLING_PERIOD_MS,)


def _on_local_runner(argv: list[str]) -> bool:
    """Whether a command line is a Beam command with no `--runner`."""
    return bool(argv) and argv[0] in _BEAM_COMMANDS and \
        not any(arg == "--runner" or arg.startswith("--runner=") for arg in argv)


def workers_requested(argv: list[str]) -> int:
    """How many local worker processes a command line asks for: N of
    `--workers N` on a Beam command with no `--runner`, else 0. A cheap
    reading of argv, only to start the workers early; the CLI's own parse
    decides what runs, and a wrong guess only costs an idle process."""
    if not _on_local_runner(argv):
        return 0
    workers = 1
    for index, arg in enumerate(argv):
        value = None
        if arg == "--workers" and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
        if value is not None:
            workers = int(value) if value.isdigit() else 1
    return workers if workers > 1 else 0


def prestart(argv: list[str]) -> None:
    """Before a command line's imports: leave out what its Beam job does not
    use, and start the warm workers it will want."""
    if workers_requested(argv):
        pool(argv[0])  # first: its imports run beside the command's
    if _on_local_runner(argv):
        leave_out_beam_extras()


# ---- the two processes' sides ------------------------------------------------

def _exit_when_closed(read, code: int, before=None) -> None:
    """End this process when `read` reaches EOF (its peer went away), after
    calling `before`."""
    def wait() -> None:
        with contextlib.suppress(OSError):
            while read(1 << 16):
                pass
        if before is not None:
            before()
        os._exit(code)
    threading.Thread(target=wait, daemon=True).start()


def _serve(listener_fd: int, directory: str, preload: list[str]) -> int:
    from albertprep.core import malloc  # no Beam; before any thread allocates
    malloc.one_arena()
    leave_out_beam_extras()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Workers are waited for, never left to SIGCHLD's auto-reaping: waiting is
    # what adds a child's CPU time to its parent's children's, and so to the
    # command's own CPU time as its caller measures it.
    workers: set[int] = set()
    def end() -> None:  # also when the parent died without closing the pool (os._exit on Ctrl-C)
        _reap(workers, block=True)
        shutil.rmtree(directory, ignore_errors=True)

    _exit_when_closed(sys.stdin.buffer.read1, 0, before=end)

    def abort(signum, frame) -> None:  # SIGTERM: Pool.abort
        for pid in list(workers):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        end()
        os._exit(0)

    signal.signal(signal.SIGTERM, abort)
    listener = socket.socket(fileno=listener_fd)
    # (running as albertprep.pipelines.warm, the package's log filter is in
    # place before Beam's import would warn)
    from apache_beam.runners.worker import sdk_worker_main
    quick_bundle_ends()
    for module in (*_PRELOAD, *preload):
        importlib.import_module(module)
    root = logging.getLogger()
    for handler in list(root.handlers):  # what a log call during the imports set up: the harness
        root.removeHandler(handler)      # sends its log to the runner, which shows what matters
    while True:
        connection, _ = listener.accept()
        _reap(workers, block=False)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            listener.close()
            _work(connection, sdk_worker_main)
        workers.add(pid)
        connection.close()


def _reap(workers: set[int], block: bool) -> None:
    """Wait for the workers that have ended (all of them, if `block`)."""
    for pid in list(workers):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, 0 if block else os.WNOHANG)[0] == 0:
                continue
        workers.discard(pid)


def _work(connection: socket.socket, sdk_worker_main) -> None:
    """One worker: Beam's harness on the environment its client handed over."""
    connection.sendall(_TAKEN)
    request = json.loads(connection.makefile("rb").readline())
    _exit_when_closed(connection.recv, 1)
    os.chdir(request["cwd"])  # as a worker the runner started itself would be
    os.environ.clear()
    os.environ.update(request["environ"])
    code = 0
    try:
        log_handler, harness, _ = sdk_worker_main.create_harness(os.environ)
        try:
            harness.run()
        finally:
            if log_handler:
                log_handler.close()
    except Exception:  # Beam has logged it to the runner; the runner reports the failure
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        connection.sendall(bytes([code]))
    os._exit(code)


def _attach(address: str) -> int:
    # SIGINT is ignored from before this interpreter started (`Pool.command`):
    # a Ctrl-C that lands while Python is still importing `site` would
    # otherwise end it with "Fatal Python error" on the command's stderr.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(address)
        request = {"cwd": os.getcwd(), "environ": dict(os.environ)}
        connection.sendall(json.dumps(request).encode() + b"\n")
        connection.settimeout(_ACCEPT_SECONDS)
        taken = connection.recv(1)
        connection.settimeout(None)
        code = connection.recv(1) if taken == _TAKEN else b""
    except TimeoutError:
        print(f"albertprep worker: no warm worker process took this worker within {_ACCEPT_SECONDS:.0f} s",
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
    if sys.argv[1] == "serve":
        sys.exit(_serve(int(sys.argv[2]), sys.argv[3], sys.argv[4:]))
    sys.exit(_attach(sys.argv[2]))
