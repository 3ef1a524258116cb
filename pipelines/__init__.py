"""The Beam jobs: the corpus stage (extract), the vocabulary and the instance stage (prepare)."""

import logging


class _Notice(logging.Filter):
    """Drops the records of one logger whose message starts with `prefix`:
    Beam's notices that say nothing to a user of these jobs."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self._prefix)


def drop_notice(logger: str, prefix: str) -> None:
    """Drop `logger`'s records (not those of its children) that start with `prefix`."""
    logging.getLogger(logger).addFilter(_Notice(prefix))


# Beam logs it on import when google-apitools is missing. Only Beam's
# BigQuery IO needs apitools, and nothing here uses it; the warning would
# otherwise open every command. (Processes of other runners import Beam
# before any of this code, so they still print it.)
drop_notice("", "apitools not found")
# Beam's MongoDB IO logs it on import when it finds no bson package: a local
# job's processes leave bson out on purpose (warm.leave_out_beam_extras), and
# nothing here uses MongoDB.
drop_notice("apache_beam.io.mongodbio", "Could not find a compatible bson package")
