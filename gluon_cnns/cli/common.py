"""What the command-line tools share: one parser base, one error type, one error line.

argparse calls the type functions on the raw strings, so a bad value is
reported as "argument --lr: ..." before anything heavy (MXNet, data) is loaded.
"""
import argparse
import math
import sys

from ..errors import UsageError, error_line


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` (the usage is in --help)."""

    def error(self, message):
        raise UsageError(message)


def parse(parser, argv):
    """``(args, None)``, or ``(None, exit code)`` after --help or a usage error (printed)."""
    try:
        return parser.parse_args(argv), None
    except UsageError as e:
        print("%s: error: %s (see --help)" % (parser.prog, e), file=sys.stderr)
        return None, 2
    except SystemExit as e:  # --help
        return None, e.code


def report(prog, error, code=2):
    """Print ``error`` as the one line ``PROG: error: ...`` on stderr; return ``code``."""
    print("%s: error: %s" % (prog, error_line(error)), file=sys.stderr)
    return code


def positive_int(text):
    """An integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer, got %r" % text)
    return value


def _number(text, accept, requirement):
    """A finite float for which ``accept(value)`` holds, else an ArgumentTypeError."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected %s, got %r" % (requirement, text))
    if not (math.isfinite(value) and accept(value)):
        raise argparse.ArgumentTypeError("must be %s, got %r" % (requirement, text))
    return value


def positive_float(text):
    """A finite number > 0."""
    return _number(text, lambda v: v > 0, "a positive number")


def non_negative_float(text):
    """A finite number >= 0 (weight decay)."""
    return _number(text, lambda v: v >= 0, "a number >= 0")
