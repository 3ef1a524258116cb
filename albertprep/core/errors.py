"""The one base of every error that is the user's to fix, not a bug.

An input that cannot be read, a directory that is not what a command
needs, an option out of range: each module raises its own subclass (so
callers can tell them apart), and `albertprep`'s command line catches this
base alone and prints the message as one line, with exit status 2. The
message names the file or option and what is wrong with it. Anything else
that escapes is a bug and keeps its traceback.

No Beam, no JAX here: every stage and the loader import it.
"""


class UserError(Exception):
    """A mistake in what the user gave; its message is the whole report."""
