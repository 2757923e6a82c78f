#!/usr/bin/env python
"""Reproduce the tutorials' results: ``python scripts/reproduce.py --net lenet,lenet_bn``.

A thin wrapper around ``tools.reproduce``; writes docs/RESULTS.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.reproduce import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main())
