#!/bin/bash
# Slow and silent peers on a plain tcp:// link (adversarial case 38), with a
# real exporting vbridged on loopback, qemu-storage-daemon as its backend and
# an honest importer with vblk-bench as the VMM:
#  * a scripted client that trickles a valid HELLO one byte per second is
#    dropped about 10 s after it connected (bridge/link.c LINK_HELLO_NS),
#    with a log line saying why;
#  * a scripted client that sends its HELLO and then nothing (it never
#    answers PING) is dropped about 20 s later (LINK_SILENT_NS; the check
#    runs on the 5 s ping tick, so 20 to 25 s);
#  * meanwhile the honest importer attaches, reads and writes verified data,
#    and its link is never dropped.
# Both clients run at the same time, so the test takes about 25 s.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

VBRIDGED=$VB_BUILD/vbridged
VBCTL=$VB_BUILD/tools/vbridgectl
BENCH=$VB_BUILD/tools/vblk-bench

# peer MODE PORT: connect, then "trickle" (HELLO one byte a second) or
# "silent" (HELLO at once, then read and never answer). Prints
# "closed after S s, sent N of M HELLO bytes" once the exporter closes.
peer() {
	python3 - "$1" "$2" <<'PY'
import select, socket, struct, sys, time
mode, port = sys.argv[1], int(sys.argv[2])
name = b"slowpoke"
body = struct.pack("<BBHIQ", 1, 1, len(name), 0, 42) + name
hello = struct.pack("<IBBHI", 12 + len(body), 1, 1, 0, 0) + body
s = socket.create_connection(("127.0.0.1", port), timeout=5)
t0 = time.monotonic()
print("connected", flush=True)
sent = 0
if mode == "silent":
    s.sendall(hello)
    sent = len(hello)
    t0 = time.monotonic()  # silence starts now
try:
    while time.monotonic() - t0 < 60:
        if mode == "trickle" and sent < len(hello):
            s.send(hello[sent:sent + 1])
            sent += 1
        r, _, _ = select.select([s], [], [], 1.0)
        if r and not s.recv(4096):
            break
except OSError:  # reset by the exporter
    pass
print("closed after %.1f s, sent %d of %d HELLO bytes" % (time.monotonic() - t0, sent, len(hello)),
      flush=True)
PY
}

status_imp() { "$VBCTL" -s "$VB_TMP/imp/vbridged.sock" status --json; }

# check_status EXPR MESSAGE (EXPR sees the importer's status as `s`)
check_status() {
	status_imp | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" ||
		vb_fail "$2: $(status_imp)"
}

verify_disk() {
	"$BENCH" --socket "$VB_TMP/imp/disk0.sock" --verify --requests 256 --size 16k --depth 8 \
		--seed "$1" >"$VB_TMP/bench-$1.log" 2>&1 ||
		vb_fail "verify through the bridge ($1): $(cat "$VB_TMP/bench-$1.log")"
	grep -q 'read back intact' "$VB_TMP/bench-$1.log" || vb_fail "verify ($1) printed no result"
}

# peer_done NAME LOG PID LO HI WHY: the peer was closed after LO..HI s and the
# exporter logged that it closed a link because of WHY.
peer_done() {
	local name=$1 log=$2 pid=$3 lo=$4 hi=$5 why=$6 t
	vb_wait "$pid" || vb_fail "$name: the scripted peer failed: $(cat "$log")"
	t=$(sed -n 's/^closed after \([0-9.]*\) s.*/\1/p' "$log")
	[[ -n $t ]] || vb_fail "$name: the peer saw no close: $(cat "$log")"
	awk -v t="$t" -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(t >= lo && t <= hi) }' ||
		vb_fail "$name: dropped after $t s, want $lo..$hi s"
	grep -q "state change [a-z]* -> closed, reason: $why" "$VB_TMP/exp.log" ||
		vb_fail "$name: no log line saying the link closed because of '$why'"
	echo "ok $name: $(tail -n1 "$log"); exporter:" \
		"$(grep "dropping link" "$VB_TMP/exp.log" | grep "$why" | head -n1 | sed 's/^\[[^]]*\] //')"
}

main() {
	local port slow_pid silent_pid i
	[[ -x $VBRIDGED && -x $BENCH && -x $VBCTL ]] || vb_fail "build first ($VB_BUILD)"
	vb_need_cmd qemu-storage-daemon python3
	truncate -s 64M "$VB_TMP/disk0.img"
	vb_qsd - "$VB_TMP/disk0.img" "$VB_TMP/qsd.sock" || vb_fail "qsd did not start"
	vb_log_add "$VB_TMP/exp.log"
	vb_run_in - "$VBRIDGED" -d --node ecu-a --listen tcp://127.0.0.1:0 \
		--export "disk0=vhost-user:$VB_TMP/qsd.sock,type=blk" --runtime-dir "$VB_TMP/exp" \
		>"$VB_TMP/exp.log" 2>&1
	EXP_PID=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/exp/vbridged.sock" 10 "$EXP_PID" || vb_fail "exporter did not start"
	port=$(sed -n 's/.*listening on tcp:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$VB_TMP/exp.log")
	[[ -n $port ]] || vb_fail "exporter did not say where it listens"

	vb_log_add "$VB_TMP/slow.log"
	vb_run_in - peer trickle "$port" >"$VB_TMP/slow.log" 2>&1
	slow_pid=$VB_LAST_PID
	vb_log_add "$VB_TMP/silent.log"
	vb_run_in - peer silent "$port" >"$VB_TMP/silent.log" 2>&1
	silent_pid=$VB_LAST_PID
	for ((i = 0; i < 50; i++)); do
		grep -q connected "$VB_TMP/slow.log" && grep -q connected "$VB_TMP/silent.log" && break
		sleep 0.1
	done
	[[ $(cat "$VB_TMP/slow.log" "$VB_TMP/silent.log" | grep -c connected) -eq 2 ]] ||
		vb_fail "the scripted peers did not connect"

	# The honest importer attaches and moves data while both peers hang on.
	vb_log_add "$VB_TMP/imp.log"
	vb_run_in - "$VBRIDGED" -d --node ecu-b --import "disk0=tcp://127.0.0.1:$port" \
		--runtime-dir "$VB_TMP/imp" >"$VB_TMP/imp.log" 2>&1
	IMP_PID=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/imp/disk0.sock" 10 "$IMP_PID" || vb_fail "disk0.sock not created"
	verify_disk 1
	if ! vb_alive "$slow_pid" || ! vb_alive "$silent_pid"; then
		vb_fail "a scripted peer was dropped before the honest importer was done"
	fi
	echo "ok honest importer: data verified while a slow and a silent peer hold links"

	peer_done "HELLO at 1 byte/s" "$VB_TMP/slow.log" "$slow_pid" 9 15 "no HELLO within 10 s"
	peer_done "silent after HELLO" "$VB_TMP/silent.log" "$silent_pid" 19 27 \
		"peer silent for [0-9]* s"
	vb_alive "$EXP_PID" || vb_fail "the exporter died"
	check_status "s['links'][0]['state']=='up' and s['links'][0]['drops']==0 and \
any(i['name']=='disk0' and i['state']=='attached' for i in s['imports'])" "honest link affected"
	verify_disk 2
	echo "ok honest importer: link never dropped, data verified again"
	vb_stop_clean "$IMP_PID" importer
	vb_stop_clean "$EXP_PID" exporter
	echo "PASS: test_slow_peer"
}

main "$@"
