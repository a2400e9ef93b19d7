#!/bin/bash
# gPTP time with real linuxptp between the two ECUs of a veth pair without IP
# addresses: ptp4l as grandmaster in ECU A and as a free-running slave in
# ECU B (tests/e2e/lib.sh vb_ptp4l), a vbridged on each asking its ptp4l.
#   1. Both daemons say synchronized, with A's clock identity as the
#      grandmaster (A: this node; B: port SLAVE).
#   2. Presentation time over tsn://: disk0 is imported with latency=5ms.
#      Every request reaches the device, and every completion the driver, at
#      its deadline or after, never before: checked line by line in both
#      daemons' --time-trace, against the stats, and independently from the
#      driver's side (a QD1 round trip holds two 5 ms budgets, so it cannot
#      take less than 10 ms). ECU A releases on its timer alone, ECU B wakes
#      200 us early and spins to the deadline (--release-spin).
#   3. disk1 is imported with latency=1us, less than any one-way trip: its
#      buffers are late, counted as late on both sides, and none is lost
#      (the driver verifies every block; completions equal requests).
#   4. ptp4l of B killed: B says no-ptp4l within seconds; started again, it
#      is synchronized again. ptp4l of A killed: B says unsynchronized (its
#      port leaves SLAVE) and holds disk0 (on-unsync=hold) within seconds;
#      A started again: both synchronized, B no longer holding.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

VBRIDGED=$VB_BUILD/vbridged
VBCTL=$VB_BUILD/tools/vbridgectl
BENCH=$VB_BUILD/tools/vblk-bench

# status SIDE: the status JSON of the daemon of ECU SIDE (a or b).
status() {
	local ns=$VB_NS_A
	[[ $1 == b ]] && ns=$VB_NS_B
	ip netns exec "$ns" "$VBCTL" -s "$VB_TMP/$1/vbridged.sock" "${2:-status}" --json
}

# field SIDE PYEXPR [CMD]: a value of the status (or CMD's) JSON, as Python sees it (j).
field() {
	status "$1" "${3:-status}" | python3 -c "import json,sys; j=json.load(sys.stdin); print($2)"
}

# wait_time SIDE STATE TIMEOUT: until SIDE's time state is STATE; prints the seconds taken.
wait_time() {
	local t0 now
	t0=$(vb_now)
	while :; do
		[[ $(field "$1" 'j["time"]["state"]' 2>/dev/null) == "$2" ]] && break
		now=$(vb_now)
		if awk -v a="$t0" -v b="$now" -v t="$3" 'BEGIN { exit !(b - a > t) }'; then
			vb_fail "ECU ${1^^}: time not $2 after $3 s: $(status "$1" | python3 -c \
				'import json,sys; print(json.load(sys.stdin)["time"])')"
		fi
		sleep 0.2
	done
	vb_elapsed "$t0"
}

bench() {
	local disk=$1
	shift
	ip netns exec "$VB_NS_B" timeout -k 5 120 "$BENCH" --socket "$VB_TMP/b/$disk.sock" "$@"
}

# check_trace FILE SIDE NAME: every line of NAME in FILE is a buffer with a
# deadline; none was released before it. Prints "lines held late dropped min_err_ns".
check_trace() {
	python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, side, name = sys.argv[1:]
n = held = late = dropped = 0
min_err = None
for line in open(path):
    f = line.strip().split(",")
    if len(f) != 8 or f[0] != side or f[1] != name:
        continue
    n += 1
    stamp, deadline, release = int(f[4]), int(f[5]), int(f[6])
    verdict = f[7]
    if deadline == 0 or stamp == 0:
        sys.exit(f"{path}: a buffer without time stamps: {line.strip()}")
    if verdict == "held":
        held += 1
        if release < deadline:
            sys.exit(f"{path}: released {deadline - release} ns BEFORE its deadline: {line.strip()}")
    elif verdict in ("late", "now"):
        late += verdict == "late"
        if release < deadline:
            sys.exit(f"{path}: '{verdict}' before its deadline: {line.strip()}")
    elif verdict == "dropped":
        dropped += 1
    else:
        sys.exit(f"{path}: verdict {verdict!r}: {line.strip()}")
    err = release - deadline
    min_err = err if min_err is None else min(min_err, err)
print(n, held, late, dropped, min_err if min_err is not None else 0)
EOF
}

# traced SIDE TRACE-SIDE STATS-LIST COUNTER WHAT: ECU SIDE's trace of disk0
# holds one line per COUNTER of its stats, some held, none dropped, none early.
traced() {
	local reqs n held late dropped minerr
	reqs=$(field "$1" "[e for e in j[\"$3\"] if e[\"name\"]==\"disk0\"][0][\"queues\"][0][\"$4\"]" stats)
	read -r n held late dropped minerr < <(check_trace "$VB_TMP/trace-$1.csv" "$2" disk0) ||
		vb_fail "ECU ${1^^} trace"
	[[ $n -eq $reqs && $dropped -eq 0 && $held -gt 0 ]] ||
		vb_fail "ECU ${1^^} disk0: $n traced ($held held, $late late, $dropped dropped), $reqs $4"
	echo "ok ECU ${1^^}, $5: $n of $reqs traced, $held held, $late late, none early (min release-deadline $minerr ns)"
}

main() {
	local a_pid b_pid gm t out n held late dropped minerr qd1 reqs
	vb_need_root
	vb_need_cmd ptp4l pmc qemu-storage-daemon python3 ip
	[[ -x $VBRIDGED && -x $VBCTL && -x $BENCH ]] || vb_fail "build first ($VB_BUILD)"
	VB_L2_ONLY=1
	vb_ecus || vb_fail "cannot create the two ECU namespaces"
	gm=$(vb_ptp_clock_id "$VB_MAC_A")

	vb_ptp4l "$VB_NS_A" "$VB_IF_A" master a || vb_fail "ptp4l master did not start"
	vb_ptp4l "$VB_NS_B" "$VB_IF_B" slave b || vb_fail "ptp4l slave did not start"

	for i in 0 1; do
		vb_blk_image "$VB_TMP/disk$i.img" 16 "disk$i" || vb_fail "image $i"
		vb_qsd "$VB_NS_A" "$VB_TMP/disk$i.img" "$VB_TMP/qsd$i.sock" || vb_fail "qsd $i"
	done
	vb_log_add "$VB_TMP/a.log"
	vb_run_in "$VB_NS_A" "$VBRIDGED" -d --node ecu-a --ptp4l "$(vb_ptp_sock a)" \
		--listen "tsn://$VB_IF_A" --time-trace "$VB_TMP/trace-a.csv" \
		--export "disk0=vhost-user:$VB_TMP/qsd0.sock,type=blk,class=audio" \
		--export "disk1=vhost-user:$VB_TMP/qsd1.sock,type=blk" \
		--runtime-dir "$VB_TMP/a" >"$VB_TMP/a.log" 2>&1
	a_pid=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/a/vbridged.sock" 10 "$a_pid" || vb_fail "ECU A did not start"
	vb_log_add "$VB_TMP/b.log"
	vb_run_in "$VB_NS_B" "$VBRIDGED" -d --node ecu-b --ptp4l "$(vb_ptp_sock b)" \
		--time-trace "$VB_TMP/trace-b.csv" --release-spin 200us \
		--import "disk0=tsn://$VB_IF_B/$VB_MAC_A,class=audio,latency=5ms,on-unsync=hold" \
		--import "disk1=tsn://$VB_IF_B/$VB_MAC_A,latency=1us" \
		--runtime-dir "$VB_TMP/b" >"$VB_TMP/b.log" 2>&1
	b_pid=$VB_LAST_PID
	for i in 0 1; do
		vb_wait_for_socket "$VB_TMP/b/disk$i.sock" 15 "$b_pid" || vb_fail "no disk$i.sock"
	done

	# 1. Agreement.
	vb_ptp_wait_slave b 40
	t=$(wait_time a synchronized 10)
	[[ $(field a 'j["time"]["grandmaster"]') == True ]] || vb_fail "ECU A is not the grandmaster"
	[[ $(field a 'j["time"]["gm_identity"]') == "$gm" ]] || vb_fail "ECU A: wrong grandmaster"
	t=$(wait_time b synchronized 20)
	out=$(field b 'j["time"]["gm_identity"], j["time"]["port_state"], j["time"]["master_offset_ns"]')
	[[ $out == "$gm SLAVE "* ]] || vb_fail "ECU B: $out, want grandmaster $gm, port SLAVE"
	echo "ok synchronized: A is grandmaster $gm; B is its slave ($out ns offset, ${t} s after its port)"
	grep -q "time: synchronized to grandmaster $gm" "$VB_TMP/b.log" ||
		vb_fail "ECU B did not log the change"
	out=$(ip netns exec "$VB_NS_B" "$VBCTL" -s "$VB_TMP/b/vbridged.sock" status) ||
		vb_fail "vbridgectl status failed"
	grep -q "^time: synchronized (slave of grandmaster $gm" <<<"$out" &&
		grep -q "port SLAVE, grandmaster $gm, master offset" <<<"$out" ||
		vb_fail "vbridgectl status says: $(head -n 4 <<<"$out")"
	echo "ok vbridgectl status: $(grep -m1 '^time:' <<<"$out")"

	# 2. latency=5ms: at the deadline, never before.
	bench disk0 --verify --requests 256 --size 4k --depth 4 --seed 1 >"$VB_TMP/v0.log" 2>&1 ||
		vb_fail "disk0 verify: $(tail -n 3 "$VB_TMP/v0.log")"
	out=$(bench disk0 --rw randread --depth 1 --requests 100 --warmup 5 --json 2>"$VB_TMP/qd1.err") ||
		vb_fail "disk0 QD1: $(tail -n 3 "$VB_TMP/qd1.err")"
	qd1=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["min_us"])' "$out")
	awk -v q="$qd1" 'BEGIN { exit !(q >= 10000) }' ||
		vb_fail "disk0 QD1 round trip ${qd1} us: under two 5 ms budgets, something was released early"
	echo "ok disk0 latency=5ms: shortest QD1 round trip seen by the driver $qd1 us (two budgets: >= 10000)"
	traced a export exports requests "requests to the device"
	traced b import imports completions "completions to the driver"
	reqs=$(field b '[e for e in j["imports"] if e["name"]=="disk0"][0]["queues"][0]["completions"]' stats)
	out=$(field b '[e for e in j["imports"] if e["name"]=="disk0"][0]["queues"][0]["completions_timing"]["delivery_error"]["min_ns"]' stats)
	[[ $out -ge 0 ]] || vb_fail "ECU B stats: delivery error min $out ns"
	ip netns exec "$VB_NS_B" "$VBCTL" -s "$VB_TMP/b/vbridged.sock" stats >"$VB_TMP/stats-b.txt" ||
		vb_fail "vbridgectl stats failed"
	grep -q "queue 0: latency budget 5.000 ms, late deliver" "$VB_TMP/stats-b.txt" &&
		grep -q "release-deadline  *n $reqs, min" "$VB_TMP/stats-b.txt" &&
		grep -q "time: synchronized" "$VB_TMP/stats-b.txt" ||
		vb_fail "vbridgectl stats says: $(cat "$VB_TMP/stats-b.txt")"
	echo "ok vbridgectl stats: $(grep -m1 'release-deadline' "$VB_TMP/stats-b.txt" | sed 's/^ *//')"

	# 3. latency=1us: late, counted, not lost.
	bench disk1 --verify --requests 256 --size 4k --depth 4 --seed 2 >"$VB_TMP/v1.log" 2>&1 ||
		vb_fail "disk1 verify: $(tail -n 3 "$VB_TMP/v1.log")"
	out=$(field a '[(q["requests"], q["completions"], q["requests_timing"]["late"], q["requests_timing"]["dropped"]) for e in j["exports"] if e["name"]=="disk1" for q in e["queues"]][0]' stats)
	read -r reqs n late dropped < <(tr -d '(),' <<<"$out")
	[[ $reqs -gt 0 && $reqs -eq $n && $late -gt 0 && $dropped -eq 0 ]] ||
		vb_fail "ECU A disk1: requests/completions/late/dropped $out"
	out=$(field b '[(q["requests"], q["completions"], q["completions_timing"]["late"], q["completions_timing"]["dropped"]) for e in j["imports"] if e["name"]=="disk1" for q in e["queues"]][0]' stats)
	read -r reqs n late2 dropped < <(tr -d '(),' <<<"$out")
	[[ $reqs -gt 0 && $reqs -eq $n && $late2 -gt 0 && $dropped -eq 0 ]] ||
		vb_fail "ECU B disk1: requests/completions/late/dropped $out"
	echo "ok disk1 latency=1us: $late requests and $late2 completions late, counted; all $reqs completed, data verified"

	# 4. Losing and regaining time.
	kill -KILL "$VB_PTP_PID_b"; wait "$VB_PTP_PID_b" 2>/dev/null
	t=$(wait_time b no-ptp4l 5)
	echo "ok ptp4l of ECU B killed: B says no-ptp4l after $t s ($(field b 'j["time"]["reason"]'))"
	vb_ptp4l "$VB_NS_B" "$VB_IF_B" slave b || vb_fail "ptp4l slave did not restart"
	t=$(wait_time b synchronized 30)
	echo "ok ptp4l of ECU B restarted: B synchronized again after $t s"
	kill -KILL "$VB_PTP_PID_a"; wait "$VB_PTP_PID_a" 2>/dev/null
	t=$(wait_time b unsynchronized 5)
	echo "ok ptp4l of ECU A (grandmaster) killed: B says unsynchronized after $t s ($(field b 'j["time"]["reason"]'))"
	wait_time a no-ptp4l 5 >/dev/null
	[[ $(field b '[i["holding"] for i in j["imports"] if i["name"]=="disk0"][0]') == True ]] ||
		vb_fail "ECU B does not hold disk0 while unsynchronized (on-unsync=hold)"
	grep -q "import disk0: clock not synchronized: holding" "$VB_TMP/b.log" ||
		vb_fail "ECU B did not log that it holds disk0"
	echo "ok disk0 (on-unsync=hold) held by ECU B"
	vb_ptp4l "$VB_NS_A" "$VB_IF_A" master a || vb_fail "ptp4l master did not restart"
	t=$(wait_time b synchronized 30)
	wait_time a synchronized 5 >/dev/null
	[[ $(field b '[i["holding"] for i in j["imports"] if i["name"]=="disk0"][0]') == False ]] ||
		vb_fail "ECU B still holds disk0"
	bench disk0 --verify --requests 64 --size 4k --depth 4 --seed 3 >"$VB_TMP/v2.log" 2>&1 ||
		vb_fail "disk0 verify after recovery: $(tail -n 3 "$VB_TMP/v2.log")"
	echo "ok grandmaster back: both synchronized ($t s), disk0 flows and verifies again"

	vb_stop_clean "$b_pid" "ECU B daemon"
	vb_stop_clean "$a_pid" "ECU A daemon"
	echo "PASS: test_time"
}

main "$@"
