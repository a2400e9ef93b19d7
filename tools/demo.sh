#!/bin/bash
# One command for a fresh Debian 12 machine: install what is missing, build,
# and run the demo: two ECUs in network namespaces, a disk served by
# qemu-storage-daemon on ECU A, a Linux VM on ECU B using it through two
# vbridged processes over TCP.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$SRC/build}
"$SRC/tools/deps.sh"
BUILD_DIR=$BUILD "$SRC/tools/build.sh"
VB_BUILD=$BUILD VB_SRC=$SRC VB_DEMO=1 exec bash "$SRC/tests/e2e/test_blk_tcp.sh"
