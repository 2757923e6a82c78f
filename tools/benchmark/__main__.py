"""``python -m tools.benchmark``: the same as ``python scripts/benchmark.py``."""
import sys

from .main import main

sys.exit(main())
