#!/bin/bash
# One command for a fresh Debian 12 machine: install what is missing, build,
# and run every test (unit and end-to-end). CI runs this (.ci/run).
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$SRC/build}
"$SRC/tools/deps.sh"
BUILD_DIR=$BUILD "$SRC/tools/build.sh"
cd "$BUILD"
ctest --output-on-failure --timeout 900 "$@"
