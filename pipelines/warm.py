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

- One template process (the zygote) holds Beam's worker and our stage
  modules, imported once, and waits on a listening Unix socket. The job's
  first pipeline forks it from the command itself, which has imported
  Beam and the stages by then and has loaded what the workers will need
  (the instance stage's tokenizer: `prepare.share_tokenizer`), so the
  zygote imports nothing of weight and its workers parse no model. It had
  been a second interpreter started beside the command, importing Beam
  side by side with it: on two cores the two imports slowed each other
  (the command's own took 0.64 s against 0.47 s alone, timed in the same
  hour), and the second import was 0.5 CPU-s of every 2-worker job. On a
  prepare of books x4 on two workers (paired runs, medians), the fork took
  3.47 s down to 3.34 and 6.25 CPU-s to 5.55; forking at the first
  pipeline rather than as the command started, a further 2% (3.28 against
  3.38 s). Forking is only safe in a process that runs no other thread
  (`_single_threaded`): `prestart` (which the `albertprep` entry point and
  `python -m albertprep` call) makes the command one, and a process that
  is not (a test's, or one with an `OPENBLAS_NUM_THREADS` of its own)
  starts the zygote as a new interpreter instead.
- The worker command the runner launches is a small client
  (pipelines/warm_client.py, the standard library only): it connects,
  hands over its environment and exits with the worker's exit code.
- For each connection the zygote forks a worker, which runs the harness and
  leaves with `os._exit` once its results are sent: no worker imports Beam
  again, none waits on interpreter teardown, and every later pipeline of the
  job (dedup runs three) finds its workers ready at once.

Forking is safe here because neither the command at its first pipeline nor
the zygote has started gRPC or any thread: importing grpc starts no thread
and opens no channel; every channel and server is made in the forked
worker. The zygote ends when its parent closes its stdin (the parent exited
or closed the pool); a worker ends when its client goes away (the runner
stopped it). Ctrl-C is the parent's to handle: the zygote, its
workers and the clients ignore SIGINT and end with their peers (so a
Ctrl-C prints the command's one line, not a traceback from each client).

This module imports no Beam at module level: `prestart` must run before the
command's own imports (it imports Beam itself).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
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
import time

from albertprep.pipelines import warm_client

# What a warm process imports before it waits: Beam's worker and the modules
# whose DoFns the jobs ship, so that a pipeline's first bundle finds them
# loaded; and what the instance stage's DoFns import where they use it.
_PRELOAD = ("albertprep.pipelines.jobs",)
# What Beam's harness imports on its first use of gRPC (making its channels),
# found as the modules a worker held at its first bundle and the zygote did
# not: 10-16 ms of every worker's start, before it can take work. Importing
# them opens no channel and starts no thread; grpc's private module names,
# so a grpc without them is simply not preloaded.
_PRELOAD_IF_PRESENT = ("grpc._channel", "grpc._interceptor", "grpc._simple_stubs", "grpc._utilities",
                       "grpc.experimental", "concurrent.futures.thread")
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


class _ForkedZygote:
    """A zygote forked from this process, with the part of Popen's interface
    that Pool uses. Its `stdin` is a pipe's writing end: the zygote ends when
    this process closes it or is gone, as a started one does on its stdin."""

    def __init__(self, listener: socket.socket, directory: str, preload: tuple[str, ...]) -> None:
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(write)
                # detached: the zygote's own socket object owns the descriptor from here
                code = _serve(listener.detach(), directory, list(preload), lambda size: os.read(read, size))
            finally:
                os._exit(code)
        os.close(read)
        self.pid = pid
        self.stdin = os.fdopen(write, "wb", buffering=0)
        self._code: int | None = None

    def terminate(self) -> None:
        if self._code is None:
            os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._code is None:
            pid, status = os.waitpid(self.pid, 0 if deadline is None else os.WNOHANG)
            if pid:
                self._code = os.waitstatus_to_exitcode(status)
            elif time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"zygote {self.pid}", timeout)
            else:
                time.sleep(0.01)
        return self._code


class Pool:
    """The zygote of this process's warm workers; see the module doc."""

    def __init__(self, command: str = "", fork: bool = False) -> None:
        """`command`: the CLI command whose modules the workers preload.
        `fork`: fork the zygote from this process, which must run no thread
        but its main one (so no gRPC channel or server either); else start
        it as a new interpreter."""
        self._dir = tempfile.mkdtemp(prefix="albertprep-workers-")
        self.address = os.path.join(self._dir, "workers.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.address)
        listener.listen(64)
        preload = _PRELOAD_FOR.get(command, ())
        if fork:
            self._zygote = _ForkedZygote(listener, self._dir, preload)
        else:
            self._zygote = subprocess.Popen(
                [sys.executable, "-m", "albertprep.pipelines.warm", "serve", str(listener.fileno()), self._dir,
                 *preload], pass_fds=(listener.fileno(),), stdin=subprocess.PIPE, close_fds=True)
        listener.close()  # the zygote holds it now

    def command(self) -> str:
        """The worker command line for Beam's SubprocessSDKEnvironment (a
        shell line: Beam starts it with `shell=True`). The client ignores
        SIGINT from its first instruction on: `trap` sets it ignored and
        `exec` keeps it so. It runs as a script with the standard library
        only (see pipelines/warm_client.py)."""
        client = " ".join(shlex.quote(part) for part in (sys.executable, "-I", "-S", warm_client.__file__,
                                                         self.address))
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


_command = ""  # the CLI command `prestart` saw: what the workers preload


def _single_threaded() -> bool:
    """Whether this process runs one thread, native ones counted (Linux's
    /proc; elsewhere the answer is no)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def pool() -> Pool:
    """This process's pool, made on first use and closed at exit. Its zygote
    is forked from this process where that is safe (`_single_threaded`: no
    thread has started, so no gRPC channel or server either), else started
    as a new interpreter."""
    global _pool
    if _pool is None:
        _pool = Pool(_command, fork=_single_threaded())
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
    use, and prepare the process for forking the warm workers' zygote at
    its first pipeline (see the module doc)."""
    global _command
    if workers_requested(argv):
        from albertprep.core import malloc  # no Beam

        malloc.one_arena()  # the zygote's setting, made before any thread exists; the command shares it
        _command = argv[0]
    if _on_local_runner(argv):
        # No stage calls a BLAS routine, and OpenBLAS's pool of threads, started
        # as NumPy is imported, spins on a core for a while: 0.10 CPU-s of
        # every process that imports NumPy (0.20 against 0.10 for `import
        # numpy`), and a native thread that would keep the zygote from being
        # forked. A value the user set is kept.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
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


def _serve(listener_fd: int, directory: str, preload: list[str], read_parent) -> int:
    """The zygote's loop; it ends when `read_parent` (its end of the
    parent's pipe) reaches EOF."""
    from albertprep.core import malloc  # no Beam; before any thread allocates
    malloc.one_arena()
    leave_out_beam_extras()  # (a forked zygote has Beam already)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Workers are waited for, never left to SIGCHLD's auto-reaping: waiting is
    # what adds a child's CPU time to its parent's children's, and so to the
    # command's own CPU time as its caller measures it.
    workers: set[int] = set()
    def end() -> None:  # also when the parent died without closing the pool (os._exit on Ctrl-C)
        _reap(workers, block=True)
        shutil.rmtree(directory, ignore_errors=True)

    _exit_when_closed(read_parent, 0, before=end)

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
    for module in _PRELOAD_IF_PRESENT:
        with contextlib.suppress(ImportError):
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
    connection.sendall(warm_client.TAKEN)
    cwd, environ = warm_client.read_request(connection)
    _exit_when_closed(connection.recv, 1)
    os.chdir(cwd)  # as a worker the runner started itself would be
    os.environ.clear()
    os.environb.update(environ)
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


if __name__ == "__main__":  # serve LISTENER_FD DIRECTORY [PRELOAD ...]: the zygote, as a new interpreter
    sys.exit(_serve(int(sys.argv[2]), sys.argv[3], sys.argv[4:], sys.stdin.buffer.read1))
