#!/usr/bin/env python
"""Time the nets of the zoo: ``python scripts/benchmark.py --net lenet_bn`` (see ``--help``).

A thin wrapper around ``tools.benchmark`` (at the repository root, not
installed), working from a plain clone without ``pip install``.
"""
import os
import sys

# The repository root, so that `import tools` and `import gluon_cnns` work from a clone.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.benchmark.main import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
