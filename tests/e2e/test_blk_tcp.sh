#!/bin/bash
# End to end over TCP: ECU A runs qemu-storage-daemon (vhost-user-blk) and an
# exporting vbridged; ECU B runs an importing vbridged and a Linux guest
# under QEMU (TCG) with vhost-user-blk-pci on the importer's socket. The
# guest reads what was written into the image before boot, writes
# pseudo-random data at several offsets (>= 16 MiB), reads it back and prints
# checksums; after shutdown they are compared with the image on ECU A.
# While the guest runs, `vbridgectl status --json` on both ECUs must show
# the link, device and queue counters moving.
#
# Cases: single (one disk, one queue), multi (two disks over one link, two
# queues each). VB_DEMO=1 narrates for a person watching (tools/demo.sh).
# VB_LINK=tls runs the same over tls:// with mutual certificate
# authentication (a PKI made by tools/vb-pki) and allow= on every export;
# VB_LINK=tsn over tsn:// (IEEE 1722 on raw Ethernet), the veth ends with
# no IP address at all; VB_TSN_LOSS=P drops P% of the 1722 frames arriving
# at each end (nftables) for the whole run.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

VBRIDGED=$VB_BUILD/vbridged
VBCTL=$VB_BUILD/tools/vbridgectl
DEMO=${VB_DEMO:-}
PORT=7800
SCHEME=${VB_LINK:-tcp}
SEC_A=(--allow-plaintext)
SEC_B=(--allow-plaintext)
ALLOW=

# tls: a CA and certificates for ecu-a and ecu-b; only ecu-b may attach.
setup_link_security() {
	[[ $SCHEME == tls ]] || return 0
	"$VB_SRC/tools/vb-pki" demo "$VB_TMP/pki" >/dev/null || vb_fail "vb-pki demo failed"
	SEC_A=(--tls-cert "$VB_TMP/pki/ecu-a.pem" --tls-key "$VB_TMP/pki/ecu-a.key"
		--tls-ca "$VB_TMP/pki/ca.pem")
	SEC_B=(--tls-cert "$VB_TMP/pki/ecu-b.pem" --tls-key "$VB_TMP/pki/ecu-b.key"
		--tls-ca "$VB_TMP/pki/ca.pem")
	ALLOW=,allow=ecu-b
}

say() { [[ -n $DEMO ]] && echo "==> $*"; return 0; }

listen_uri() {
	if [[ $SCHEME == tsn ]]; then echo "tsn://$VB_IF_A"; else echo "$SCHEME://$VB_IP_A:$PORT"; fi
}

import_uri() {
	if [[ $SCHEME == tsn ]]; then echo "tsn://$VB_IF_B/$VB_MAC_A"; else echo "$SCHEME://$VB_IP_A:$PORT"; fi
}

# start_daemons NDISKS NUMQ: qsd + exporter on A, importer on B.
start_daemons() {
	local ndisks=$1 numq=$2 i exp=() imp=()
	for ((i = 0; i < ndisks; i++)); do
		vb_blk_image "$VB_TMP/disk$i.img" 64 "disk$i" || vb_fail "cannot create image $i"
		vb_qsd "$VB_NS_A" "$VB_TMP/disk$i.img" "$VB_TMP/qsd$i.sock" "$numq" ||
			vb_fail "qemu-storage-daemon $i did not start"
		QSD_PIDS+=("$VB_LAST_PID")
		exp+=(--export "disk$i=vhost-user:$VB_TMP/qsd$i.sock,type=blk$ALLOW")
		imp+=(--import "disk$i=$(import_uri)")
	done
	say "ECU A ($VB_NS_A, ${VB_IP_A:-$VB_MAC_A}): qemu-storage-daemon serves $ndisks disk(s); vbridged exports them"
	vb_log_add "$VB_TMP/a.log"
	vb_run_in "$VB_NS_A" "$VBRIDGED" -d "${SEC_A[@]}" --node ecu-a --listen "$(listen_uri)" \
		"${exp[@]}" --runtime-dir "$VB_TMP/a" >"$VB_TMP/a.log" 2>&1
	EXP_PID=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/a/vbridged.sock" 10 "$EXP_PID" || vb_fail "exporter did not start"
	say "ECU B ($VB_NS_B, ${VB_IP_B:-$VB_MAC_B}): vbridged imports them from $(import_uri)"
	vb_log_add "$VB_TMP/b.log"
	vb_run_in "$VB_NS_B" "$VBRIDGED" -d "${SEC_B[@]}" --node ecu-b "${imp[@]}" --runtime-dir "$VB_TMP/b" \
		>"$VB_TMP/b.log" 2>&1
	IMP_PID=$VB_LAST_PID
	for ((i = 0; i < ndisks; i++)); do
		vb_wait_for_socket "$VB_TMP/b/disk$i.sock" 15 "$IMP_PID" ||
			vb_fail "importer did not create disk$i.sock"
		SOCKS+=("$VB_TMP/b/disk$i.sock")
	done
}

status_json() { ip netns exec "$1" "$VBCTL" -s "$2" status --json; }

# sample_status OUT: one JSON line per side every second while QEMU runs.
sample_status() {
	local out=$1
	while vb_alive "$VB_QEMU_PID"; do
		{
			status_json "$VB_NS_B" "$VB_TMP/b/vbridged.sock" | sed 's/^/B /'
			status_json "$VB_NS_A" "$VB_TMP/a/vbridged.sock" | sed 's/^/A /'
		} >>"$out" 2>/dev/null
		sleep 1
	done
}

# check_counters SAMPLES NDISKS NUMQ: the counters moved while the guest ran,
# on the link, on every device and, for multi-queue, on every queue.
check_counters() {
	python3 - "$@" <<'PY'
import json, sys
path, ndisks, numq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a, b = [], []
for line in open(path):
    side, doc = line.split(" ", 1)
    try:
        (a if side == "A" else b).append(json.loads(doc))
    except ValueError:
        pass
bad = []
def moved(samples, get, what):
    vals = [get(s) for s in samples]
    if len(vals) < 2 or vals[-1] <= vals[0]:
        bad.append(f"{what} did not move: {vals[:1]}..{vals[-1:]}")
    return vals
if len(b) < 3 or len(a) < 3:
    bad.append(f"too few status samples: A {len(a)}, B {len(b)}")
else:
    links = [s["links"] for s in b]
    if any(len(l) != 1 for l in links):
        bad.append("importer should have exactly one link: %s" % [len(l) for l in links])
    want_sec = "TLSv1.3" if sys.argv[4] == "tls" else "plaintext"
    for side, samples in (("importer", b), ("exporter", a)):
        sec = samples[-1]["links"][0]["security"] if samples[-1]["links"] else ""
        if not sec.startswith(want_sec):
            bad.append(f"{side} link security is '{sec}', want {want_sec}")
    if sys.argv[4] == "tls" and b[-1]["links"][0]["peer_identity"] != "ecu-a":
        bad.append("importer link peer_identity is '%s', want ecu-a" % b[-1]["links"][0]["peer_identity"])
    moved(b, lambda s: s["links"][0]["tx_bytes"], "importer link tx_bytes")
    moved(b, lambda s: s["links"][0]["rx_bytes"], "importer link rx_bytes")
    moved(a, lambda s: s["links"][0]["rx_bytes"] if s["links"] else 0, "exporter link rx_bytes")
    for d in range(ndisks):
        name = f"disk{d}"
        imp = lambda s: next(i for i in s["imports"] if i["name"] == name)
        exp = lambda s: next(e for e in s["exports"] if e["name"] == name)
        moved(b, lambda s: sum(q["requests"] for q in imp(s)["queues"]), f"{name} import requests")
        moved(b, lambda s: sum(q["bytes_in"] for q in imp(s)["queues"]), f"{name} import bytes_in")
        moved(a, lambda s: sum(q["completions"] for q in exp(s).get("queues", [])), f"{name} export completions")
        last = imp(b[-1])
        if last["state"] != "attached":
            bad.append(f"{name}: import state {last['state']}")
        used = [q for q in last["queues"] if q["requests"] > 0]
        if len(last["queues"]) != numq or len(used) != numq:
            bad.append(f"{name}: {len(used)} of {len(last['queues'])} queues carried requests, want {numq}")
        for q in last["queues"]:
            if q["requests"] != q["completions"] + q["inflight"]:
                bad.append(f"{name} queue {q['index']}: requests {q['requests']} != completions {q['completions']} + inflight {q['inflight']}")
if bad:
    print("\n".join("counters: " + x for x in bad), file=sys.stderr)
    sys.exit(1)
last = b[-1]
print("counters: link tx %d B rx %d B; %s" % (last["links"][0]["tx_bytes"], last["links"][0]["rx_bytes"],
      ", ".join("%s %d requests" % (i["name"], sum(q["requests"] for q in i["queues"])) for i in last["imports"])))
PY
}

run_case() {
	local name=$1 ndisks=$2 numq=$3 log t0 rc=0 i imgs=() sampler
	QSD_PIDS=() SOCKS=()
	log=$VB_TMP/$name.console
	t0=$(vb_now)
	if [[ $SCHEME == tsn && ${VB_TSN_LOSS:-0} -gt 0 ]]; then
		vb_nft_loss "$VB_NS_A" "$VB_IF_A" "$VB_TSN_LOSS" &&
			vb_nft_loss "$VB_NS_B" "$VB_IF_B" "$VB_TSN_LOSS" || vb_fail "nft loss rules"
		say "both ECUs drop $VB_TSN_LOSS% of the IEEE 1722 frames they receive"
	fi
	start_daemons "$ndisks" "$numq"
	say "ECU B: QEMU boots a Linux guest with vhost-user-blk-pci on ${SOCKS[*]}"
	vb_qemu_blk -n "$VB_NS_B" -q "$numq" "$log" "${SOCKS[@]}" || vb_fail "$name: cannot start QEMU"
	sample_status "$VB_TMP/$name.status" &
	sampler=$!
	vb_wait "$VB_QEMU_PID" || rc=$?
	wait "$sampler"
	[[ $rc -eq 0 ]] || vb_fail "$name: QEMU exited with status $rc"
	[[ -n $DEMO ]] && vb_guest_lines "$log" | sed 's/^/    /'
	check_counters "$VB_TMP/$name.status" "$ndisks" "$numq" "$SCHEME" || vb_fail "$name: status counters"
	if [[ -n $DEMO ]]; then
		say "vbridgectl status on ECU B:"
		ip netns exec "$VB_NS_B" "$VBCTL" -s "$VB_TMP/b/vbridged.sock" status | sed 's/^/    /'
		say "vbridgectl status on ECU A:"
		ip netns exec "$VB_NS_A" "$VBCTL" -s "$VB_TMP/a/vbridged.sock" status | sed 's/^/    /'
	fi
	if [[ $SCHEME == tsn && ${VB_TSN_LOSS:-0} -gt 0 ]]; then
		# The loss covers the guest's whole run; the daemons then stop on a clean
		# link (tsn:// does not linger for acks at close: a DETACH lost at shutdown
		# would read as a lost link on ECU A).
		LOSS_A=$(vb_nft_dropped "$VB_NS_A") LOSS_B=$(vb_nft_dropped "$VB_NS_B")
		vb_nft_loss "$VB_NS_A" "$VB_IF_A" 0
		vb_nft_loss "$VB_NS_B" "$VB_IF_B" 0
		((LOSS_A > 0 && LOSS_B > 0)) || vb_fail "loss: nftables dropped $LOSS_A and $LOSS_B frames"
		echo "loss: $VB_TSN_LOSS% of 1722 frames dropped at each end during the guest's run: $LOSS_A at ECU A, $LOSS_B at ECU B"
	fi
	vb_stop_clean "$IMP_PID" "importer"
	vb_stop_clean "$EXP_PID" "exporter"
	for i in "${!QSD_PIDS[@]}"; do
		vb_alive "${QSD_PIDS[i]}" || vb_fail "$name: qemu-storage-daemon $i died"
		vb_stop "${QSD_PIDS[i]}"
		imgs+=("$VB_TMP/disk$i.img")
	done
	grep -E 'dropping link|guest error|closing connection|closing device session' \
		"$VB_TMP/a.log" "$VB_TMP/b.log" && vb_fail "$name: a daemon reported an error"
	vb_blk_verify "$log" "$numq" "${imgs[@]}" || vb_fail "$name: guest and image on ECU A disagree"
	say "the data the guest wrote on ECU B is on ECU A's disk image, byte for byte"
	echo "PASS $name: $ndisks disk(s) x $numq queue(s) over one $SCHEME:// link: $(vb_guest_times "$log"), wall $(vb_elapsed "$t0") s"
	rm -rf "$VB_TMP/a" "$VB_TMP/b"
}

main() {
	local c cases=("$@")
	[[ ${#cases[@]} -gt 0 ]] || cases=(single multi)
	[[ -n $DEMO ]] && cases=(single)
	vb_need_root
	vb_need_cmd qemu-system-x86_64 qemu-storage-daemon ip python3
	[[ -x $VBRIDGED && -x $VBCTL ]] || vb_fail "build vbridged and vbridgectl first ($VB_BUILD)"
	say "building the guest (Debian kernel + busybox initramfs, cached)"
	vb_guest
	[[ $SCHEME == tsn ]] && VB_L2_ONLY=1
	vb_ecus || vb_fail "cannot create the two ECU namespaces"
	setup_link_security
	for c in "${cases[@]}"; do
		case $c in
		single) run_case single 1 1 ;;
		multi) run_case multi 2 2 ;;
		*) vb_fail "unknown case $c" ;;
		esac
	done
	echo "PASS: test_blk_tcp over $SCHEME:// (${cases[*]})"
}

main "$@"
