#!/usr/bin/env python
"""Write a training run's report page: ``python scripts/report.py RUN_DIR`` (see ``--help``).

A thin wrapper around ``gluon_cnns.cli.report`` that also works from a plain
clone, without ``pip install``.
"""
import os
import sys

# The repository root, so that `import gluon_cnns` finds the package next to this folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluon_cnns.cli.report import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
