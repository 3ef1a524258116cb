"""The `albertprep` command's entry point.

It starts the local runner's warm worker processes (pipelines/warm.py) for a
`--workers N` job before anything heavy is imported, so that the workers'
imports run beside the command's own; then it hands over to the CLI.
`python -m albertprep.cli` runs the same CLI and starts its workers when its
first pipeline runs instead.
"""

from __future__ import annotations

import sys


def main() -> int:
    from albertprep.pipelines import warm

    warm.prestart(sys.argv[1:])
    from albertprep import cli

    return cli.main()
