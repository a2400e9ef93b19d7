#!/bin/bash
# Proof of the e2e harness without vbridge: QEMU's vhost-user-blk-pci talks
# straight to qemu-storage-daemon's vhost-user-blk export, in one namespace,
# and the guest workload (guest/blk.sh) is checked against the image files
# (vb_blk_verify). The vbridged block tests run the same guest and the same
# check with an importer and an exporter in between. Named check_*, not
# test_*, so ctest does not collect it.
#
# Usage: tests/e2e/check_guest_direct.sh [CASE...]
#   CASE: single (1 disk, 1 queue), multi (2 disks, num-queues=2); default both.
# VB_BREAK makes the run fail on purpose, to see the check fail and the
# clean-up work: corrupt (a written region altered in the image), gap (a byte
# written where the guest never wrote), timeout (QEMU killed after 5 s),
# qsd-kill (the backend killed -9 during the workload).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

BREAK=${VB_BREAK:-}
NS=vb-d-$$

# vb_break_image IMG OFF: overwrite 16 bytes at OFF, outside the guest's knowledge.
vb_break_image() {
	printf 'vbridge-corrupt!' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# qsd_check CASE N PID: the backend must have lived through the run; its exit
# status (128+signal) tells a crash from a kill. Stopped here when it did.
qsd_check() {
	local st=0
	if vb_alive "$3"; then
		vb_stop "$3"
		return 0
	fi
	vb_wait "$3" || st=$?
	vb_fail "$1: qemu-storage-daemon $2 died during the run (status $st)"
}

run_case() {
	local name=$1 ndisks=$2 numq=$3 tmo=$VB_QEMU_TIMEOUT log=$VB_TMP/$1.console
	local i img sock imgs=() socks=() qsds=() t0 wall rc=0 off
	for ((i = 0; i < ndisks; i++)); do
		img=$VB_TMP/$name-$i.img
		sock=$VB_TMP/$name-$i.sock
		vb_blk_image "$img" 64 "$name-$i" || vb_fail "$name: cannot create $img"
		vb_qsd "$NS" "$img" "$sock" "$numq" || vb_fail "$name: qemu-storage-daemon $i did not start"
		imgs+=("$img")
		socks+=("$sock")
		qsds+=("$VB_LAST_PID")
	done
	[[ $BREAK == timeout ]] && tmo=5
	[[ $BREAK == qsd-kill ]] && tmo=30
	t0=$(vb_now)
	vb_qemu_blk -n "$NS" -q "$numq" -t "$tmo" "$log" "${socks[@]}" ||
		vb_fail "$name: cannot start QEMU"
	if [[ $BREAK == qsd-kill ]]; then
		vb_run_in - bash -c "sleep 7; kill -9 ${qsds[0]}"
	fi
	vb_wait "$VB_QEMU_PID" || rc=$?
	wall=$(vb_elapsed "$t0")
	for i in "${!qsds[@]}"; do
		qsd_check "$name" "$i" "${qsds[i]}"
	done
	[[ $rc -eq 124 ]] && vb_fail "$name: QEMU still running after $tmo s (killed)"
	[[ $rc -eq 0 ]] || vb_fail "$name: QEMU exited with status $rc"
	off=$(vb_guest_lines "$log" | awk '$2 == "wrote" { print $4 + 1000; exit }')
	[[ $BREAK == corrupt ]] && vb_break_image "${imgs[0]}" "${off:-2097152}"
	[[ $BREAK == gap ]] && vb_break_image "${imgs[0]}" $((40 * 1048576))
	vb_blk_verify "$log" "$numq" "${imgs[@]}" || vb_fail "$name: guest and image disagree"
	echo "PASS $name: $ndisks disk(s), num-queues=$numq: $(vb_guest_times "$log"), wall ${wall} s"
}

main() {
	local c cases=("$@") t0
	[[ ${#cases[@]} -gt 0 ]] || cases=(single multi)
	vb_need_root
	vb_need_cmd qemu-system-x86_64 qemu-storage-daemon ip timeout cpio modinfo
	t0=$(vb_now)
	vb_guest
	echo "guest: ${VB_KERNEL##*/} ${VB_INITRD##*/} (ready in $(vb_elapsed "$t0") s)"
	vb_netns_add "$NS" || vb_fail "cannot create namespace $NS"
	for c in "${cases[@]}"; do
		case $c in
		single) run_case single 1 1 ;;
		multi) run_case multi 2 2 ;;
		*) vb_fail "unknown case $c" ;;
		esac
	done
	echo "PASS: check_guest_direct (${cases[*]}) in $(vb_elapsed "$t0") s"
}

main "$@"
