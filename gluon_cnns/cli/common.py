"""What the command-line tools share: one parser base, one error type, one error line.

argparse calls the type functions on the raw strings, so a bad value is
reported as "argument --lr: ..." before anything heavy (MXNet, data) is loaded.
The value checks themselves are gluon_cnns.settings', shared with the settings table.
"""
import argparse
import functools
import os
import shutil
import sys

from .. import settings as values
from ..errors import BadValue, UsageError, error_line
from ..io import path_kind


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


def configure_threads(prog, work=None, cpus=None, policy=True):
    """Check the environment and ``--cpus`` and (with ``policy``) set the thread policy,
    before MXNet is imported (gluon_cnns.envcheck, gluon_cnns.threads); None, or the exit
    code 2 after printing the one line of a refused value."""
    from ..envcheck import check_cpu_contexts, check_environment
    from ..threads import chosen_by_tool, configure, leave
    chosen_by_tool()  # the tool names its threads; the library's notice is not for it
    try:
        check_cpu_contexts(cpus)
        configure(work) if policy else (leave(), check_environment())
    except UsageError as e:
        return report(prog, e)
    return None


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


# ---------------------------------------------------------------- paths a tool is given

def _problem(path, wanted):
    """Why ``path`` is not ``wanted`` ("a folder" or "a file"), or None if it is."""
    kind = path_kind(path)
    if kind == wanted:
        return None
    if kind is None:
        return "does not exist"
    return "is " + kind + ("" if kind.startswith("a symbolic link") else ", not " + wanted)


def check_folder(path, flag, fix):
    """UsageError unless ``path`` (given as ``flag``) is an existing folder; ``fix`` ends
    the line, e.g. "pass the folder holding the Fashion-MNIST files"."""
    problem = _problem(path, "a folder")
    if problem:
        raise UsageError("%s %s %s; %s" % (flag, path, problem, fix))


def check_output_file(path, flag):
    """UsageError unless ``path`` can be written as a whole file: its folder exists, and it
    is not a folder, pipe, device or symbolic link (gluon_cnns.io's atomic write would
    replace a pipe or a link with a regular file)."""
    folder = os.path.dirname(os.path.abspath(path))
    problem = _problem(folder, "a folder")
    if problem:
        raise UsageError("%s %s: its folder %s %s; create the folder first or give another "
                         "path" % (flag, path, folder, problem))
    kind = "a symbolic link" if os.path.islink(path) else path_kind(path)
    if kind not in (None, "a file"):
        raise UsageError("%s %s is %s, not a regular file; give the path of a file to write"
                         % (flag, path, kind))


def check_program(path, flag, fix):
    """UsageError unless ``path`` (a path, or a name found on PATH) is an executable file;
    ``fix`` ends the line."""
    found = path if os.sep in path else shutil.which(path)
    if found is None:
        raise UsageError("%s %s: no such program on PATH; %s" % (flag, path, fix))
    problem = _problem(found, "a file")
    if problem is None and not os.access(found, os.X_OK):
        problem = "is not executable"
    if problem:
        raise UsageError("%s %s %s; %s" % (flag, path, problem, fix))


def check_new_folder(path, flag, fix):
    """UsageError unless ``path`` is a folder or can be created as one: nothing is there
    yet and its nearest existing parent is a folder (not a file, pipe or broken link)."""
    target = os.path.abspath(path)
    existing = target
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    problem = _problem(existing, "a folder")
    if problem:
        where = "" if existing == target else ": its parent %s" % existing
        raise UsageError("%s %s%s %s; %s" % (flag, path, where, problem, fix))
