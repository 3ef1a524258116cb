"""The `albertprep` command's entry point.

Before anything heavy is imported it readies a local Beam job's process
(pipelines/warm.py's `prestart`: Beam's unused connectors left out and
one OpenBLAS thread, and one malloc arena where `--workers N` asks for warm
workers, so that their zygote can be forked from this process at the first
pipeline); then it hands over to the CLI. `python -m albertprep.cli` runs
the same CLI without that, and starts its workers' zygote as a new
interpreter.

A Beam command that has finished skips the interpreter's teardown: it runs
the exit handlers (the warm workers are waited for there) and flushes its
streams, then leaves with `os._exit`. Tearing down the 1,300 modules Beam
imports took about 0.3 s after the output was complete, the same on one
worker as on two, so it came off every job's speed-up. Every output file is
closed (and renamed into place) before the CLI returns; `pretrain` and the
other commands exit the ordinary way.
"""

from __future__ import annotations

import atexit
import os
import sys


def main() -> int:
    from albertprep.pipelines import warm

    warm.prestart(sys.argv[1:])
    from albertprep import cli

    code = cli.main()
    if len(sys.argv) > 1 and sys.argv[1] in cli.BEAM_COMMANDS:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
