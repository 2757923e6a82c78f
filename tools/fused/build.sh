#!/bin/sh
# Compiles libfused.so (the fused add+ReLU operator) against the installed MXNet's
# extension headers; load it with mx.library.load(path).
set -e
here=$(cd "$(dirname "$0")" && pwd)
mx=$(python -c "import os, mxnet; print(os.path.dirname(mxnet.__file__))")
g++ -shared -fPIC -std=c++11 -O3 -fopenmp "$here/fused_add_relu.cc" "$mx/src/lib_api.cc" \
    -I "$mx/include/mxnet" -I "$mx/include" -o "${1:-$here/libfused.so}"
