#!/bin/bash
# vbridge benchmark (a benchmark, not a test: not named test_*, ctest does not
# collect it). In one run, between two ECU namespaces joined by veth:
#   (a)   vblk-bench in ECU A straight against qemu-storage-daemon (tmpfs image)
#   (raw) tcp-bench A <- B: a TCP stream and a 64 B / 4 KiB ping-pong
#         (and iperf3 as the veth ceiling, when installed)
#   (b)   vblk-bench in ECU B -> importer (ECU B) -> TCP -> exporter (ECU A) -> qsd
# Workloads: 64 KiB randread and randwrite at QD32, 4 KiB randread at QD1.
# Each path is first proven with vblk-bench --verify. Prints a table, the
# ratios (b)/(a) and (b)/(raw), and the VmRSS of each daemon before and after.
#
# Usage: tests/e2e/bench.sh        (as root, after a build)
# Environment:
#   VB_BUILD          build tree holding vbridged and tools/ (default SRC/build)
#   BENCH_SECONDS     seconds per workload (default 5)
#   BENCH_LONG=1      also one million 4 KiB requests through (b), RSS sampled
#   BENCH_LONG_REQS   requests of the long mode (default 1000000)
#   BENCH_SKIP_B=1    run (a) and raw only
#   BENCH_POOL_MIB    the exporter's buffer pool, for the RSS target (default 16,
#                     vbridged's default pool-size)
#   BENCH_OUT=FILE    keep every result (one JSON object a line, labelled)
#   BENCH_VERBOSE=1   vbridged -v
# Exit status: 0 when every part ran, 1 when one failed (the table still shows
# what ran; (a) and raw failing end the run at once).
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

SECS=${BENCH_SECONDS:-5}
LONG_REQS=${BENCH_LONG_REQS:-1000000}
POOL_MIB=${BENCH_POOL_MIB:-16}
VBLK=$VB_BUILD/tools/vblk-bench
TCPB=$VB_BUILD/tools/tcp-bench
VBRIDGED=$VB_BUILD/vbridged
IMG=/dev/shm/vb-bench-$$.img
RES=$VB_TMP/results.jsonl
RSS=$VB_TMP/rss.txt
PORT_VB=7800
PORT_RAW=7801
PORT_IPERF=7802
B_ERR=

# The image lives outside VB_TMP (tmpfs, so the disk is not what is measured).
# shellcheck disable=SC2317 # called from the EXIT trap
bench_exit() {
	local rc=$?
	rm -f "$IMG"
	[[ -n ${BENCH_OUT:-} && -s $RES ]] && cp "$RES" "$BENCH_OUT"
	(exit "$rc")
	vb_cleanup
}
trap bench_exit EXIT

# The workloads: label, vblk-bench arguments. Labels pair (a) with (b).
WORKLOADS=(
	"64k-randread-qd32|--size 64k --depth 32 --rw randread"
	"64k-randwrite-qd32|--size 64k --depth 32 --rw randwrite"
	"4k-randread-qd1|--size 4k --depth 1 --rw randread"
)

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# rss_note WHO PID WHEN: one line of the RSS record.
rss_note() { echo "$1 $3 $(rss_kb "$2")" >>"$RSS"; }

# record LABEL JSON: keep one result.
record() {
	[[ $2 == \{* ]] || return 1
	printf '{"label":"%s","r":%s}\n' "$1" "$2" >>"$RES"
}

# vblk NS SOCK LABEL ARGS...: one vblk-bench run, its JSON recorded under LABEL.
vblk() {
	local ns=$1 sock=$2 label=$3 out log=$VB_TMP/$3.log
	shift 3
	vb_log "$label: vblk-bench $*"
	out=$(ip netns exec "$ns" "$VBLK" --socket "$sock" --json "$@" 2>"$log") || {
		echo "$label: vblk-bench failed:" >&2
		tail -n 5 "$log" >&2
		vb_alive "$QSD_PID" || echo "$label: qemu-storage-daemon (pid $QSD_PID) is gone" >&2
		return 1
	}
	while read -r line; do
		record "$label" "$line"
	done <<<"$out"
}

# run_path P NS SOCK: the verify pass and every workload on path P.
run_path() {
	local path=$1 ns=$2 sock=$3 w
	vblk "$ns" "$sock" "$path:verify" --verify --size 64k --depth 8 --requests 1024 || return 1
	for w in "${WORKLOADS[@]}"; do
		# shellcheck disable=SC2086 # the arguments are split on purpose
		vblk "$ns" "$sock" "$path:${w%%|*}" --seconds "$SECS" --warmup 200 ${w#*|} || return 1
	done
}

run_raw() {
	local srv out
	vb_run_in "$VB_NS_A" "$TCPB" server --listen "$VB_IP_A:$PORT_RAW" >"$VB_TMP/tcp-server.log" 2>&1
	srv=$VB_LAST_PID
	sleep 0.3
	vb_log "raw: tcp-bench stream and pingpong, $VB_NS_B -> $VB_NS_A"
	out=$(ip netns exec "$VB_NS_B" "$TCPB" stream --connect "$VB_IP_A:$PORT_RAW" --size 64k \
		--seconds "$SECS" --json) && record raw:stream "$out" || return 1
	out=$(ip netns exec "$VB_NS_B" "$TCPB" pingpong --connect "$VB_IP_A:$PORT_RAW" \
		--request 64 --reply 4096 --count 1000000000 --seconds "$SECS" --warmup 500 --json) &&
		record raw:pingpong "$out" || return 1
	vb_stop "$srv"
	command -v iperf3 >/dev/null || return 0
	vb_run_in "$VB_NS_A" iperf3 -s -1 -B "$VB_IP_A" -p "$PORT_IPERF" >/dev/null 2>&1
	srv=$VB_LAST_PID
	sleep 0.3
	out=$(ip netns exec "$VB_NS_B" iperf3 -c "$VB_IP_A" -p "$PORT_IPERF" -t "$SECS" -J |
		python3 -c 'import json,sys; e=json.load(sys.stdin)["end"]["sum_received"]
print(json.dumps({"mib_s": e["bits_per_second"] / 8 / 1048576, "seconds": e["seconds"]}))') &&
		record raw:iperf3 "$out"
	vb_stop "$srv"
	return 0
}

# wait_listen NS PORT TIMEOUT PID: until something listens on TCP PORT in NS.
wait_listen() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		[[ -n $(ip netns exec "$1" ss -Hltn "sport = :$2") ]] && return 0
		vb_alive "$4" || { echo "pid $4 exited before listening on port $2" >&2; return 1; }
		sleep 0.05
	done
	echo "nothing listens on port $2 after $3 s" >&2
	return 1
}

# start_bridge: exporter in A (vhost-user front-end of qsd), importer in B.
start_bridge() {
	local v=() da=$VB_TMP/run-a db=$VB_TMP/run-b
	[[ -n ${BENCH_VERBOSE:-} ]] && v=(-v)
	[[ -x $VBRIDGED ]] || { echo "no $VBRIDGED" >&2; return 1; }
	mkdir -p "$da" "$db"
	vb_log_add "$VB_TMP/exporter.log"
	vb_log_add "$VB_TMP/importer.log"
	vb_run_in "$VB_NS_A" "$VBRIDGED" -d --allow-plaintext "${v[@]}" --node ecu-a \
		--listen "tcp://$VB_IP_A:$PORT_VB" --export "disk0=vhost-user:$QSD_SOCK,type=blk" \
		--runtime-dir "$da" >"$VB_TMP/exporter.log" 2>&1
	EXP_PID=$VB_LAST_PID
	wait_listen "$VB_NS_A" "$PORT_VB" 10 "$EXP_PID" || return 1
	vb_run_in "$VB_NS_B" "$VBRIDGED" -d --allow-plaintext "${v[@]}" --node ecu-b \
		--import "disk0=tcp://$VB_IP_A:$PORT_VB" --runtime-dir "$db" \
		>"$VB_TMP/importer.log" 2>&1
	IMP_PID=$VB_LAST_PID
	IMP_SOCK=$db/disk0.sock
	vb_wait_for_socket "$IMP_SOCK" 20 "$IMP_PID" || return 1
}

rss_all() {
	rss_note qsd "$QSD_PID" "$1"
	[[ -n ${EXP_PID:-} ]] && rss_note exporter "$EXP_PID" "$1"
	[[ -n ${IMP_PID:-} ]] && rss_note importer "$IMP_PID" "$1"
	return 0
}

# The long mode: half writes, half reads, RSS noted after each half and
# sampled every second meanwhile (the peak shows a transient growth).
run_long() {
	local half=$((LONG_REQS / 2)) sampler
	vb_run_in - bash -c "while sleep 1; do
		echo \"exporter long-peak \$(awk '/^VmRSS:/ { print \$2 }' /proc/$EXP_PID/status)\"
		echo \"importer long-peak \$(awk '/^VmRSS:/ { print \$2 }' /proc/$IMP_PID/status)\"
		done >>'$RSS'"
	sampler=$VB_LAST_PID
	vblk "$VB_NS_B" "$IMP_SOCK" b:long-4k-randwrite-qd32 --size 4k --depth 32 \
		--rw randwrite --requests "$half" --warmup 0 || return 1
	rss_all long-half
	vblk "$VB_NS_B" "$IMP_SOCK" b:long-4k-randread-qd32 --size 4k --depth 32 \
		--rw randread --requests "$((LONG_REQS - half))" --warmup 0 || return 1
	vb_stop "$sampler"
	rss_all long-end
}

run_b() {
	start_bridge || { B_ERR="vbridged did not come up"; return 1; }
	rss_all b-start
	run_path b "$VB_NS_B" "$IMP_SOCK" || { B_ERR="a (b) workload failed"; return 1; }
	rss_all b-end
	if [[ -n ${BENCH_LONG:-} ]]; then
		run_long || { B_ERR="the long run failed"; return 1; }
	fi
	if ! vb_alive "$EXP_PID" || ! vb_alive "$IMP_PID"; then
		B_ERR="a daemon died"
		return 1
	fi
}

report() {
	python3 - "$RES" "$RSS" "${B_ERR:-}" "$POOL_MIB" "$LONG_REQS" <<'EOF'
import json, sys
res, rss_file, b_err = sys.argv[1], sys.argv[2], sys.argv[3]
pool_mib, long_reqs = int(sys.argv[4]), sys.argv[5]
R = {}
for line in open(res):
    o = json.loads(line)
    R.setdefault(o["label"], []).append(o["r"])
def one(label):
    v = R.get(label)
    return v[-1] if v else None
def f(v, fmt):
    return "n/a" if v is None else fmt % v

print()
print("%-28s %10s %10s %10s %10s" % ("path:workload", "MiB/s", "IOPS", "p50 us", "p99 us"))
for label in R:
    for r in R[label]:
        name = label + ("" if not r.get("mode", "").startswith("verify") else "-" + r["mode"][7:])
        print("%-28s %10s %10s %10s %10s" % (name, f(r.get("mib_s"), "%.1f"),
              f(r.get("iops"), "%.0f"), f(r.get("p50_us"), "%.1f"), f(r.get("p99_us"), "%.1f")))

def ratio(x, y):
    return None if x is None or y in (None, 0) else x / y
print()
print("ratios (same run)")
stream, ping, iperf = one("raw:stream"), one("raw:pingpong"), one("raw:iperf3")
for w in ("64k-randread-qd32", "64k-randwrite-qd32"):
    a, b = one("a:" + w), one("b:" + w)
    g = lambda r: r and r["mib_s"]
    print("  %-20s throughput (b)/(a) %s   (b)/(raw stream) %s   (b)/(iperf3) %s" % (
        w, f(ratio(g(b), g(a)), "%.2f"), f(ratio(g(b), g(stream)), "%.2f"),
        f(ratio(g(b), g(iperf)), "%.2f")))
a, b = one("a:4k-randread-qd1"), one("b:4k-randread-qd1")
p = lambda r: r and r["p50_us"]
d = lambda x, y: None if x is None or y is None else x - y
print("  %-20s p50 (b)-(a) %s us ((b)/(a) %s)   (b)-(raw pingpong) %s us ((b)/(raw) %s)" % (
    "4k-randread-qd1", f(d(p(b), p(a)), "%+.1f"), f(ratio(p(b), p(a)), "%.2f"),
    f(d(p(b), p(ping)), "%+.1f"), f(ratio(p(b), p(ping)), "%.2f")))

print()
print("VmRSS (KiB)")
rows = {}
for line in open(rss_file):
    f3 = line.split()
    if len(f3) != 3 or not f3[2].isdigit():
        continue  # the process was gone when sampled
    who, when, kb = f3[0], f3[1], int(f3[2])
    if when == "long-peak":
        rows.setdefault(who, {})[when] = max(kb, rows.get(who, {}).get(when, 0))
    else:
        rows.setdefault(who, {})[when] = kb
cols = ["a-start", "a-end", "b-start", "b-end", "long-half", "long-end", "long-peak"]
print("  %-10s" % "" + "".join("%11s" % c for c in cols))
for who, v in rows.items():
    print("  %-10s" % who + "".join("%11s" % v.get(c, "-") for c in cols))
# Target: a daemon stays under 8 MiB plus its buffer pools and does not grow.
pool = {"exporter": pool_mib * 1024, "importer": 0}
for who in ("exporter", "importer"):
    v = rows.get(who, {})
    if not v:
        continue
    top = max(kb for k, kb in v.items())
    print("  %s: peak %d KiB = pool %d + %d KiB (target <= 8192): %s" % (
        who, top, pool[who], top - pool[who], "ok" if top - pool[who] <= 8192 else "OVER"))
    if "long-end" in v and "b-end" in v:
        g = v["long-end"] - v["b-end"]
        print("  %s: growth over the long run (%s requests): %+d KiB: %s" % (
            who, long_reqs, g, "ok" if g <= 256 else "GROWING"))
if b_err:
    print("\n(b) incomplete: " + b_err)
EOF
}

vb_need_root
vb_need_cmd qemu-storage-daemon ip python3
for f in "$VBLK" "$TCPB"; do
	[[ -x $f ]] || vb_fail "no $f: build first (cmake --build $VB_BUILD)"
done
: >"$RES"
: >"$RSS"
vb_ecus || vb_fail "cannot set up the ECU namespaces"
rm -f "$IMG"
truncate -s 256M "$IMG" || vb_fail "cannot create $IMG"
QSD_SOCK=$VB_TMP/qsd.sock
vb_qsd "$VB_NS_A" "$IMG" "$QSD_SOCK" || vb_fail "qemu-storage-daemon did not start"
QSD_PID=$VB_LAST_PID

# (a) first: qsd serves one front-end at a time, and (b)'s exporter keeps it.
rss_all a-start
run_path a "$VB_NS_A" "$QSD_SOCK" || vb_fail "(a) failed"
rss_all a-end
run_raw || vb_fail "raw TCP baseline failed"
rc=0
if [[ -z ${BENCH_SKIP_B:-} ]]; then
	run_b || rc=1
	[[ $rc -eq 0 ]] || vb_log "(b) failed: $B_ERR"
else
	B_ERR="skipped (BENCH_SKIP_B)"
fi
report
exit $rc
