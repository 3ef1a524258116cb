"""The Beam jobs: the corpus stage (extract), the vocabulary and the instance stage (prepare)."""

import logging


class _ApitoolsNotice(logging.Filter):
    """Drops the warning Beam logs on import when google-apitools is missing.

    Only Beam's BigQuery IO needs apitools, and nothing here uses it; the
    warning would otherwise open every command. (The local runner's worker
    processes import Beam before any of this code, so they still print it.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("apitools not found")


class _BsonNotice(logging.Filter):
    """Drops the warning Beam's MongoDB IO logs on import when it finds no
    bson package: a local job's processes leave bson out on purpose
    (warm.leave_out_beam_extras), and nothing here uses MongoDB."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Could not find a compatible bson package")


logging.getLogger().addFilter(_ApitoolsNotice())
logging.getLogger("apache_beam.io.mongodbio").addFilter(_BsonNotice())
