#!/bin/bash
# One command for a fresh Debian 12 machine: install what is missing, build,
# and run every test: unit and end-to-end tests in a normal build (plus one
# end-to-end test with the daemons under valgrind), then the same unit and
# end-to-end tests in an ASan+UBSan build (-fno-sanitize-recover=all), then
# each libFuzzer target of tests/fuzz briefly (clang, ASan+UBSan; longer runs:
# tools/fuzz.sh). CI runs this (.ci/run). Extra arguments go to the first two
# ctest runs.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$SRC/build}
"$SRC/tools/deps.sh"

BUILD_DIR=$BUILD "$SRC/tools/build.sh"
(cd "$BUILD" && ctest --output-on-failure --no-tests=error --timeout 900 "$@")

BUILD_DIR=$BUILD-asan "$SRC/tools/build.sh" -DVB_SANITIZE=ON
(cd "$BUILD-asan" && ctest --output-on-failure --no-tests=error --timeout 900 "$@")

cmake -S "$SRC" -B "$BUILD-fuzz" -DCMAKE_C_COMPILER=clang-14 -DVB_FUZZ=ON -DVB_TESTS=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD-fuzz" -j"$(nproc)"
(cd "$BUILD-fuzz" && ctest --output-on-failure --no-tests=error -L fuzz -j"$(nproc)")
