#!/bin/bash
# The daemon's interface as users and supervisors see it: -n checks the
# configuration (file and flags), readiness reaches NOTIFY_SOCKET, the
# control socket answers vbridgectl (text and JSON, unknown commands get an
# error), SIGTERM and SIGINT end it cleanly and remove its control socket.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

VBRIDGED=$VB_BUILD/vbridged
VBCTL=$VB_BUILD/tools/vbridgectl

check_config() {
	local out
	cat >"$VB_TMP/good.conf" <<CONF
[global]
node = ecu-a
listen = tcp://127.0.0.1:0
export = disk0=vhost-user:/run/qsd/disk0.sock,type=blk
pool-size = 32M
CONF
	out=$("$VBRIDGED" -n -f "$VB_TMP/good.conf" --node ecu-x 2>&1) || vb_fail "-n rejected a good file: $out"
	[[ $out == *"configuration OK: node ecu-x, 1 listen, 1 exports, 0 imports"* ]] ||
		vb_fail "-n: flags must override the file: $out"
	printf '[global]\nnode = a\nbogus = 1\n' >"$VB_TMP/bad.conf"
	out=$("$VBRIDGED" -n -f "$VB_TMP/bad.conf" 2>&1) && vb_fail "-n accepted an unknown key"
	[[ $out == *"bad.conf:3: unknown key 'bogus'"* ]] || vb_fail "-n: unclear error: $out"
	out=$("$VBRIDGED" -n --import 'x=udp://1.2.3.4:5' 2>&1) && vb_fail "-n accepted udp://"
	[[ $out == *import* ]] || vb_fail "-n: unclear error for a bad import: $out"
	echo "ok config check: good file accepted, flags override it, bad key and bad import refused"
}

# A NOTIFY_SOCKET listener that prints what it receives (sd_notify datagrams).
start_notify() {
	python3 - "$VB_TMP/notify.sock" >"$VB_TMP/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
try:
    while True:
        print(s.recv(4096).decode(), flush=True)
except socket.timeout:
    pass
PY
	NOTIFY_PID=$!
	VB_PIDS+=("$NOTIFY_PID")
	for ((i = 0; i < 50; i++)); do
		[[ -S $VB_TMP/notify.sock ]] && return 0
		sleep 0.1
	done
	vb_fail "notify listener did not start"
}

run_daemon() {
	local sig=$1 rc=0 out ready0 stop0
	ready0=$(grep -c READY=1 "$VB_TMP/notify.log")
	stop0=$(grep -c STOPPING=1 "$VB_TMP/notify.log")
	rm -rf "$VB_TMP/run"
	vb_log_add "$VB_TMP/d.log"
	NOTIFY_SOCKET=$VB_TMP/notify.sock vb_run_in - "$VBRIDGED" -d --node ecu-t \
		--listen tcp://127.0.0.1:0 --runtime-dir "$VB_TMP/run" >"$VB_TMP/d.log" 2>&1
	D_PID=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/run/vbridged.sock" 10 "$D_PID" || vb_fail "no control socket"
	for ((i = 0; i < 50; i++)); do
		[[ $(grep -c READY=1 "$VB_TMP/notify.log") -gt $ready0 ]] && break
		sleep 0.1
	done
	[[ $(grep -c READY=1 "$VB_TMP/notify.log") -gt $ready0 ]] || vb_fail "no READY=1 on NOTIFY_SOCKET"
	out=$("$VBCTL" -s "$VB_TMP/run/vbridged.sock" status) || vb_fail "vbridgectl status failed"
	[[ $out == *"node ecu-t"* && $out == *"listening on tcp://127.0.0.1:"* ]] ||
		vb_fail "vbridgectl status: $out"
	"$VBCTL" -s "$VB_TMP/run/vbridged.sock" status --json |
		python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["node"]=="ecu-t" and s["imports"]==[] and len(s["listen"])==1' ||
		vb_fail "vbridgectl status --json is not the expected JSON"
	out=$(printf 'frobnicate\n' | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
print(s.makefile().read())' "$VB_TMP/run/vbridged.sock")
	[[ $out == *'"error":"unknown command"'* ]] || vb_fail "unknown control command: $out"
	out=$("$VBCTL" -s "$VB_TMP/run/nope.sock" status 2>&1) && vb_fail "vbridgectl succeeded without a daemon"
	[[ $out == *"is vbridged running?"* ]] || vb_fail "vbridgectl without a daemon: $out"
	kill "-$sig" "$D_PID"
	vb_wait "$D_PID" || rc=$?
	[[ $rc -eq 0 ]] || vb_fail "SIG$sig: exit status $rc"
	[[ -e $VB_TMP/run/vbridged.sock ]] && vb_fail "SIG$sig: control socket left behind"
	[[ $(grep -c STOPPING=1 "$VB_TMP/notify.log") -gt $stop0 ]] || vb_fail "no STOPPING=1 on NOTIFY_SOCKET"
	echo "ok daemon: READY=1, status (text, JSON), unknown command refused, SIG$sig -> exit 0, socket removed"
}

main() {
	[[ -x $VBRIDGED && -x $VBCTL ]] || vb_fail "build first ($VB_BUILD)"
	vb_need_cmd python3
	check_config
	start_notify
	run_daemon TERM
	run_daemon INT
	echo "PASS: test_daemon"
}

main "$@"
