"""Errors that mean "the user asked for something that cannot work".

The command-line tools turn these into one line on stderr and exit code 2;
library callers can catch them (they are ``ValueError`` subclasses, so code
written against plain Gluon keeps working).
"""


class GluonCNNsError(ValueError):
    """Base class: a usage problem with a message that names the fix."""


class UnknownModelError(GluonCNNsError):
    """A model name that is not in the registry."""


class InputTooSmallError(GluonCNNsError):
    """An input whose height or width is below what the network can take."""


class DataError(GluonCNNsError):
    """Data files missing, unreadable or malformed."""
