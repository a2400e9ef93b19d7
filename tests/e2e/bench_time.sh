#!/bin/bash
# Benchmark: delivery-time error of presentation time (release minus
# deadline) over tsn:// between two ECUs synchronized by linuxptp (ptp4l
# grandmaster in A, free-running slave in B, as tests/e2e/test_time.sh).
# A measurement, not a pass/fail test: the figures go to docs/performance.md.
#
# Four timed imports on ECU B, each its own disk on A: classes audio and
# video, each with latency=1ms and latency=5ms. Each is driven by vblk-bench
# under two loads (4 KiB QD1 and 64 KiB QD8 random reads), alone and with a
# competing bulk stream (a fifth disk, class bulk, no latency, 64 KiB QD32
# random reads) running at the same time. Both daemons write --time-trace;
# for each run the error of every buffer released in the run's window is
# taken from the traces: requests released to the device on ECU A,
# completions released to the driver on ECU B. Reported per run: buffers,
# p50/p99/max of the error (us) and how many were late.
#
# Usage (root): bash tests/e2e/bench_time.sh   [BENCH_SECONDS=5] [BENCH_SPIN=0|200us]
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

VBRIDGED=$VB_BUILD/vbridged
VBCTL=$VB_BUILD/tools/vbridgectl
VBLK=$VB_BUILD/tools/vblk-bench
SECS=${BENCH_SECONDS:-5}
SPIN=${BENCH_SPIN:-0} # --release-spin of both daemons

# now SIDE: the daemon's common time, ns.
now() {
	local ns=$VB_NS_A
	[[ $1 == b ]] && ns=$VB_NS_B
	ip netns exec "$ns" "$VBCTL" -s "$VB_TMP/$1/vbridged.sock" status --json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["time"]["now_ns"])'
}

bench() {
	local disk=$1
	shift
	ip netns exec "$VB_NS_B" timeout -k 5 $((SECS + 60)) "$VBLK" --socket "$VB_TMP/b/$disk.sock" \
		--quiet "$@"
}

main() {
	local a_pid b_pid cls lat disk load bulk t0 t1 bp exports=() imports=() runs=()
	vb_need_root
	vb_need_cmd ptp4l pmc qemu-storage-daemon python3 ip
	[[ -x $VBRIDGED && -x $VBCTL && -x $VBLK ]] || vb_fail "build first ($VB_BUILD)"
	VB_L2_ONLY=1
	vb_ecus || vb_fail "cannot create the two ECU namespaces"
	vb_ptp4l "$VB_NS_A" "$VB_IF_A" master a || vb_fail "ptp4l master"
	vb_ptp4l "$VB_NS_B" "$VB_IF_B" slave b || vb_fail "ptp4l slave"

	local disks=(audio1ms audio5ms video1ms video5ms bulk)
	for disk in "${disks[@]}"; do
		vb_blk_image "$VB_TMP/$disk.img" 64 "$disk" || vb_fail "image $disk"
		vb_qsd "$VB_NS_A" "$VB_TMP/$disk.img" "$VB_TMP/qsd-$disk.sock" || vb_fail "qsd $disk"
		cls=${disk%%[0-9]*}
		exports+=(--export "$disk=vhost-user:$VB_TMP/qsd-$disk.sock,type=blk,class=$cls")
		if [[ $disk == bulk ]]; then
			imports+=(--import "$disk=tsn://$VB_IF_B/$VB_MAC_A,class=bulk")
		else
			imports+=(--import "$disk=tsn://$VB_IF_B/$VB_MAC_A,class=$cls,latency=${disk#"$cls"}")
		fi
	done
	vb_log_add "$VB_TMP/a.log"
	vb_run_in "$VB_NS_A" "$VBRIDGED" -d --node ecu-a --ptp4l "$(vb_ptp_sock a)" \
		--listen "tsn://$VB_IF_A" --time-trace "$VB_TMP/trace-a.csv" "${exports[@]}" \
		--release-spin "$SPIN" \
		--runtime-dir "$VB_TMP/a" >"$VB_TMP/a.log" 2>&1
	a_pid=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/a/vbridged.sock" 10 "$a_pid" || vb_fail "ECU A"
	vb_log_add "$VB_TMP/b.log"
	vb_run_in "$VB_NS_B" "$VBRIDGED" -d --node ecu-b --ptp4l "$(vb_ptp_sock b)" \
		--time-trace "$VB_TMP/trace-b.csv" "${imports[@]}" --release-spin "$SPIN" \
		--runtime-dir "$VB_TMP/b" >"$VB_TMP/b.log" 2>&1
	b_pid=$VB_LAST_PID
	for disk in "${disks[@]}"; do
		vb_wait_for_socket "$VB_TMP/b/$disk.sock" 15 "$b_pid" || vb_fail "no $disk.sock"
	done
	vb_ptp_wait_slave b 40
	for ((i = 0; i < 100; i++)); do
		[[ $(ip netns exec "$VB_NS_B" "$VBCTL" -s "$VB_TMP/b/vbridged.sock" status --json |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["time"]["state"])') == synchronized ]] && break
		sleep 0.2
	done

	for bulk in no yes; do
		for disk in audio1ms audio5ms video1ms video5ms; do
			for load in "4k QD1|--size 4k --depth 1" "64k QD8|--size 64k --depth 8"; do
				if [[ $bulk == yes ]]; then
					bench bulk --rw randread --size 64k --depth 32 --seconds $((SECS + 2)) \
						--warmup 0 >"$VB_TMP/bulk.log" 2>&1 &
					bp=$!
					sleep 1
				fi
				t0=$(now b)
				# shellcheck disable=SC2086 # the options are split on purpose
				bench "$disk" --rw randread --seconds "$SECS" --warmup 0 ${load#*|} \
					>"$VB_TMP/run.log" 2>&1 || vb_fail "$disk ${load%%|*}: $(tail -n 2 "$VB_TMP/run.log")"
				t1=$(now b)
				[[ $bulk == yes ]] && { wait "$bp" || vb_fail "bulk stream: $(tail -n 2 "$VB_TMP/bulk.log")"; }
				runs+=("$disk|${load%%|*}|$bulk|$t0|$t1|$(tail -n 1 "$VB_TMP/run.log")")
				vb_log "$disk ${load%%|*} bulk=$bulk: $(tail -n 1 "$VB_TMP/run.log")"
			done
		done
	done
	vb_stop_clean "$b_pid" "ECU B daemon"
	vb_stop_clean "$a_pid" "ECU A daemon"

	python3 - "$VB_TMP/trace-a.csv" "$VB_TMP/trace-b.csv" "${runs[@]}" <<'EOF'
import sys
ta, tb, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(path, side):
    rows = []
    for line in open(path):
        f = line.strip().split(",")
        if len(f) == 8 and f[0] == side:
            rows.append((f[1], int(f[5]), int(f[6]), f[7]))
    return rows
A, B = load(ta, "export"), load(tb, "import")
def pct(v, q):
    return v[min(len(v) - 1, max(0, int(q * len(v) + 0.999999) - 1))]
print("| class | latency | load | bulk stream | side | buffers | p50 us | p99 us | max us | late |")
print("|---|---|---|---|---|---:|---:|---:|---:|---:|")
for r in runs:
    disk, load_, bulk, t0, t1, _ = r.split("|", 5)
    t0, t1 = int(t0), int(t1)
    cls, lat = disk[:5], disk[5:]
    for side, rows in (("A: request to device", A), ("B: completion to driver", B)):
        err = sorted(rel - d for name, d, rel, v in rows if name == disk and t0 <= rel <= t1)
        late = sum(1 for name, d, rel, v in rows if name == disk and t0 <= rel <= t1 and v == "late")
        if not err:
            print(f"| {cls} | {lat} | {load_} | {bulk} | {side} | 0 | | | | |")
            continue
        print(f"| {cls} | {lat} | {load_} | {bulk} | {side} | {len(err)} | "
              f"{pct(err, .5)/1e3:.1f} | {pct(err, .99)/1e3:.1f} | {err[-1]/1e3:.1f} | {late} |")
EOF
}

main "$@"
