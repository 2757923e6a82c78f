#!/usr/bin/env python
"""Start a distributed training job (see ``--help`` and docs/SCALING.md)::

    python scripts/launch.py -n 2 -s 1 -- python scripts/train.py --kvstore dist_sync ...

A thin wrapper around ``gluon_cnns.cli.launch`` (installed as ``gluon-cnns-launch``)
that also works from a plain clone, without ``pip install``.
"""
import os
import sys

# The repository root, so that `import gluon_cnns` finds the package next to this folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluon_cnns.cli.launch import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
