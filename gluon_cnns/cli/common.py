"""What the command-line tools share: one parser base, one error type, one error line.

argparse calls the type functions on the raw strings, so a bad value is
reported as "argument --lr: ..." before anything heavy (MXNet, data) is loaded.
The value checks themselves are gluon_cnns.settings', shared with the settings table.
"""
import argparse
import functools
import sys

from .. import settings as values
from ..errors import BadValue, UsageError, error_line


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


def argparse_type(parse):
    """``parse`` (text -> value, raising BadValue with the reason) as an argparse type, so
    that argparse prints the reason as "argument --flag: <reason>"."""
    @functools.wraps(parse)
    def convert(*arguments):
        try:
            return parse(*arguments)
        except BadValue as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


positive_int = argparse_type(values.positive_int)
positive_float = argparse_type(values.positive_float)
non_negative_float = argparse_type(values.non_negative_float)
seed_value = argparse_type(values.seed_value)


def _number(text, accept, requirement):
    """A finite float for which ``accept(value)`` holds, else an ArgumentTypeError."""
    return argparse_type(values.number)(text, accept, requirement)


def non_empty(example=None):
    """An argparse type: a string that is not empty; ``example`` completes the message."""
    return argparse_type(values.non_empty(example))
