#!/bin/bash
# Configure and build vbridge into BUILD_DIR (default ./build). Extra
# arguments go to cmake's configure step, e.g. -DVB_SANITIZE=ON.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$SRC/build}
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
