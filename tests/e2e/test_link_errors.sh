#!/bin/bash
# Bad input gets a clear error and loses nothing, with real daemons in two
# namespaces and vblk-bench (our userspace virtio-blk driver) as the VMM:
#  * an import of an export that does not exist, or of one whose allow= list
#    does not name the importer, gets a clear refusal, while another import
#    over the same link works;
#  * a hostile node sending malformed frames to the exporter loses its link
#    with a log line saying why; the exporter's fd count returns to where it
#    was and the honest importer's link and device carry on;
#  * the device backend dying closes only that device session; the importer
#    re-attaches once the backend is back, and data verifies again.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

VBRIDGED=$VB_BUILD/vbridged
VBCTL=$VB_BUILD/tools/vbridgectl
BENCH=$VB_BUILD/tools/vblk-bench
PORT=7800
CLOSED='state change [a-z]* -> closed, reason:'

status_b() { ip netns exec "$VB_NS_B" "$VBCTL" -s "$VB_TMP/b/vbridged.sock" status --json; }
fdcount() { ls "/proc/$1/fd" | wc -l; }

# jq-like check with python: check_status EXPR MESSAGE (EXPR sees `s`)
check_status() {
	status_b | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" ||
		vb_fail "$2: $(status_b)"
}

# wait_status EXPR TIMEOUT MESSAGE
wait_status() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		status_b | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" &&
			return 0
		sleep 0.1
	done
	vb_fail "$3: $(status_b)"
}

verify_disk() {
	ip netns exec "$VB_NS_B" "$BENCH" --socket "$VB_TMP/b/disk0.sock" --verify \
		--requests 256 --size 16k --depth 8 --seed "$1" >"$VB_TMP/bench-$1.log" 2>&1 ||
		vb_fail "verify through the bridge ($1): $(cat "$VB_TMP/bench-$1.log")"
	grep -q 'read back intact' "$VB_TMP/bench-$1.log" || vb_fail "verify ($1) printed no result"
}

# hostile NAME PYTHON-BYTES-EXPR: connect from ECU B, send, expect the exporter
# to drop the link with a log line matching WHY.
hostile() {
	local name=$1 payload=$2 why=$3 before
	before=$(grep -c "$CLOSED" "$VB_TMP/a.log")
	ip netns exec "$VB_NS_B" python3 - "$VB_IP_A" "$PORT" "$payload" >"$VB_TMP/hostile.out" <<'PY' ||
import socket, struct, sys, time
host, port, expr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def msg(t, chan, body, version=1, flags=0, length=None):
    n = 12 + len(body) if length is None else length
    return struct.pack("<IBBHI", n, version, t, flags, chan) + body
def hello(name=b"evil"):
    return msg(1, 0, struct.pack("<BBHIQ", 1, 1, len(name), 0, 42) + name)
s = socket.create_connection((host, port), timeout=5)
s.sendall(eval(expr))
s.settimeout(5)
got = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
except (ConnectionResetError, socket.timeout):
    pass
sys.stdout.write(repr(got))
PY
		vb_fail "$name: the hostile client failed"
	for ((i = 0; i < 50; i++)); do
		[[ $(grep -c "$CLOSED" "$VB_TMP/a.log") -gt $before ]] && break
		sleep 0.1
	done
	grep "$CLOSED" "$VB_TMP/a.log" | tail -n1 | grep -q "$why" ||
		vb_fail "$name: no log line saying the link closed because of '$why'"
	vb_alive "$EXP_PID" || vb_fail "$name: the exporter died"
	echo "ok $name: $(grep "$CLOSED" "$VB_TMP/a.log" | tail -n1 | sed 's/^\[[^]]*\] //')"
}

main() {
	local fd0 fd1
	vb_need_root
	vb_need_cmd qemu-storage-daemon ip python3
	[[ -x $VBRIDGED && -x $BENCH ]] || vb_fail "build first ($VB_BUILD)"
	vb_ecus || vb_fail "cannot create the two ECU namespaces"
	truncate -s 64M "$VB_TMP/disk0.img"
	vb_qsd "$VB_NS_A" "$VB_TMP/disk0.img" "$VB_TMP/qsd.sock" || vb_fail "qsd did not start"
	QSD_PID=$VB_LAST_PID
	vb_log_add "$VB_TMP/a.log"
	vb_run_in "$VB_NS_A" $(vb_wrap a) "$VBRIDGED" -d --allow-plaintext --node ecu-a --listen "tcp://$VB_IP_A:$PORT" \
		--export "disk0=vhost-user:$VB_TMP/qsd.sock,type=blk,allow=ecu-b:ecu-c" \
		--export "secret=vhost-user:$VB_TMP/qsd.sock,type=blk,allow=ecu-z" --runtime-dir "$VB_TMP/a" \
		>"$VB_TMP/a.log" 2>&1
	EXP_PID=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/a/vbridged.sock" 10 "$EXP_PID" || vb_fail "exporter did not start"
	vb_log_add "$VB_TMP/b.log"
	vb_run_in "$VB_NS_B" $(vb_wrap b) "$VBRIDGED" -d --allow-plaintext --node ecu-b --runtime-dir "$VB_TMP/b" \
		--import "nosuch=tcp://$VB_IP_A:$PORT" --import "disk0=tcp://$VB_IP_A:$PORT" \
		--import "secret=tcp://$VB_IP_A:$PORT" \
		>"$VB_TMP/b.log" 2>&1
	IMP_PID=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/b/disk0.sock" 10 "$IMP_PID" || vb_fail "disk0.sock not created"

	# 1. unknown export: refused with a reason, no socket, the other import works
	wait_status "any(i['name']=='nosuch' and i['state']=='refused' and 'no export named nosuch' in i['last_error'] for i in s['imports'])" \
		5 "unknown export not refused clearly"
	[[ -e $VB_TMP/b/nosuch.sock ]] && vb_fail "a socket was created for an export that does not exist"
	grep -q 'import nosuch: .* refused: NOENT: no export named nosuch on node ecu-a' "$VB_TMP/b.log" ||
		vb_fail "importer log does not say why nosuch was refused"
	check_status "len(s['links'])==1 and s['links'][0]['state']=='up'" "both imports share one link"
	verify_disk 1
	echo "ok unknown export: $(grep 'refused: NOENT' "$VB_TMP/b.log" | head -n1 | sed 's/^\[[^]]*\] //')"

	# 1b. an export whose allow= list does not name us: refused, and why
	wait_status "any(i['name']=='secret' and i['state']=='refused' and 'node ecu-b may not attach export secret' in i['last_error'] for i in s['imports'])" \
		5 "allow= not enforced"
	[[ -e $VB_TMP/b/secret.sock ]] && vb_fail "a socket was created for a refused export"
	grep -q 'export secret: node ecu-b is not on its allow list; refused' "$VB_TMP/a.log" ||
		vb_fail "exporter log does not say why secret was refused"
	echo "ok allow list: $(grep 'refused: DENIED' "$VB_TMP/b.log" | head -n1 | sed 's/^\[[^]]*\] //')"

	# 2. hostile node: each attempt loses its own link only
	fd0=$(fdcount "$EXP_PID")
	hostile "huge length" 'struct.pack("<I", 0xFFFFFFFF) + b"x" * 100' "length"
	hostile "runt length" 'struct.pack("<I", 4) + b"x" * 20' "length"
	hostile "bad version" 'msg(1, 0, b"\0" * 16, version=2)' "version"
	hostile "before hello" 'msg(12, 1, struct.pack("<Q", 1))' "before HELLO"
	hostile "garbage hello" 'msg(1, 0, b"\xff" * 16)' "malformed"
	hostile "bad channel message" 'hello() + msg(11, 77, struct.pack("<HHIQQQ", 0, 0, 0, 5, 0, 0))' "COMPLETION"
	hostile "busy export then junk" \
		'hello(b"ecu-c") + msg(2, 9, struct.pack("<HHIQQ", 5, 0, 0, 0, 0) + b"disk0") + msg(99, 9, b"")' \
		"unknown message type"
	grep -q "export disk0 is in use by node ecu-b" "$VB_TMP/hostile.out" ||
		vb_fail "second attach of disk0 did not get a clear BUSY error: $(cat "$VB_TMP/hostile.out")"
	for ((i = 0; i < 30; i++)); do
		fd1=$(fdcount "$EXP_PID")
		[[ $fd1 -le $fd0 ]] && break
		sleep 0.1
	done
	[[ $fd1 -le $fd0 ]] || vb_fail "exporter fd count grew from $fd0 to $fd1"
	check_status "s['links'][0]['state']=='up' and s['links'][0]['drops']==0" "honest link affected"
	verify_disk 2
	echo "ok hostile nodes: exporter fds $fd0 -> $fd1, honest link untouched"

	# 3. the backend dies: only that session closes; back again, the import re-attaches
	kill -9 "$QSD_PID"
	wait_status "any(i['name']=='disk0' and i['state']=='refused' for i in s['imports'])" 10 \
		"importer not told that the device went away"
	grep -q 'export disk0: backend .* closed the connection; closing device session' "$VB_TMP/a.log" ||
		vb_fail "exporter log does not say the backend went away"
	vb_alive "$EXP_PID" && vb_alive "$IMP_PID" || vb_fail "a daemon died with the backend"
	vb_qsd "$VB_NS_A" "$VB_TMP/disk0.img" "$VB_TMP/qsd.sock" || vb_fail "qsd did not restart"
	wait_status "any(i['name']=='disk0' and i['state']=='attached' for i in s['imports'])" 15 \
		"importer did not re-attach after the backend came back"
	verify_disk 3
	echo "ok backend restart: $(grep 'closing device session' "$VB_TMP/a.log" | tail -n1 | sed 's/^\[[^]]*\] //')"
	# Both daemons still end cleanly (in a sanitizer build this also proves
	# that nothing above left a memory error or a leak behind).
	vb_stop_clean "$IMP_PID" importer
	vb_stop_clean "$EXP_PID" exporter
	vb_wrap_check a exporter
	vb_wrap_check b importer
	echo "PASS: test_link_errors"
}

main "$@"
