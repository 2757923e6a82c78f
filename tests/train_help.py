"""The text of ``gluon-cnns-train --help`` at 80 columns, and its golden copy.

``tests/data/train_help.txt`` is the help as it was before the flags were generated
from :data:`gluon_cnns.settings.SETTINGS`; the tests compare against it. After an
intended change to the flags, write it again with::

    PYTHONPATH=. python tests/train_help.py
"""
import os
import sys

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "train_help.txt")


def train_help():
    """``build_parser().format_help()`` as a terminal 80 columns wide prints it."""
    from gluon_cnns.cli.train_args import build_parser
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal's width
    try:
        return build_parser().format_help()
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


if __name__ == "__main__":
    with open(GOLDEN, "w", encoding="utf-8") as f:
        f.write(train_help())
    print("wrote %s" % GOLDEN, file=sys.stderr)
