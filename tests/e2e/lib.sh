# shellcheck shell=bash
# Shared helpers of the end-to-end tests; source it, do not run it.
#
#   source "$(dirname "$0")/lib.sh"
#
# Sourcing creates $VB_TMP and installs vb_cleanup on EXIT/INT/TERM/HUP: every
# process started through vb_run_in (and the helpers built on it) is killed by
# pid with its descendants, every namespace made by vb_netns_add is deleted,
# and $VB_TMP is removed (kept when the test failed or VB_KEEP=1).
# Functions return non-zero on failure and print why; vb_fail ends the test.
#
# Environment: VB_SRC (source tree), VB_BUILD (build tree, for vbridged),
# VB_CACHE (guest cache, see guest.sh), VB_QEMU_TIMEOUT (s, default 180),
# VB_QEMU_BIOS (firmware, default qboot.rom), VB_QEMU_ARGS (more QEMU
# options, split on spaces), VB_KEEP=1 (keep $VB_TMP), VB_VERBOSE=1 (log
# every process started).

VB_E2E=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VB_SRC=${VB_SRC:-$(cd "$VB_E2E/../.." && pwd)}
VB_BUILD=${VB_BUILD:-$VB_SRC/build}
VB_QEMU_TIMEOUT=${VB_QEMU_TIMEOUT:-180}
# qboot halves a TCG boot (no option ROM scan, no boot menu) against SeaBIOS;
# VB_QEMU_BIOS= (empty) falls back to QEMU's default firmware.
if [[ -z ${VB_QEMU_BIOS+set} ]]; then
	VB_QEMU_BIOS=
	[[ -f /usr/share/qemu/qboot.rom ]] && VB_QEMU_BIOS=qboot.rom
fi
VB_PIDS=()   # started by us, killed by vb_cleanup
VB_NETNS=()  # created by us, deleted by vb_cleanup
VB_LOGS=()   # tails shown by vb_fail
VB_LAST_PID=
# shellcheck disable=SC2034 # set by vb_qemu_blk for the tests
VB_QEMU_PID=
VB_CLEANED=
VB_FAILED=
VB_TMP=$(mktemp -d "/tmp/vb-e2e-$(basename "$0" .sh).XXXXXX") || {
	echo "FAIL: mktemp" >&2
	exit 1
}

vb_log() { echo "[$(date +%T.%3N)] $*" >&2; }

vb_now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }

# vb_elapsed T0 [T1]: seconds between two vb_now stamps, one decimal.
vb_elapsed() { awk -v a="$1" -v b="${2:-$(vb_now)}" 'BEGIN { printf "%.1f", b - a }'; }

# vb_fail MSG: print MSG and the tail of every registered log, exit 1
# (vb_cleanup then runs from the EXIT trap).
vb_fail() {
	local f
	VB_FAILED=1
	echo "FAIL: $*" >&2
	for f in "${VB_LOGS[@]}"; do
		[[ -s $f ]] || continue
		echo "---- last lines of $f" >&2
		tail -n 25 "$f" | tr -d '\r' >&2
	done
	exit 1
}

# vb_log_add FILE: show FILE's tail if the test fails.
vb_log_add() { VB_LOGS+=("$1"); }

vb_need_root() {
	[[ $(id -u) -eq 0 ]] || vb_fail "needs root (namespaces, QEMU); run as root"
}

# vb_need_cmd CMD...: fail naming the missing commands (tools/deps.sh installs them).
vb_need_cmd() {
	local c missing=()
	for c in "$@"; do
		command -v "$c" >/dev/null || missing+=("$c")
	done
	[[ ${#missing[@]} -eq 0 ]] || vb_fail "missing commands: ${missing[*]} (run tools/deps.sh)"
}

# A zombie still answers kill -0, so look at its state instead (the field
# after the last ')': the command name may hold spaces, proc(5)).
vb_alive() {
	local st
	st=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z && $st != X ]]
}

vb_any_alive() {
	local p
	for p in "$@"; do
		vb_alive "$p" && return 0
	done
	return 1
}

# Prints PID and all its descendants, parents first. Collected before any
# kill: a child whose parent died is re-parented and could no longer be found.
vb_pid_tree() {
	local c
	echo "$1"
	for c in $(pgrep -P "$1" 2>/dev/null); do
		vb_pid_tree "$c"
	done
}

# vb_kill PID...: SIGTERM each PID and its descendants, SIGKILL what is still
# alive 3 s later, reap our own children.
vb_kill() {
	local p all=() i
	for p in "$@"; do
		[[ -n $p ]] && vb_alive "$p" && mapfile -t -O "${#all[@]}" all < <(vb_pid_tree "$p")
	done
	[[ ${#all[@]} -eq 0 ]] && return 0
	kill -TERM "${all[@]}" 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		vb_any_alive "${all[@]}" || break
		sleep 0.1
	done
	for p in "${all[@]}"; do
		if vb_alive "$p"; then
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	for p in "$@"; do
		wait "$p" 2>/dev/null || true
	done
	return 0
}

vb_forget_pid() {
	local i
	for i in "${!VB_PIDS[@]}"; do
		if [[ ${VB_PIDS[i]} == "$1" ]]; then
			unset 'VB_PIDS[i]'
		fi
	done
	return 0
}

# vb_stop PID: end one process we started (and its children) now.
vb_stop() {
	vb_kill "$1"
	vb_forget_pid "$1"
}

# vb_wait PID: wait for a process we started to exit by itself; returns its
# status. It is then forgotten: its pid may be reused by someone else.
vb_wait() {
	local rc=0
	wait "$1" || rc=$?
	vb_forget_pid "$1"
	return $rc
}

vb_cleanup() {
	local rc=$? i ns p=() idx=("${!VB_PIDS[@]}")
	[[ -n $VB_CLEANED ]] && return $rc
	VB_CLEANED=1
	# Finish the clean-up even if the test used set -e or is signalled again.
	set +e
	trap - EXIT
	trap '' INT TERM HUP
	[[ $rc -ne 0 && -z $VB_FAILED ]] && echo "FAIL: exit status $rc" >&2
	# Newest first: frontends (QEMU) go before the backends they use.
	for ((i = ${#idx[@]} - 1; i >= 0; i--)); do
		vb_kill "${VB_PIDS[idx[i]]}"
	done
	VB_PIDS=()
	for ns in "${VB_NETNS[@]}"; do
		# Anything left inside a namespace we made was started by this test.
		mapfile -t p < <(ip netns pids "$ns" 2>/dev/null)
		[[ ${#p[@]} -gt 0 ]] && vb_kill "${p[@]}"
		ip netns del "$ns" 2>/dev/null
	done
	VB_NETNS=()
	if [[ $rc -ne 0 || -n ${VB_KEEP:-} ]]; then
		echo "logs kept in $VB_TMP" >&2
	else
		rm -rf "$VB_TMP"
	fi
	return $rc
}
trap vb_cleanup EXIT
vb_signalled() {
	VB_FAILED=1
	echo "FAIL: interrupted by SIG$1" >&2
	exit "$2"
}
trap 'vb_signalled INT 130' INT
trap 'vb_signalled TERM 143' TERM
trap 'vb_signalled HUP 129' HUP

# vb_netns_add NAME: a fresh namespace with lo up, deleted at exit.
vb_netns_add() {
	ip netns add "$1" || return 1
	VB_NETNS+=("$1")
	ip -n "$1" link set lo up
}

# vb_ecus: two ECUs, VB_NS_A and VB_NS_B (vb-a-PID, vb-b-PID), joined by a
# veth pair VB_IF_A/VB_IF_B with link-local addresses VB_IP_A/VB_IP_B
# (169.254.X.1 and .2 /24, X from the pid; 169.254.0/24 and .255/24 are
# reserved by RFC 3927 2.1). Both ends are made inside their namespaces, so
# parallel runs never clash on names. With VB_L2_ONLY=1 the ends get no IP
# address at all (raw Ethernet tests); VB_MAC_A/VB_MAC_B are their MACs.
VB_PING=(ping)
command -v ping >/dev/null || VB_PING=(busybox ping)
vb_ecus() {
	local x=$(($$ % 254 + 1))
	VB_NS_A=vb-a-$$
	VB_NS_B=vb-b-$$
	VB_IF_A=vba0
	VB_IF_B=vbb0
	VB_IP_A=169.254.$x.1
	VB_IP_B=169.254.$x.2
	vb_netns_add "$VB_NS_A" || return 1
	vb_netns_add "$VB_NS_B" || return 1
	ip link add "$VB_IF_A" netns "$VB_NS_A" type veth peer name "$VB_IF_B" netns "$VB_NS_B" ||
		return 1
	VB_MAC_A=$(ip netns exec "$VB_NS_A" cat "/sys/class/net/$VB_IF_A/address") || return 1
	VB_MAC_B=$(ip netns exec "$VB_NS_B" cat "/sys/class/net/$VB_IF_B/address") || return 1
	if [[ -n ${VB_L2_ONLY:-} ]]; then
		VB_IP_A= VB_IP_B=
		ip -n "$VB_NS_A" link set "$VB_IF_A" up && ip -n "$VB_NS_B" link set "$VB_IF_B" up
		return
	fi
	ip -n "$VB_NS_A" addr add "$VB_IP_A/24" dev "$VB_IF_A" &&
		ip -n "$VB_NS_B" addr add "$VB_IP_B/24" dev "$VB_IF_B" &&
		ip -n "$VB_NS_A" link set "$VB_IF_A" up &&
		ip -n "$VB_NS_B" link set "$VB_IF_B" up || return 1
	ip netns exec "$VB_NS_A" "${VB_PING[@]}" -c 1 -W 2 "$VB_IP_B" >/dev/null ||
		{ echo "vb_ecus: $VB_IP_A cannot reach $VB_IP_B" >&2; return 1; }
}

# vb_run_in NS CMD...: start CMD in the background in namespace NS ("" or "-":
# this one), remember its pid in VB_LAST_PID and for vb_cleanup. Redirect
# the call to send the output to a log: vb_run_in "$ns" cmd >log 2>&1
vb_run_in() {
	local ns=$1
	shift
	if [[ -n $ns && $ns != - ]]; then
		ip netns exec "$ns" "$@" &
	else
		"$@" &
	fi
	VB_LAST_PID=$!
	VB_PIDS+=("$VB_LAST_PID")
	[[ -n ${VB_VERBOSE:-} ]] && vb_log "started pid $VB_LAST_PID in ${ns:--}: $*"
	return 0
}

# vb_wait_for_socket PATH TIMEOUT [PID]: until PATH is a socket; gives up
# early if PID (the server) exits. Does not connect: a vhost-user server
# may serve one client only.
vb_wait_for_socket() {
	local path=$1 pid=${3:-} end
	end=$(awk -v t="$(vb_now)" -v d="$2" 'BEGIN { printf "%.3f", t + d }')
	while [[ ! -S $path ]]; do
		if [[ -n $pid ]] && ! vb_alive "$pid"; then
			echo "vb_wait_for_socket: pid $pid exited before creating $path" >&2
			return 1
		fi
		if awk -v t="$(vb_now)" -v e="$end" 'BEGIN { exit !(t > e) }'; then
			echo "vb_wait_for_socket: no socket $path after $2 s" >&2
			return 1
		fi
		sleep 0.05
	done
}

# vb_stop_clean PID NAME: SIGTERM must end a daemon cleanly (exit status 0;
# in a sanitizer build a memory error or leak found at exit fails it too).
vb_stop_clean() {
	local rc=0
	kill -TERM "$1" 2>/dev/null
	vb_wait "$1" || rc=$?
	[[ $rc -eq 0 ]] || vb_fail "$2 exited with status $rc after SIGTERM"
}

# With VB_VALGRIND=1, vb_wrap TAG prints a valgrind command line to put in
# front of a daemon (memcheck, fd tracking, log in $VB_TMP/valgrind-TAG.log),
# and vb_wrap_check TAG NAME fails the test unless that log shows no memory
# error, no leak and no file descriptor left open at exit beyond stdin,
# stdout and stderr. Without VB_VALGRIND both do nothing.
vb_wrap() {
	[[ -n ${VB_VALGRIND:-} ]] || return 0
	echo valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--track-fds=yes --error-exitcode=99 --log-file="$VB_TMP/valgrind-$1.log"
}

vb_wrap_check() {
	local log=$VB_TMP/valgrind-$1.log own
	[[ -n ${VB_VALGRIND:-} ]] || return 0
	[[ -f $log ]] || vb_fail "$2: no valgrind log"
	grep -q 'Invalid \|uninitialised\|definitely lost\|indirectly lost' "$log" &&
		vb_fail "$2: valgrind found errors: $(head -n 40 "$log")"
	grep -q 'FILE DESCRIPTORS: .* at exit' "$log" || vb_fail "$2: valgrind did not track fds"
	# Descriptors the test shell passed down are not the daemon's to close.
	own=$(awk '/Open (file|AF_UNIX socket|AF_INET socket|AF_INET6 socket)/ { d = $0; getline; if ($0 !~ /inherited from parent/) print d }' "$log")
	[[ -z $own ]] || vb_fail "$2: file descriptors left open at exit: $own"
	echo "ok valgrind $2: no memory errors, no leaks, no fds left open"
}

# vb_guest: set VB_KERNEL and VB_INITRD, building the guest once (guest.sh).
vb_guest() {
	local out
	[[ -n ${VB_KERNEL:-} && -n ${VB_INITRD:-} ]] && return 0
	out=$("$VB_E2E/guest.sh") || vb_fail "guest.sh failed"
	VB_KERNEL=$(sed -n 's/^VB_KERNEL=//p' <<<"$out")
	VB_INITRD=$(sed -n 's/^VB_INITRD=//p' <<<"$out")
	[[ -f $VB_KERNEL && -f $VB_INITRD ]] || vb_fail "guest.sh gave no kernel/initrd"
}

# vb_guest_overlay FILE...: a per-test initrd, the cached one plus FILEs as
# /guest/<name> (run one with vb.prog=<name without .sh>). The kernel unpacks
# concatenated cpio archives in order, so nothing is rebuilt.
vb_guest_overlay() {
	local d=$VB_TMP/overlay f
	vb_guest
	rm -rf "$d"
	mkdir -p "$d/guest"
	for f in "$@"; do
		install -m 755 "$f" "$d/guest/" || return 1
	done
	{
		cat "$VB_INITRD"
		(cd "$d" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -n -1)
	} >"$VB_TMP/initrd-overlay.cpio.gz" || return 1
	VB_INITRD=$VB_TMP/initrd-overlay.cpio.gz
}

# qemu-storage-daemon's vhost-user-blk export takes num-queues since QEMU 6.0.
vb_qsd_has_numq() {
	local v
	v=$(qemu-storage-daemon --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p;q')
	[[ ${v:-0} -ge 6 ]]
}

# vb_qsd NS IMG SOCK [NUMQ]: export raw image IMG as a writable vhost-user-blk
# server on SOCK; waits for the socket. Pid in VB_LAST_PID, log in SOCK.log.
vb_qsd() {
	local ns=$1 img=$2 sock=$3 numq=${4:-} opt='' pid
	rm -f "$sock"
	if [[ -n $numq ]]; then
		vb_qsd_has_numq && opt=,num-queues=$numq ||
			echo "vb_qsd: this qemu-storage-daemon ignores num-queues" >&2
	fi
	vb_log_add "$sock.log"
	vb_run_in "$ns" qemu-storage-daemon \
		--blockdev "driver=file,node-name=f0,filename=$img" \
		--blockdev driver=raw,node-name=d0,file=f0 \
		--export "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=$sock,writable=on$opt" \
		>"$sock.log" 2>&1
	pid=$VB_LAST_PID
	vb_wait_for_socket "$sock" 10 "$pid"
}

# vb_qemu_blk [-n NS] [-q NUMQ] [-c CPUS] [-m MIB] [-t TIMEOUT] [-a APPEND] [-r]
#             LOG SOCK...
# Boot the test guest under TCG with one vhost-user-blk-pci device per SOCK
# (in order: vda, vdb, ...), NUMQ queues each (default 1), guest RAM shared
# through a memfd as vhost-user requires. -c defaults to NUMQ (blk-mq uses
# min(queues, CPUs) queues); -a adds to the kernel command line (vb.prog=...);
# -r reconnects the chardevs when the server goes away. The serial console goes
# to LOG, QEMU's own messages to LOG.qemu. QEMU is killed after TIMEOUT s
# (VB_QEMU_TIMEOUT). Its pid (that of `timeout`) is VB_QEMU_PID; wait with
# vb_wait, which returns 124 on timeout. no_timer_check: on a loaded host TCG
# can miss the kernel's early IO-APIC timer check, and the boot then hangs.
vb_qemu_blk() {
	local ns='' numq=1 cpus='' mem=256 tmo=$VB_QEMU_TIMEOUT append='' rc='' opt OPTIND=1
	local log i args=() bios=()
	while getopts n:q:c:m:t:a:r opt; do
		case $opt in
		n) ns=$OPTARG ;;
		q) numq=$OPTARG ;;
		c) cpus=$OPTARG ;;
		m) mem=$OPTARG ;;
		t) tmo=$OPTARG ;;
		a) append=$OPTARG ;;
		r) rc=,reconnect=1 ;;
		*) return 2 ;;
		esac
	done
	shift $((OPTIND - 1))
	log=$1
	shift
	[[ $# -ge 1 ]] || { echo "vb_qemu_blk: no socket given" >&2; return 2; }
	vb_guest
	[[ -n $VB_QEMU_BIOS ]] && bios=(-bios "$VB_QEMU_BIOS")
	for ((i = 1; i <= $#; i++)); do
		args+=(-chardev "socket,id=c$i,path=${!i}$rc"
			-device "vhost-user-blk-pci,id=blk$i,chardev=c$i,num-queues=$numq")
	done
	: >"$log"
	vb_log_add "$log.qemu"
	vb_log_add "$log"
	# shellcheck disable=SC2086 # VB_QEMU_ARGS is a list of words
	vb_run_in "$ns" timeout -k 5 "$tmo" qemu-system-x86_64 \
		-accel tcg -M pc -smp "${cpus:-$numq}" -m "$mem" \
		-object "memory-backend-memfd,id=mem,size=${mem}M,share=on" -numa node,memdev=mem \
		-nodefaults -display none -no-reboot \
		-chardev "file,id=con,path=$log" -serial chardev:con \
		-kernel "$VB_KERNEL" -initrd "$VB_INITRD" \
		-append "console=ttyS0 panic=-1 quiet no_timer_check vb.ndisks=$# $append" \
		"${args[@]}" "${bios[@]}" ${VB_QEMU_ARGS:-} >"$log.qemu" 2>&1
	# shellcheck disable=SC2034 # for the tests
	VB_QEMU_PID=$VB_LAST_PID
}

# vb_guest_lines LOG: the guest's report lines, console noise removed.
vb_guest_lines() { tr -d '\r' <"$1" | grep -o 'GUEST .*' || true; }

# vb_guest_times LOG: "boot B s, workload W s" from the guest's uptime stamps.
vb_guest_times() {
	vb_guest_lines "$1" | awk '$2 == "start" { s = $3 } $2 == "exit" { e = $4 }
		END { printf "boot %.1f s, workload %.1f s", s, e - s }'
}

# vb_blk_image IMG MIB TAG: a sparse MIB MiB image whose first MiB holds a
# text pattern naming TAG, so a guest disk can be matched to its image.
# The pattern's md5 goes to IMG.pre.
vb_blk_image() {
	local img=$1 mib=$2 tag=$3 s
	rm -f "$img"
	truncate -s "${mib}M" "$img" || return 1
	for ((s = 0; s < 2048; s++)); do
		printf '%-511s\n' "vbridge e2e image $tag sector $s"
	done >"$img.pat"
	dd if="$img.pat" of="$img" conv=notrunc status=none || return 1
	md5sum <"$img.pat" | cut -d' ' -f1 >"$img.pre"
	rm -f "$img.pat"
}

# vb_md5_range FILE OFF SIZE
vb_md5_range() {
	dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none |
		md5sum | cut -d' ' -f1
}

# vb_nonzero_range FILE OFF SIZE: number of non-zero bytes.
vb_nonzero_range() {
	dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none |
		tr -d '\000' | wc -c
}

# vb_blk_verify LOG NUMQ IMG...: check the report of guest/blk.sh in LOG
# against the images, after QEMU has exited. Each guest disk is matched to
# the image whose first MiB it saw; then every region the guest wrote must
# read back the same in the guest and sit in the image at the same offset,
# and nothing else of the image may have changed (it was zero). NUMQ, if not
# empty, is the number of queues each disk must have used.
vb_blk_verify() {
	local log=$1 numq=$2 lines img d n=0 bad=0
	shift 2
	lines=$(vb_guest_lines "$log")
	grep -q '^GUEST done' <<<"$lines" || { echo "verify: guest did not finish" >&2; return 1; }
	grep '^GUEST error' <<<"$lines" >&2 && return 1
	[[ $(grep -c '^GUEST disk ' <<<"$lines") -eq $# ]] ||
		{ echo "verify: guest saw $(grep -c '^GUEST disk ' <<<"$lines") disks, want $#" >&2; return 1; }
	for img; do
		d=$(awk -v m="$(cat "$img.pre")" '$2 == "pre" && $4 == m { print $3 }' <<<"$lines")
		if [[ $(wc -w <<<"$d") -ne 1 ]]; then
			echo "verify: ${img##*/}: first MiB seen by guest disks: '${d}' (want one)" >&2
			return 1
		fi
		vb_blk_verify_disk "$lines" "$d" "$img" "$numq" || bad=1
		n=$((n + 1))
	done
	return $bad
}

vb_blk_verify_disk() {
	local lines=$1 d=$2 img=$3 numq=$4 size q idle runs off len sum back end=1048576 total=0 bad=0
	size=$(stat -c %s "$img")
	[[ $(awk -v d="$d" '$2 == "disk" && $3 == d { print $4 }' <<<"$lines") == "$size" ]] ||
		{ echo "verify: $d: size differs from ${img##*/} ($size)" >&2; bad=1; }
	q=$(awk -v d="$d" '$2 == "queues" && $3 == d { print $4 }' <<<"$lines")
	[[ -z $numq || $q == "$numq" ]] ||
		{ echo "verify: $d: $q queues in use, want $numq" >&2; bad=1; }
	# Each hardware queue is one virtqueue; the guest spread its writes over
	# the CPUs, so an idle one means a queue that was never exercised.
	idle=$(awk -v d="$d" '$2 == "hctx" && $3 == d && $5 == 0 { printf "%s ", $4 }' <<<"$lines")
	[[ -z $idle ]] || { echo "verify: $d: no request on queue(s) $idle" >&2; bad=1; }
	while read -r off len sum; do
		back=$(awk -v d="$d" -v o="$off" -v l="$len" \
			'$2 == "region" && $3 == d && $4 == o && $5 == l { print $6 }' <<<"$lines")
		[[ $back == "$sum" ]] ||
			{ echo "verify: $d @$off+$len: guest wrote $sum, read back '$back'" >&2; bad=1; }
		[[ $(vb_md5_range "$img" "$off" "$len") == "$sum" ]] ||
			{ echo "verify: $d @$off+$len: image ${img##*/} differs from what the guest wrote" >&2; bad=1; }
		((off >= end)) || { echo "verify: $d: regions overlap at $off" >&2; bad=1; }
		[[ $(vb_nonzero_range "$img" "$end" $((off - end))) -eq 0 ]] ||
			{ echo "verify: ${img##*/}: bytes changed in $end..$off, never written" >&2; bad=1; }
		end=$((off + len))
		total=$((total + len))
	done < <(awk -v d="$d" '$2 == "wrote" && $3 == d { print $4, $5, $6 }' <<<"$lines" | sort -n)
	[[ $(vb_nonzero_range "$img" "$end" $((size - end))) -eq 0 ]] ||
		{ echo "verify: ${img##*/}: bytes changed after $end, never written" >&2; bad=1; }
	((total >= 16 * 1048576)) || { echo "verify: $d: only $total bytes written" >&2; bad=1; }
	runs=$(awk -v d="$d" '$2 == "hctx" && $3 == d { printf "%s%s", s, $5; s = "/" }' <<<"$lines")
	[[ $bad -eq 0 ]] && echo "verify: $d = ${img##*/}: $q queue(s) (runs ${runs:-?})," \
		"$((total / 1048576)) MiB in $(grep -c "^GUEST wrote $d " <<<"$lines") regions ok" >&2
	return $bad
}

# vb_nft_loss NS IF PERCENT: drop PERCENT% of the IEEE 1722 frames (EtherType
# 0x22f0) arriving on IF in NS, at random (nftables netdev ingress; netem is
# not in this kernel); 0 removes the rule. vb_nft_dropped NS: frames dropped.
vb_nft_loss() {
	ip netns exec "$1" nft delete table netdev vbloss 2>/dev/null
	[[ $3 -eq 0 ]] && return 0
	ip netns exec "$1" nft -f - <<EOF
table netdev vbloss {
	chain ingress {
		type filter hook ingress device "$2" priority 0;
		meta protocol 0x22f0 numgen random mod 100 < $3 counter drop
	}
}
EOF
}

vb_nft_dropped() {
	ip netns exec "$1" nft list table netdev vbloss 2>/dev/null |
		sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -n1
}

# ---- gPTP between the ECUs with linuxptp (ptp4l, pmc; written for 3.1.1)
# All namespaces share the host's CLOCK_REALTIME, so every instance runs
# free_running 1: ptp4l then opens no clock at all (clkid CLOCK_INVALID) and
# never calls clock_adjtime, so it neither steps nor steers the host clock
# (nor clears its leap/UNSYNC status bits, which a plain master does at
# start). It still measures and reports master_offset. Software time stamps
# (veth has no PHC), gPTP profile (transportSpecific 1, L2, P2P).

# vb_ptp_sock TAG: the management socket of instance TAG.
vb_ptp_sock() { echo "$VB_TMP/ptp4l-$1.sock"; }

# vb_ptp4l NS IF ROLE TAG: start ptp4l on IF in NS as the gPTP grandmaster
# (ROLE master: gmCapable, priority1 246) or as a slave that can never win
# (ROLE slave: slaveOnly, priority1 255). Config $VB_TMP/ptp4l-TAG.cfg, log
# $VB_TMP/ptp4l-TAG.log (appended to: the same TAG restarts an instance),
# management socket vb_ptp_sock TAG (waited for). Sets VB_PTP_PID_TAG (TAG:
# letters, digits, _; the pid is ptp4l's own); prints nothing.
vb_ptp4l() {
	local ns=$1 ifc=$2 role=$3 tag=$4 cfg sock log pid roleopt=()
	[[ $tag =~ ^[A-Za-z0-9_]+$ ]] || { echo "vb_ptp4l: bad tag '$tag'" >&2; return 2; }
	case $role in
	master) roleopt=('gmCapable 1' 'priority1 246' 'priority2 248') ;;
	# ptp4l refuses slaveOnly with gmCapable 0.
	slave) roleopt=('gmCapable 1' 'slaveOnly 1' 'priority1 255' 'priority2 255') ;;
	*) echo "vb_ptp4l: role '$role' is neither master nor slave" >&2; return 2 ;;
	esac
	cfg=$VB_TMP/ptp4l-$tag.cfg
	log=$VB_TMP/ptp4l-$tag.log
	sock=$(vb_ptp_sock "$tag")
	# sun_path holds 107 characters and a NUL; ptp4l and pmc would both
	# silently cut a longer path (pmc -s refuses more than 108).
	((${#sock} <= 100)) || { echo "vb_ptp4l: socket path too long: $sock" >&2; return 1; }
	{
		echo "[global]"
		# gPTP.cfg of linuxptp, less priority1/2 (set per role below) and
		# neighborPropDelayThresh: its 800 ns suits hardware time stamps;
		# veth with software ones measures 1-2 us, asCapable then stays
		# false and the slave drops every Announce without a word (pr_debug).
		# 20 ms is ptp4l's default.
		printf '%s\n' 'logAnnounceInterval 0' 'logSyncInterval -3' \
			'syncReceiptTimeout 3' 'neighborPropDelayThresh 20000000' \
			'min_neighbor_prop_delay -20000000' 'assume_two_step 1' \
			'path_trace_enabled 1' 'follow_up_info 1' 'transportSpecific 0x1' \
			'ptp_dst_mac 01:80:C2:00:00:0E' 'network_transport L2' \
			'delay_mechanism P2P'
		printf '%s\n' 'time_stamping software' 'free_running 1' 'use_syslog 0' \
			"uds_address $sock" "${roleopt[@]}"
		# linuxptp 4.0 added a read-only socket, /var/run/ptp4lro unless
		# set, which two instances would fight over; 3.1.1 rejects the
		# option ("unknown option uds_ro_address").
		[[ $(ptp4l -v 2>/dev/null) =~ ^[0-3]\. ]] || echo "uds_ro_address ${sock%.sock}-ro.sock"
	} >"$cfg" || return 1
	# A socket left by a killed instance would pass the wait below at once.
	rm -f "$sock"
	# A restart appends: the log keeps the whole story.
	[[ " ${VB_LOGS[*]} " == *" $log "* ]] || vb_log_add "$log"
	vb_run_in "$ns" ptp4l -f "$cfg" -i "$ifc" -m >>"$log" 2>&1
	pid=$VB_LAST_PID
	printf -v "VB_PTP_PID_$tag" '%s' "$pid"
	vb_wait_for_socket "$sock" 10 "$pid" || return 1
	[[ $role == slave ]] || return 0
	# A free-running ptp4l (3.1.1 clock_no_adjust) reports its servo locked,
	# and so lets the port go UNCALIBRATED -> SLAVE, only once told that
	# its local sync is certain; until then it stays UNCALIBRATED forever.
	vb_pmc "$tag" 'SET SYNCHRONIZATION_UNCERTAIN_NP 0' | grep -q 'uncertain[[:space:]]*0$' ||
		{ echo "vb_ptp4l: $tag did not take SET SYNCHRONIZATION_UNCERTAIN_NP 0" >&2; return 1; }
}

# vb_pmc TAG CMD...: send the management commands CMD ('GET TIME_STATUS_NP')
# to instance TAG over its UNIX socket and print pmc's output (one reply
# block per command; only the "sending:" line if ptp4l did not answer).
# -b 0: the request stays in that ptp4l, not forwarded to the link.
vb_pmc() {
	local tag=$1
	shift
	pmc -u -b 0 -t 1 -d 0 -s "$(vb_ptp_sock "$tag")" -i "$VB_TMP/pmc-$tag.$BASHPID" "$@"
}

# vb_ptp_wait_slave TAG TIMEOUT: wait (0.5 s polls) until instance TAG's port
# is SLAVE and it sees a grandmaster (gmPresent true); fails the test with the
# last pmc output after TIMEOUT s, or at once if that ptp4l has exited.
vb_ptp_wait_slave() {
	local tag=$1 out t0 pid
	t0=$(vb_now)
	pid=VB_PTP_PID_$tag
	pid=${!pid:-}
	while :; do
		[[ -z $pid ]] || vb_alive "$pid" || vb_fail "ptp4l $tag (pid $pid) has exited"
		out=$(vb_pmc "$tag" 'GET PORT_DATA_SET' 'GET TIME_STATUS_NP' 'GET PORT_DATA_SET_NP' 2>&1)
		grep -q 'portState[[:space:]]*SLAVE$' <<<"$out" &&
			grep -q 'gmPresent[[:space:]]*true$' <<<"$out" && return 0
		awk -v t="$(vb_elapsed "$t0")" -v d="$2" 'BEGIN { exit !(t >= d) }' &&
			vb_fail "ptp4l $tag: no SLAVE with a grandmaster after $2 s; last pmc reply:"$'\n'"$out"
		sleep 0.5
	done
}

# vb_ptp_clock_id MAC: the clockIdentity ptp4l makes of MAC (EUI-48 to
# EUI-64: ff:fe in the middle) as pmc prints it, aabbcc.fffe.ddeeff.
vb_ptp_clock_id() {
	local m=${1//:/}
	m=${m,,}
	echo "${m:0:6}.fffe.${m:6:6}"
}
