#!/bin/bash
# A hostile exporter (a scripted node on loopback) against a real importing
# vbridged with vblk-bench as the VMM (adversarial case 34): a completion for
# a request id that was never sent, and a completion that writes more bytes
# than the request offered, each cost the exporter its link with a log line
# saying why; the importer lives on, writes nothing into the guest buffer,
# and tries the link again.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

VBRIDGED=$VB_BUILD/vbridged
BENCH=$VB_BUILD/tools/vblk-bench

# fake_exporter PORT MODE: accepts one link, attaches, then misbehaves.
fake_exporter() {
	python3 - "$1" "$2" <<'PY'
import socket, struct, sys
port, mode = int(sys.argv[1]), sys.argv[2]
def msg(t, chan, body):
    return struct.pack("<IBBHI", 12 + len(body), 1, t, 0, chan) + body
def completion(chan, q, rid, data):
    return msg(11, chan, struct.pack("<HHIQQQ", q, 0, 0, rid, 0, 0) + data)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1)
print("listening", flush=True)
c, _ = srv.accept()
c.settimeout(30)
c.sendall(msg(1, 0, struct.pack("<BBHIQ", 1, 1, 4, 0, 7) + b"evil"))
buf = b""
def recv_msg():
    global buf
    while True:
        if len(buf) >= 12:
            n = struct.unpack_from("<I", buf)[0]
            if len(buf) >= n:
                m, buf = buf[:n], buf[n:]
                return m[5], struct.unpack_from("<I", m, 8)[0], m[12:]
        d = c.recv(65536)
        if not d:
            sys.exit("link closed before the test was done")
        buf += d
config = struct.pack("<Q", 131072) + b"\0" * 52
while True:
    t, chan, body = recv_msg()
    if t == 2:  # ATTACH -> ATTACH_OK: blk, 1 queue, VERSION_1
        c.sendall(msg(3, chan, struct.pack("<IHHQIHHQ", 2, 1, 256, 1 << 32, 0, len(config), 0, 1) + config))
    elif t == 6 and mode == "unknown-id":  # QUEUE_START: answer something never asked
        c.sendall(completion(chan, 0, (999 << 16) | 3, b""))
        print("sent completion for unknown id", flush=True)
    elif t == 10 and mode == "overflow":  # REQUEST: write one byte more than offered
        q, _, wr_len, rid = struct.unpack_from("<HHIQ", body)
        c.sendall(completion(chan, q, rid, b"\xee" * (wr_len + 1)))
        print("sent %d bytes for %d writable" % (wr_len + 1, wr_len), flush=True)
    elif t in (6, 10) and mode in ("unknown-id", "overflow"):
        continue
    if mode == "done":
        break
# wait for the importer to drop us
try:
    while c.recv(65536):
        pass
except OSError:
    pass
print("link closed by the importer", flush=True)
PY
}

run_mode() {
	local mode=$1 why=$2 port=$((20000 + $$ % 20000)) dir=$VB_TMP/$1 i
	mkdir -p "$dir"
	vb_log_add "$dir/fake.log"
	vb_run_in - fake_exporter "$port" "$mode" >"$dir/fake.log" 2>&1
	for ((i = 0; i < 50; i++)); do
		grep -q listening "$dir/fake.log" && break
		sleep 0.1
	done
	vb_log_add "$dir/imp.log"
	vb_run_in - "$VBRIDGED" -d --node ecu-b --import "disk0=tcp://127.0.0.1:$port" \
		--runtime-dir "$dir/run" >"$dir/imp.log" 2>&1
	IMP_PID=$VB_LAST_PID
	vb_wait_for_socket "$dir/run/disk0.sock" 10 "$IMP_PID" || vb_fail "$mode: no import socket"
	vb_run_in - "$BENCH" --quiet --socket "$dir/run/disk0.sock" --rw randread --size 4k \
		--depth 1 --requests 1 --warmup 0 --no-event-idx >"$dir/bench.log" 2>&1
	BENCH_PID=$VB_LAST_PID
	for ((i = 0; i < 100; i++)); do
		grep -q 'dropping link' "$dir/imp.log" && break
		sleep 0.1
	done
	grep 'dropping link' "$dir/imp.log" | grep -q "$why" ||
		vb_fail "$mode: importer did not drop the link saying '$why'"
	vb_alive "$IMP_PID" || vb_fail "$mode: the importer died"
	grep -q 'import disk0: state change attached -> waiting-for-link' "$dir/imp.log" ||
		vb_fail "$mode: the import did not go back to waiting for its link"
	echo "ok $mode: $(grep 'dropping link' "$dir/imp.log" | head -n1 | sed 's/^\[[^]]*\] //')"
	vb_stop "$BENCH_PID"
	vb_stop_clean "$IMP_PID" importer
}

main() {
	[[ -x $VBRIDGED && -x $BENCH ]] || vb_fail "build first ($VB_BUILD)"
	vb_need_cmd python3
	run_mode unknown-id "completion for unknown request id"
	run_mode overflow "4098 bytes written, 4097 writable"
	echo "PASS: test_hostile_exporter"
}

main "$@"
