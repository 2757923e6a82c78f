#!/usr/bin/env python
"""Pack an image folder into RecordIO: ``python scripts/pack.py DIR [--out OUT]`` (see ``--help``).

A thin wrapper around ``gluon_cnns.cli.pack`` that also works from a plain
clone, without ``pip install``.
"""
import os
import sys

# The repository root, so that `import gluon_cnns` finds the package next to this folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluon_cnns.cli.pack import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
