#!/bin/bash
# tls:// links let in only the peers they should (security issue, done
# means): an exporting vbridged on loopback with mutual TLS and allow=ecu-b
# is approached by importers with a certificate from a foreign CA, an
# expired certificate, a valid certificate not on the allow list, and a pin
# that does not match the exporter; by a scripted TLS peer whose valid
# certificate names another node than its HELLO claims; by a TLS 1.2-only
# client and by a plaintext client. Each is refused with a clear message,
# the exporter carries on, and the honest importer reads and writes data.
# A vbridged whose own certificate names another node does not start.
# SIGHUP with a broken key keeps the old context; with good files it reloads.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

VBRIDGED=$VB_BUILD/vbridged
BENCH=$VB_BUILD/tools/vblk-bench
PKI=$VB_TMP/pki
PORT=$((30000 + $$ % 20000))
URI=tls://127.0.0.1:$PORT

# importer TAG NODE CERTNAME [EXTRA...]: start an importer of disk0.
importer() {
	local tag=$1 node=$2 cert=$3
	shift 3
	vb_log_add "$VB_TMP/$tag.log"
	vb_run_in - "$VBRIDGED" -d --node "$node" --import "disk0=$URI" --runtime-dir "$VB_TMP/$tag" \
		--tls-cert "$PKI/$cert.pem" --tls-key "$PKI/$cert.key" --tls-ca "$PKI/ca.pem" "$@" \
		>"$VB_TMP/$tag.log" 2>&1
}

# wait_log FILE PATTERN WHAT: the pattern shows up within 10 s.
wait_log() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q "$2" "$1" && return 0
		sleep 0.1
	done
	vb_fail "$3: no '$2' in ${1##*/}: $(tail -n 5 "$1")"
}

refused() {
	local tag=$1 node=$2 cert=$3 side_log=$4 pattern=$5
	shift 5
	importer "$tag" "$node" "$cert" "$@"
	local pid=$VB_LAST_PID
	wait_log "$side_log" "$pattern" "$tag"
	sleep 0.3
	[[ -e $VB_TMP/$tag/disk0.sock ]] && vb_fail "$tag: got an import socket"
	vb_alive "$EXP_PID" || vb_fail "$tag: the exporter died"
	vb_stop "$pid"
	echo "ok $tag: $(grep "$pattern" "$side_log" | head -n1 | sed 's/^\[[^]]*\] //')"
}

# A peer with a valid certificate for ecu-c that says it is ecu-b (the one
# export's allow= list names): the link ends before any attach.
wrong_name() {
	python3 - "$PORT" "$PKI" <<'PY' >"$VB_TMP/wrong-name.log" 2>&1
import socket, ssl, struct, sys
port, pki = int(sys.argv[1]), sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.check_hostname = False
ctx.load_verify_locations(pki + "/ca.pem")
ctx.load_cert_chain(pki + "/ecu-c.pem", pki + "/ecu-c.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
name = b"ecu-b"
s.sendall(struct.pack("<IBBHIBBHIQ", 28 + len(name), 1, 1, 0, 0, 1, 1, len(name), 0, 1) + name)
got = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
except (OSError, ssl.SSLError):
    pass
print("peer sent %d bytes: %r" % (len(got), got[:200]))
PY
	wait_log "$VB_TMP/a.log" "peer claims node ecu-b but its certificate says ecu-c" wrong-name
	grep -q "your certificate says ecu-c" "$VB_TMP/wrong-name.log" ||
		vb_fail "wrong-name: the peer was not told why: $(cat "$VB_TMP/wrong-name.log")"
	vb_alive "$EXP_PID" || vb_fail "wrong-name: the exporter died"
	echo "ok wrong-name: $(grep "peer claims node ecu-b" "$VB_TMP/a.log" | head -n1 | sed 's/^\[[^]]*\] //')"
}

# A node whose own certificate names another node would have every link
# refused by its peers: vbridged refuses to start with it.
own_name() {
	local out
	out=$("$VBRIDGED" -d --node ecu-b --import "disk0=$URI" --runtime-dir "$VB_TMP/own" \
		--tls-cert "$PKI/ecu-c.pem" --tls-key "$PKI/ecu-c.key" --tls-ca "$PKI/ca.pem" 2>&1) &&
		vb_fail "own-name: vbridged started with ecu-c's certificate as ecu-b"
	grep -q "names ecu-c, not this node (ecu-b)" <<<"$out" ||
		vb_fail "own-name: no clear error: $out"
	echo "ok own-name: $(grep -o 'certificate .*links' <<<"$out" | head -n1)"
}

verify() {
	"$BENCH" --socket "$VB_TMP/good/disk0.sock" --verify --requests 256 --size 16k --depth 8 \
		--seed "$1" >"$VB_TMP/bench-$1.log" 2>&1 && grep -q 'read back intact' "$VB_TMP/bench-$1.log" ||
		vb_fail "verify $1 through the tls:// link: $(tail -n 3 "$VB_TMP/bench-$1.log")"
}

main() {
	local out
	[[ -x $VBRIDGED && -x $BENCH ]] || vb_fail "build first ($VB_BUILD)"
	vb_need_cmd qemu-storage-daemon openssl python3
	"$VB_SRC/tools/vb-pki" demo "$PKI" >/dev/null || vb_fail "vb-pki demo"
	"$VB_SRC/tools/vb-pki" node "$PKI" ecu-c >/dev/null || vb_fail "vb-pki node ecu-c"
	"$VB_SRC/tools/vb-pki" node "$PKI/expired" ecu-b --ca "$PKI" --not-before 2020-01-01 \
		--not-after 2021-01-01 >/dev/null || vb_fail "vb-pki expired cert"
	cp "$PKI/foreign/mallory.pem" "$PKI/foreign/mallory.key" "$PKI/"
	truncate -s 64M "$VB_TMP/disk.img"
	vb_qsd - "$VB_TMP/disk.img" "$VB_TMP/qsd.sock" || vb_fail "qsd did not start"
	vb_log_add "$VB_TMP/a.log"
	vb_run_in - "$VBRIDGED" -d --node ecu-a --listen "$URI" --runtime-dir "$VB_TMP/a" \
		--tls-cert "$PKI/ecu-a.pem" --tls-key "$PKI/ecu-a.key" --tls-ca "$PKI/ca.pem" \
		--export "disk0=vhost-user:$VB_TMP/qsd.sock,type=blk,allow=ecu-b" >"$VB_TMP/a.log" 2>&1
	EXP_PID=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/a/vbridged.sock" 10 "$EXP_PID" || vb_fail "exporter did not start"

	refused foreign mallory mallory "$VB_TMP/a.log" "handshake with .* failed: certificate verify failed"
	refused expired ecu-b expired/ecu-b "$VB_TMP/a.log" "handshake with .* failed: .*certificate has expired"
	wrong_name
	own_name
	refused not-allowed ecu-c ecu-c "$VB_TMP/not-allowed.log" "refused: DENIED: node ecu-c may not attach export disk0"
	refused wrong-pin ecu-b ecu-b "$VB_TMP/wrong-pin.log" "pin mismatch: the peer.s key is sha256//" \
		--tls-pin "sha256//$(head -c 32 /dev/zero | base64)"

	out=$(timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -cert "$PKI/ecu-b.pem" \
		-key "$PKI/ecu-b.key" -CAfile "$PKI/ca.pem" </dev/null 2>&1)
	grep -qi 'alert protocol version\|wrong version\|no protocols available' <<<"$out" ||
		vb_fail "TLS 1.2 client was not refused for its version: $(tail -n 5 <<<"$out")"
	wait_log "$VB_TMP/a.log" "handshake with .* failed: .*version" "tls1.2"
	echo "ok tls1.2 client: $(grep 'handshake with .* failed: .*version' "$VB_TMP/a.log" | head -n1 | sed 's/^\[[^]]*\] //')"

	python3 -c '
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(struct.pack("<IBBHI", 28, 1, 1, 0, 0) + b"\x01\x01\x04\x00" + b"\0" * 8 + b"evil")
try:
    s.recv(100)
except OSError:
    pass' "$PORT"
	wait_log "$VB_TMP/a.log" "handshake with .* failed" "plaintext client"
	echo "ok plaintext client: refused by the TLS listener"

	importer good ecu-b ecu-b --tls-pin "$("$VB_SRC/tools/vb-pki" pin "$PKI/ecu-a.pem" | head -n1)"
	vb_wait_for_socket "$VB_TMP/good/disk0.sock" 10 "$VB_LAST_PID" || vb_fail "honest importer got no socket"
	verify 1
	echo "ok honest importer: pinned, attached, data verified"

	# SIGHUP: a broken key keeps the old context; good files are taken.
	cp "$PKI/ecu-a.key" "$PKI/ecu-a.key.good"
	echo "not a key" >"$PKI/ecu-a.key"
	kill -HUP "$EXP_PID"
	wait_log "$VB_TMP/a.log" "reload: keeping the current TLS context" "reload with a broken key"
	mv "$PKI/ecu-a.key.good" "$PKI/ecu-a.key"
	kill -HUP "$EXP_PID"
	wait_log "$VB_TMP/a.log" "reload: TLS certificate, key and CA reloaded" "reload with good files"
	verify 2
	echo "ok SIGHUP: $(grep 'reload: keeping' "$VB_TMP/a.log" | head -n1 | sed 's/^\[[^]]*\] //')"
	vb_stop_clean "$EXP_PID" exporter
	echo "PASS: test_tls_refusals"
}

main "$@"
