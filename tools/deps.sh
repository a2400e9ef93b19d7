#!/bin/bash
# Install the build, unit-test and end-to-end-test dependencies of vbridge on
# Debian 12. Only packages not yet installed are fetched, so a second run does
# nothing and needs no network. Usage: tools/deps.sh [--check]
#   --check  only list what is missing; exit 1 if anything is.
set -euo pipefail

PKGS=(
	build-essential cmake pkg-config
	libevent-dev libssl-dev libinih-dev libsystemd-dev libcmocka-dev libjson-c-dev
	clang-14 libclang-rt-14-dev           # clang-format/libFuzzer/sanitizers
	qemu-system-x86 qemu-utils            # guest VMs and qemu-storage-daemon
	busybox-static cpio kmod              # guest initramfs (tests/e2e/guest.sh)
	iproute2 iperf3 python3 valgrind      # namespaces, link baseline, helpers, leak checks
	openssl                               # tools/vb-pki, TLS tests
	nftables                              # frame loss on tsn:// links (tests/e2e)
	tshark                                # IEEE 1722 dissection of tsn:// frames (test_avtp_tshark)
	linuxptp                              # ptp4l/pmc: gPTP between test namespaces (test_ptp)
)

# dpkg's "ii" is the only state in which a package is usable; "rc" (removed,
# config left) or a half-configured package must be installed again.
is_installed() {
	local st
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
	[[ $st == ii* ]]
}

missing=()
for p in "${PKGS[@]}"; do
	is_installed "$p" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "deps: all ${#PKGS[@]} packages installed"
	exit 0
fi
echo "deps: missing: ${missing[*]}"
[[ ${1:-} == --check ]] && exit 1

if [[ $(id -u) -ne 0 ]]; then
	echo "deps: must run as root to install" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}"

still=()
for p in "${missing[@]}"; do
	is_installed "$p" || still+=("$p")
done
if [[ ${#still[@]} -gt 0 ]]; then
	echo "deps: still missing after install: ${still[*]}" >&2
	exit 1
fi
echo "deps: installed ${missing[*]}"
