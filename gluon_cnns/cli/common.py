"""What the command-line tools share: one-line usage errors and argument types.

argparse calls the type functions on the raw strings, so a bad value is
reported as "argument --lr: ..." before anything heavy (MXNet, data) is loaded.
"""
import argparse
import math
import platform


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line (the usage is in --help), exit 2."""

    def error(self, message):
        self.exit(2, "%s: error: %s (see --help)\n" % (self.prog, message))


def parse(parser, argv):
    """``(args, None)``, or ``(None, exit code)`` after --help or a usage error (already printed)."""
    try:
        return parser.parse_args(argv), None
    except SystemExit as e:
        return None, e.code


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


def cpu_model():
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
