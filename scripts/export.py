#!/usr/bin/env python
"""Export a trained run: ``python scripts/export.py --save-dir DIR --out PATH`` (see ``--help``).

A thin wrapper around ``gluon_cnns.cli.export`` that also works from a plain
clone, without ``pip install``.
"""
import os
import sys

# The repository root, so that `import gluon_cnns` finds the package next to this folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluon_cnns.cli.export import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
