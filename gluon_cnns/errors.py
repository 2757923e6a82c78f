"""Errors that mean "the user asked for something that cannot work".

The command-line tools turn these into one line on stderr and exit code 2;
library callers can catch them (they are ``ValueError`` subclasses, so code
written against plain Gluon keeps working).
"""


def error_line(error):
    """One line of an error's message, for a one-line report.

    MXNet's errors are a C++ stack trace ending in "MXNetError: <message>":
    keep that message. Other errors: their first line.
    """
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("MXNetError:"):
            return line[len("MXNetError:"):].strip()
    return lines[0] if lines else type(error).__name__


class GluonCNNsError(ValueError):
    """Base class: a usage problem with a message that names the fix."""


class UnknownModelError(GluonCNNsError):
    """A model name that is not in the registry."""


class InputTooSmallError(GluonCNNsError):
    """An input whose height or width is below what the network can take."""


class DataError(GluonCNNsError):
    """Data files missing, unreadable or malformed."""


class CheckpointError(GluonCNNsError):
    """A checkpoint that is missing, damaged (checksum mismatch) or does not fit the run."""


class NonFiniteLossError(GluonCNNsError):
    """Training produced a nan or infinite loss (or gradient): the learning rate is too high.

    ``epoch`` and ``batch`` (1-based) name the first bad batch, ``lr`` the
    learning rate it was trained with and ``what`` the problem ("loss is nan").
    """

    def __init__(self, message, epoch=None, batch=None, lr=None, what=None):
        super().__init__(message)
        self.epoch, self.batch, self.lr, self.what = epoch, batch, lr, what


class ExportError(GluonCNNsError):
    """An export that cannot be made or loaded; the message names the file or net and the fix."""


class UsageError(GluonCNNsError):
    """A user mistake found by a command-line tool; its ``main`` prints one line, exit 2."""


class BadValue(GluonCNNsError):
    """A setting's text that is not a valid value; the message is the reason, e.g. "must be a
    positive integer, got '0'" (the command line prefixes the flag)."""
