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


def configure_threads(prog, work=None, cpus=None, policy=True):
    """Check the environment and ``--cpus`` and (with ``policy``) set the thread policy,
    before MXNet is imported (gluon_cnns.envcheck, gluon_cnns.threads); None, or the exit
    code 2 after printing the one line of a refused value."""
    from ..envcheck import check_cpu_contexts, check_environment
    from ..threads import configure
    try:
        check_cpu_contexts(cpus)
        configure(work) if policy else check_environment()
    except UsageError as e:
        return report(prog, e)
    return None


def _whole(text, accept, requirement):
    """An int for which ``accept(value)`` holds, else an ArgumentTypeError."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected %s, got %r" % (requirement, text))
    if not accept(value):
        raise argparse.ArgumentTypeError("must be %s, got %r" % (requirement, text))
    return value


def positive_int(text):
    """An integer > 0."""
    return _whole(text, lambda v: v > 0, "a positive integer")


# MXNet passes optimizer settings to its operators as float32: anything larger fails
# deep inside the first update ("Invalid Parameter format").
FLOAT32_MAX = 3.4e38


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
    """A number > 0 that fits float32."""
    return _number(text, lambda v: 0 < v < FLOAT32_MAX, "a positive number below 3.4e38")


def non_negative_float(text):
    """A number >= 0 that fits float32 (weight decay)."""
    return _number(text, lambda v: 0 <= v < FLOAT32_MAX, "a number >= 0 and below 3.4e38")


def non_empty(example=None):
    """An argparse type: a string that is not empty (an empty --save-dir or --net must not
    quietly mean "none"); ``example`` completes the message, e.g. "a path, e.g. out/lenet"."""
    def check(text):
        if not text.strip():
            raise argparse.ArgumentTypeError("must not be empty" + (
                "; give %s" % example if example else ""))
        return text
    return check


def seed_value(text):
    """A seed MXNet, NumPy and Python all take: a whole number in 0..2**31-1."""
    return _whole(text, lambda v: 0 <= v < 2 ** 31, "a whole number in 0..2147483647")
