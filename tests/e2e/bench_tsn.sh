#!/bin/bash
# tsn:// benchmark (a benchmark, not a test: not named test_*, ctest does not
# collect it). In one run, on one veth pair between two ECU namespaces, in
# rounds, each part once per round and the order rotated from round to round:
#   tsn  vblk-bench (ECU B) -> importer (B) -> tsn:// -> exporter (A) -> qsd (A)
#   tcp  the same over tcp:// on the same veth pair (link-local addresses,
#        added once the tsn:// daemons are up; tsn:// does not use them)
#   pkt  pkt-bench B -> A, EtherType 0x88B5 on the same interfaces: a one-frame
#        64 B ping-pong, a 64 B / 4 KiB ping-pong (3 reply frames, as the
#        4 KiB read moves) and a stream of MTU-sized frames
#   raw  tcp-bench B -> A: the 64 KiB stream and 64 B / 4 KiB ping-pong of
#        bench.sh's raw baseline
# blk workloads as bench.sh: 64 KiB randread and randwrite at QD32, 4 KiB
# randread at QD1, each after a warm-up; both paths first proven with
# vblk-bench --verify. The tsn:// and tcp:// daemons stay up for the whole
# run, each pair with its own qemu-storage-daemon and tmpfs image. Prints the
# medians over the rounds (with min..max), and the ratios tsn/tcp, tsn/pkt
# and tcp/raw as the median of the per-round ratios. The daemons' CPU time
# and status (the tsn:// retransmission counters) are sampled around each
# blk workload. The load average at the start and the end is printed: other
# work on the machine shows there.
#
# Usage: tests/e2e/bench_tsn.sh      (as root, after a build; about 4 minutes)
# Environment:
#   VB_BUILD          build tree holding vbridged and tools/ (default SRC/build)
#   BENCH_SECONDS     seconds per workload (default 5)
#   BENCH_ROUNDS      rounds (default 3)
#   BENCH_OUT=FILE    keep every result (one JSON object a line, labelled)
#   BENCH_PERF=1      after the rounds, perf record each pair's daemons during
#                     one more 64 KiB randread and print where the samples fell
#                     (BENCH_ROUNDS=0 BENCH_PERF=1: the profile alone)
#   BENCH_VERBOSE=1   vbridged -v
# Exit status: 0 when every part of every round ran, 1 otherwise (the table
# still shows what ran).
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
VBLK=$VB_BUILD/tools/vblk-bench
TCPB=$VB_BUILD/tools/tcp-bench
PKTB=$VB_BUILD/tools/pkt-bench
VBCTL=$VB_BUILD/tools/vbridgectl
VBRIDGED=$VB_BUILD/vbridged
IMG_TSN=/dev/shm/vb-bench-tsn-$$.img
IMG_TCP=/dev/shm/vb-bench-tcp-$$.img
RES=$VB_TMP/results.jsonl
PORT_VB=7800
PORT_RAW=7801
# A client run that takes this long is stuck (vblk-bench gives up after 10 s
# without progress; tcp-bench has no timeout of its own).
TMO=$((SECS * 3 + 30))
CLK_TCK=$(getconf CLK_TCK)
ERRS=()

# shellcheck disable=SC2317 # called from the EXIT trap
bench_exit() {
	local rc=$?
	rm -f "$IMG_TSN" "$IMG_TCP"
	[[ -n ${BENCH_OUT:-} && -s $RES ]] && cp "$RES" "$BENCH_OUT"
	(exit "$rc")
	vb_cleanup
}
trap bench_exit EXIT

WORKLOADS=(
	"64k-randread-qd32|--size 64k --depth 32 --rw randread"
	"64k-randwrite-qd32|--size 64k --depth 32 --rw randwrite"
	"4k-randread-qd1|--size 4k --depth 1 --rw randread"
)

# record ROUND LABEL JSON [EXTRA]: keep one result; EXTRA ("k":v,...) joins
# the tool's own fields.
record() {
	[[ $3 == \{*\} ]] || return 1
	printf '{"round":%s,"label":"%s","r":%s%s}\n' "$1" "$2" "${3%\}}" \
		"${4:+,$4}}" >>"$RES"
}

# cpu_ticks PID: "user system" time so far, in clock ticks (proc(5), fields
# 14 and 15, counted after the command name's closing parenthesis).
cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12, $13 }'
}

# cpu_json NAME "U0 S0" "U1 S1": "NAME_user_s":..,"NAME_sys_s":.. for record's EXTRA.
cpu_json() {
	local u0 s0 u1 s1
	read -r u0 s0 <<<"$2"
	read -r u1 s1 <<<"$3"
	printf '"%s_user_s":%de-3,"%s_sys_s":%de-3' "$1" $(((u1 - u0) * 1000 / CLK_TCK)) \
		"$1" $(((s1 - s0) * 1000 / CLK_TCK))
}

# status_snap TAG FILE: the status (JSON) of the daemon with runtime dir
# $VB_TMP/TAG into FILE; the report reads the tsn:// counters from it.
status_snap() {
	ip netns exec "${NS[$1]}" "$VBCTL" -s "$VB_TMP/$1/vbridged.sock" status --json >"$2" 2>/dev/null
}

# tx_frames NS IF: frames (skbs: a TCP GSO packet counts once) sent on IF.
tx_frames() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/tx_packets"; }

# blk ROUND T: the three workloads through transport T's importer, with the
# CPU time of T's two daemons, their status and the veth frame counts around
# each (the frames include the 200 warm-up requests).
blk() {
	local round=$1 t=$2 w label out e0 i0 q0 e1 i1 q1 extra snap fa0 fb0 fa1 fb1
	for w in "${WORKLOADS[@]}"; do
		label=$t:${w%%|*}
		snap=$VB_TMP/status/$round-$label
		vb_log "round $round: $label"
		status_snap "$t-a" "$snap-pre-exporter.json"
		status_snap "$t-b" "$snap-pre-importer.json"
		fa0=$(tx_frames "$VB_NS_A" "$VB_IF_A") fb0=$(tx_frames "$VB_NS_B" "$VB_IF_B")
		e0=$(cpu_ticks "${EXP[$t]}") i0=$(cpu_ticks "${IMP[$t]}") q0=$(cpu_ticks "${QSD[$t]}")
		# shellcheck disable=SC2086 # the arguments are split on purpose
		out=$(ip netns exec "$VB_NS_B" timeout -k 5 "$TMO" "$VBLK" \
			--socket "$VB_TMP/$t-b/disk0.sock" --json --seconds "$SECS" --warmup 200 \
			${w#*|} 2>"$VB_TMP/$label.log") || {
			echo "$label: vblk-bench failed: $(tail -n 3 "$VB_TMP/$label.log")" >&2
			return 1
		}
		e1=$(cpu_ticks "${EXP[$t]}") i1=$(cpu_ticks "${IMP[$t]}") q1=$(cpu_ticks "${QSD[$t]}")
		fa1=$(tx_frames "$VB_NS_A" "$VB_IF_A") fb1=$(tx_frames "$VB_NS_B" "$VB_IF_B")
		status_snap "$t-a" "$snap-post-exporter.json"
		status_snap "$t-b" "$snap-post-importer.json"
		extra="$(cpu_json cpu_exporter "$e0" "$e1"),$(cpu_json cpu_importer "$i0" "$i1")"
		extra+=",$(cpu_json cpu_qsd "$q0" "$q1")"
		extra+=",\"frames_a_to_b\":$((fa1 - fa0)),\"frames_b_to_a\":$((fb1 - fb0))"
		record "$round" "$label" "$out" "$extra" || return 1
	done
}

part_tsn() { blk "$1" tsn; }
part_tcp() { blk "$1" tcp; }

# run ROUND LABEL CMD...: one baseline client in ECU B, its JSON recorded.
run() {
	local round=$1 label=$2 out
	shift 2
	vb_log "round $round: $label"
	out=$(ip netns exec "$VB_NS_B" timeout -k 5 "$TMO" "$@" --json 2>"$VB_TMP/$label.log") || {
		echo "$label: $1 failed: $(tail -n 3 "$VB_TMP/$label.log")" >&2
		return 1
	}
	record "$round" "$label" "$out"
}

part_pkt() {
	run "$1" pkt:pingpong-64 "$PKTB" pingpong --interface "$VB_IF_B" --peer "$VB_MAC_A" \
		--request 64 --count 1000000000 --seconds "$SECS" --warmup 500 &&
		run "$1" pkt:pingpong-64-4k "$PKTB" pingpong --interface "$VB_IF_B" \
			--peer "$VB_MAC_A" --request 64 --reply 4096 --count 1000000000 \
			--seconds "$SECS" --warmup 500 &&
		run "$1" pkt:stream "$PKTB" stream --interface "$VB_IF_B" --peer "$VB_MAC_A" \
			--seconds "$SECS"
}

part_raw() {
	run "$1" raw:stream "$TCPB" stream --connect "$IP_A:$PORT_RAW" --size 64k \
		--seconds "$SECS" &&
		run "$1" raw:pingpong "$TCPB" pingpong --connect "$IP_A:$PORT_RAW" --request 64 \
			--reply 4096 --count 1000000000 --seconds "$SECS" --warmup 500
}

# add_link_local: the addresses bench.sh's vb_ecus would have given, on the
# veth pair that vb_ecus made without any (VB_L2_ONLY).
add_link_local() {
	local x=$(($$ % 254 + 1))
	IP_A=169.254.$x.1
	IP_B=169.254.$x.2
	ip -n "$VB_NS_A" addr add "$IP_A/24" dev "$VB_IF_A" &&
		ip -n "$VB_NS_B" addr add "$IP_B/24" dev "$VB_IF_B" || return 1
	ip netns exec "$VB_NS_A" "${VB_PING[@]}" -c 1 -W 2 "$IP_B" >/dev/null ||
		{ echo "$IP_A cannot reach $IP_B" >&2; return 1; }
}

# daemon NS TAG ARGS...: a vbridged in NS with runtime dir $VB_TMP/TAG.
daemon() {
	local ns=$1 tag=$2 v=()
	shift 2
	[[ -n ${BENCH_VERBOSE:-} ]] && v=(-v)
	mkdir -p "$VB_TMP/$tag"
	vb_log_add "$VB_TMP/$tag.log"
	vb_run_in "$ns" "$VBRIDGED" -d "${v[@]}" --runtime-dir "$VB_TMP/$tag" "$@" \
		>"$VB_TMP/$tag.log" 2>&1
}

# start_pair T LISTEN IMPORT-URI [OPTIONS...]: qsd and exporter in A, importer in B.
start_pair() {
	local t=$1 listen=$2 src=$3 img=$4
	shift 4
	vb_qsd "$VB_NS_A" "$img" "$VB_TMP/qsd-$t.sock" || return 1
	QSD[$t]=$VB_LAST_PID
	daemon "$VB_NS_A" "$t-a" --node ecu-a --listen "$listen" \
		--export "disk0=vhost-user:$VB_TMP/qsd-$t.sock,type=blk" "$@"
	EXP[$t]=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/$t-a/vbridged.sock" 10 "${EXP[$t]}" || return 1
	daemon "$VB_NS_B" "$t-b" --node ecu-b --import "disk0=$src" "$@"
	IMP[$t]=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/$t-b/disk0.sock" 20 "${IMP[$t]}" || return 1
	vb_log "$t: proving the path with vblk-bench --verify"
	ip netns exec "$VB_NS_B" timeout -k 5 "$TMO" "$VBLK" --socket "$VB_TMP/$t-b/disk0.sock" \
		--verify --size 64k --depth 8 --requests 1024 >"$VB_TMP/verify-$t.log" 2>&1 || {
		echo "$t: verify failed: $(tail -n 3 "$VB_TMP/verify-$t.log")" >&2
		return 1
	}
}

# profile T: perf record of T's exporter and importer during a 64 KiB QD32
# randread; prints the share of the samples under a few functions (children
# included: a syscall wrapper counts its kernel path).
profile() {
	local t=$1 bp data=$VB_TMP/perf-$1.data
	vb_log "perf: $t 64k-randread-qd32"
	ip netns exec "$VB_NS_B" timeout -k 5 "$TMO" "$VBLK" --socket "$VB_TMP/$t-b/disk0.sock" \
		--seconds $((SECS + 2)) --warmup 200 --size 64k --depth 32 --rw randread \
		>"$VB_TMP/perf-$t.txt" 2>&1 &
	bp=$!
	sleep 1
	perf record -q -F 1999 -g -o "$data" -p "${EXP[$t]},${IMP[$t]}" -- sleep "$SECS" \
		>/dev/null 2>&1
	wait "$bp" || { echo "perf: $t: vblk-bench failed" >&2; return 1; }
	echo "profile of the $t:// exporter + importer: $(tail -n 1 "$VB_TMP/perf-$t.txt")"
	perf report -i "$data" --children --sort sym -g none --stdio 2>/dev/null |
		grep -E '\] (__GI___ioctl|__sendmmsg|__recvmmsg|__GI___writev|__writev|__libc_recv|epoll_wait|__memmove[a-z0-9_]*|__memcpy[a-z0-9_]*|tsn_port_mtu|avtp_decode|rel_[a-z_]*|frag_rx_push|pvm_irq_enable)$' |
		awk '{ printf "  %-36s %7s of samples (self %s)\n", $4, $1, $2 }' | head -n 16
}

start_servers() {
	vb_run_in "$VB_NS_A" "$PKTB" server --interface "$VB_IF_A" --idle 900 \
		>"$VB_TMP/pkt-server.log" 2>&1
	vb_run_in "$VB_NS_A" "$TCPB" server --listen "$IP_A:$PORT_RAW" >"$VB_TMP/tcp-server.log" 2>&1
	sleep 0.3
}

report() {
	python3 - "$RES" "$ROUNDS" "$SECS" "$VB_TMP/status" <<'EOF'
import json, statistics, sys
res, rounds, secs, status_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
R = {}  # label -> round -> result
for line in open(res):
    o = json.loads(line)
    R.setdefault(o["label"], {})[o["round"]] = o["r"]

def f(v, fmt):
    return "n/a" if v is None else fmt % v

def vals(label, key):
    return [r[key] for r in R.get(label, {}).values() if r.get(key) is not None]

def med(label, key):
    v = vals(label, key)
    return statistics.median(v) if v else None

def spread(label, key, fmt):
    v = vals(label, key)
    if not v:
        return "n/a"
    return (fmt % statistics.median(v)) + (" (%s..%s)" % (fmt % min(v), fmt % max(v))
                                           if len(v) > 1 else "")

def frames(label):
    """Frames per request each way (B->A / A->B), warm-up included."""
    rs = [r for r in R.get(label, {}).values() if "frames_b_to_a" in r]
    if not rs:
        return ""
    n = lambda r: r["requests"] + 200
    return "%.1f / %.1f" % (statistics.median(r["frames_b_to_a"] / n(r) for r in rs),
                            statistics.median(r["frames_a_to_b"] / n(r) for r in rs))

def cpu(r, who):
    return r["cpu_%s_user_s" % who] + r["cpu_%s_sys_s" % who]

def cores(label):
    rs = [r for r in R.get(label, {}).values() if "cpu_exporter_user_s" in r]
    if not rs:
        return ""
    e = statistics.median(cpu(r, "exporter") / r["seconds"] for r in rs)
    i = statistics.median(cpu(r, "importer") / r["seconds"] for r in rs)
    return "%.2f + %.2f" % (e, i)

print()
print("medians of %d rounds of %s s (min..max)" % (rounds, secs))
print("%-24s %22s %8s %26s %26s %12s %13s" % (
    "path:workload", "MiB/s", "IOPS", "p50 us", "p99 us", "CPU exp+imp", "frames/req"))
for label in R:
    print("%-24s %22s %8s %26s %26s %12s %13s" % (
        label, spread(label, "mib_s", "%.1f"), f(med(label, "iops"), "%.0f"),
        spread(label, "p50_us", "%.1f"), spread(label, "p99_us", "%.1f"), cores(label),
        frames(label)))
print("(CPU: cores used by the exporter + the importer; frames/req: veth frames B->A / A->B)")

print()
print("CPU per request, us (user + sys; median; the warm-up's 200 requests counted in)")
print("%-24s %18s %18s %10s %8s" % ("path:workload", "exporter", "importer", "qsd",
                                       "total"))
for label in R:
    rs = [r for r in R[label].values() if "cpu_exporter_user_s" in r]
    if not rs:
        continue
    per = lambda r, k: r[k] * 1e6 / (r["requests"] + 200)
    m = lambda k: statistics.median(per(r, k) for r in rs)
    tot = statistics.median(sum(per(r, "cpu_%s_%s_s" % (w, k)) for w in
                                ("exporter", "importer", "qsd") for k in ("user", "sys"))
                            for r in rs)
    print("%-24s %18s %18s %10.0f %8.0f" % (
        label, "%.0f + %.0f" % (m("cpu_exporter_user_s"), m("cpu_exporter_sys_s")),
        "%.0f + %.0f" % (m("cpu_importer_user_s"), m("cpu_importer_sys_s")),
        m("cpu_qsd_user_s") + m("cpu_qsd_sys_s"), tot))

def ratio(num, nkey, den, dkey):
    """Median over rounds of num/den, both from the same round; and the range."""
    rs = []
    for rnd, a in R.get(num, {}).items():
        b = R.get(den, {}).get(rnd)
        if b and a.get(nkey) is not None and b.get(dkey):
            rs.append(a[nkey] / b[dkey])
    if not rs:
        return "n/a"
    s = "%.2f" % statistics.median(rs)
    return s + (" (%.2f..%.2f)" % (min(rs), max(rs)) if len(rs) > 1 else "")

rows = [
    ("tsn/tcp throughput 64k randread QD32", "tsn:64k-randread-qd32", "mib_s",
     "tcp:64k-randread-qd32", "mib_s"),
    ("tsn/tcp throughput 64k randwrite QD32", "tsn:64k-randwrite-qd32", "mib_s",
     "tcp:64k-randwrite-qd32", "mib_s"),
    ("tsn/tcp p50 4k randread QD1", "tsn:4k-randread-qd1", "p50_us", "tcp:4k-randread-qd1",
     "p50_us"),
    ("tsn/tcp p99 4k randread QD1", "tsn:4k-randread-qd1", "p99_us", "tcp:4k-randread-qd1",
     "p99_us"),
    ("tsn 64k randread / pkt stream", "tsn:64k-randread-qd32", "mib_s", "pkt:stream", "mib_s"),
    ("tsn 64k randwrite / pkt stream", "tsn:64k-randwrite-qd32", "mib_s", "pkt:stream",
     "mib_s"),
    ("tsn 4k p50 / pkt 64/4k RTT p50", "tsn:4k-randread-qd1", "p50_us", "pkt:pingpong-64-4k",
     "p50_us"),
    ("tsn 4k p99 / pkt 64/4k RTT p99", "tsn:4k-randread-qd1", "p99_us", "pkt:pingpong-64-4k",
     "p99_us"),
    ("tsn 4k p50 / pkt 1-frame RTT p50", "tsn:4k-randread-qd1", "p50_us", "pkt:pingpong-64",
     "p50_us"),
    ("tcp 64k randread / raw TCP stream", "tcp:64k-randread-qd32", "mib_s", "raw:stream",
     "mib_s"),
    ("tcp 64k randwrite / raw TCP stream", "tcp:64k-randwrite-qd32", "mib_s", "raw:stream",
     "mib_s"),
    ("tcp 4k p50 / raw TCP 64/4k p50", "tcp:4k-randread-qd1", "p50_us", "raw:pingpong",
     "p50_us"),
    ("pkt stream / raw TCP stream", "pkt:stream", "mib_s", "raw:stream", "mib_s"),
    ("pkt 64/4k p50 / raw TCP 64/4k p50", "pkt:pingpong-64-4k", "p50_us", "raw:pingpong",
     "p50_us"),
]
print()
print("ratios: median of the per-round ratios (min..max)")
for name, n, nk, d, dk in rows:
    print("  %-38s %s" % (name, ratio(n, nk, d, dk)))

print()
print("tsn:// counters per workload, summed over the rounds (exporter / importer)")
keys = ("segments_sent", "retransmits_fast", "retransmits_timeout", "timeouts", "duplicates",
        "out_of_window")

def counters(rnd, label, when, side):
    try:
        s = json.load(open("%s/%s-%s-%s-%s.json" % (status_dir, rnd, label, when, side)))
        return s["links"][0].get("transport_counters", {}) if s["links"] else {}
    except (OSError, ValueError, KeyError, IndexError):
        return {}

for label in R:
    if not label.startswith("tsn:"):
        continue
    tot = {}
    srtt = []
    for rnd in R[label]:
        for side in ("exporter", "importer"):
            a, b = counters(rnd, label, "pre", side), counters(rnd, label, "post", side)
            for k in keys:
                if k in a and k in b:
                    tot[(side, k)] = tot.get((side, k), 0) + b[k] - a[k]
            if side == "importer" and "srtt_us" in b:
                srtt.append(str(b["srtt_us"]))
    print("  %-22s %s; importer srtt after: %s us" % (
        label, ", ".join("%s %s/%s" % (k, tot.get(("exporter", k), "?"),
                                       tot.get(("importer", k), "?")) for k in keys),
        "/".join(srtt) or "?"))
for label in ("pkt:stream", "pkt:pingpong-64", "pkt:pingpong-64-4k"):
    lost = [r.get("lost", 0) for r in R.get(label, {}).values()]
    sent = [r.get("requests", 0) + r.get("lost", 0) for r in R.get(label, {}).values()]
    if lost:
        print("  %-22s lost %s of %s" % (label, "/".join(map(str, lost)),
                                        "/".join(map(str, sent))))
EOF
}

main() {
	local round i k parts=(tsn tcp pkt raw) order img
	declare -gA EXP IMP QSD NS
	vb_need_root
	vb_need_cmd qemu-storage-daemon ip python3 timeout
	[[ -z ${BENCH_PERF:-} ]] || vb_need_cmd perf
	for f in "$VBLK" "$TCPB" "$PKTB" "$VBCTL" "$VBRIDGED"; do
		[[ -x $f ]] || vb_fail "no $f: build first (cmake --build $VB_BUILD)"
	done
	: >"$RES"
	LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
	START=$(date -u '+%F %H:%M UTC')
	# The tree at the start (the binaries are whatever VB_BUILD holds).
	REV="source at commit $(git -C "$VB_SRC" log -1 --format=%h 2>/dev/null)"
	REV+=$(git -C "$VB_SRC" status --porcelain 2>/dev/null |
		awk '{ f = f " " $2 } END { if (f != "") print ", changed or untracked:" f }')
	VB_L2_ONLY=1
	vb_ecus || vb_fail "cannot set up the ECU namespaces"
	NS=([tsn-a]=$VB_NS_A [tsn-b]=$VB_NS_B [tcp-a]=$VB_NS_A [tcp-b]=$VB_NS_B)
	mkdir -p "$VB_TMP/status"
	for img in "$IMG_TSN" "$IMG_TCP"; do
		rm -f "$img"
		truncate -s 256M "$img" || vb_fail "cannot create $img"
	done
	start_pair tsn "tsn://$VB_IF_A" "tsn://$VB_IF_B/$VB_MAC_A" "$IMG_TSN" ||
		vb_fail "the tsn:// pair did not come up"
	add_link_local || vb_fail "cannot add link-local addresses"
	start_pair tcp "tcp://$IP_A:$PORT_VB" "tcp://$IP_A:$PORT_VB" "$IMG_TCP" --allow-plaintext ||
		vb_fail "the tcp:// pair did not come up"
	start_servers
	for ((round = 1; round <= ROUNDS; round++)); do
		order=()
		for ((i = 0; i < ${#parts[@]}; i++)); do
			order+=("${parts[(i + round - 1) % ${#parts[@]}]}")
		done
		vb_log "round $round of $ROUNDS: ${order[*]}"
		for k in "${order[@]}"; do
			"part_$k" "$round" || ERRS+=("round $round: $k failed")
		done
	done
	for k in tsn tcp; do
		vb_alive "${EXP[$k]}" && vb_alive "${IMP[$k]}" || ERRS+=("a $k daemon died")
	done
	report
	if [[ -n ${BENCH_PERF:-} ]]; then
		echo
		for k in tsn tcp; do
			profile "$k" || ERRS+=("perf $k failed")
		done
	fi
	echo
	echo "run of $START, $REV"
	echo "load average (1, 5, 15 min) at the start: $LOAD0; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	if [[ ${#ERRS[@]} -gt 0 ]]; then
		printf 'incomplete: %s\n' "${ERRS[@]}"
		return 1
	fi
}

main "$@"
