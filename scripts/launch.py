#!/usr/bin/env python
"""Start a distributed training job (see ``--help`` and docs/SCALING.md)::

    python scripts/launch.py -n 2 -s 1 -- python scripts/train.py --kvstore dist_sync ...

A thin wrapper around ``gluon_cnns.cli.launch`` (installed as ``gluon-cnns-launch``)
that also works from a plain clone, without ``pip install``.
"""
import importlib.util
import os
import sys

# Load the launcher's file on its own rather than `import gluon_cnns.cli.launch`:
# the package imports MXNet, which the launcher does not need (it only starts
# processes) and which would cost every launch a few seconds.
_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "gluon_cnns", "cli", "launch.py")
_spec = importlib.util.spec_from_file_location("gluon_cnns_launch", _PATH)
launch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch)

if __name__ == "__main__":
    sys.exit(launch.main())
