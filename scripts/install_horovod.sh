#!/usr/bin/env bash
# Build and install Horovod 0.28.1 for --kvstore horovod, against the MXNet already
# installed in the active Python environment (pip install -r requirements.txt first).
#
#   bash scripts/install_horovod.sh            # ~2-10 minutes on 2 cores: it compiles C++
#
# Horovod has no wheels: pip compiles it, and its build imports mxnet to find the
# headers and library to link against. pip's default build isolation would hide
# the pinned MXNet 1.9.1 (and try to build against whatever it downloads), so the
# build runs with --no-build-isolation, which in turn needs the build tools
# (wheel, setuptools, cmake) in this environment. Gloo is the controller (no MPI
# needed); TensorFlow and PyTorch support are left out. Needs a C++ compiler and
# cmake >= 3.13 (Debian: apt-get install g++ cmake; or pip install cmake).
set -euo pipefail
PYTHON="${PYTHON:-python}"

"$PYTHON" -c 'import mxnet' 2>/dev/null || {
  echo "install_horovod.sh: import mxnet failed; install the pinned set first:" \
       "pip install -r requirements.txt" >&2
  exit 2
}
command -v cmake >/dev/null 2>&1 || "$PYTHON" -m pip install -q "cmake>=3.13,<4"
"$PYTHON" -m pip install -q wheel setuptools
HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 \
HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1 \
  "$PYTHON" -m pip install -q --no-build-isolation --no-cache-dir horovod==0.28.1
# A build that silently left MXNet out fails here.
"$PYTHON" -c 'import horovod.mxnet'
echo "install_horovod.sh: $(horovodrun --version 2>/dev/null || echo horovod) with MXNet and Gloo"
