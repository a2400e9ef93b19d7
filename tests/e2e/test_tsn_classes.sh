#!/bin/bash
# tsn:// traffic classes and 802.1Q tags, with real daemons on a veth pair
# without IP addresses: two disks over one link, disk0 in class `bulk` and
# disk1 in class `audio` (import and export both say so), every frame tagged
# with VID 5 (--tsn-vlan 5). Both disks verify at the same time; tshark on
# ECU A's interface must see each class as its own stream (the class in the
# stream id), tagged VID 5 with the class's PCP (audio 3, bulk 0, control
# 6), and both sides' status must show the link up, never dropped, and
# say per class that frames go out at once because the interface has no
# ETF/taprio qdisc (launch time is detected from the qdisc tree).
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

VBRIDGED=$VB_BUILD/vbridged
VBCTL=$VB_BUILD/tools/vbridgectl
BENCH=$VB_BUILD/tools/vblk-bench

verify() {
	ip netns exec "$VB_NS_B" "$BENCH" --socket "$VB_TMP/b/disk$1.sock" --verify \
		--requests 512 --size 16k --depth 8 --seed "$1" >"$VB_TMP/bench-$1.log" 2>&1 &&
		grep -q 'read back intact' "$VB_TMP/bench-$1.log"
}

main() {
	local i exp=() imp=() cap out bad pids=()
	vb_need_root
	vb_need_cmd qemu-storage-daemon tshark python3 ip
	[[ -x $VBRIDGED && -x $VBCTL && -x $BENCH ]] || vb_fail "build first ($VB_BUILD)"
	VB_L2_ONLY=1
	vb_ecus || vb_fail "cannot create the two ECU namespaces"
	local cls=(bulk audio)
	for i in 0 1; do
		vb_blk_image "$VB_TMP/disk$i.img" 64 "disk$i" || vb_fail "image $i"
		vb_qsd "$VB_NS_A" "$VB_TMP/disk$i.img" "$VB_TMP/qsd$i.sock" || vb_fail "qsd $i"
		exp+=(--export "disk$i=vhost-user:$VB_TMP/qsd$i.sock,type=blk,class=${cls[i]}")
		imp+=(--import "disk$i=tsn://$VB_IF_B/$VB_MAC_A,class=${cls[i]}")
	done
	vb_log_add "$VB_TMP/a.log"
	vb_run_in "$VB_NS_A" "$VBRIDGED" -d --node ecu-a --tsn-vlan 5 --listen "tsn://$VB_IF_A" \
		"${exp[@]}" --runtime-dir "$VB_TMP/a" >"$VB_TMP/a.log" 2>&1
	local exp_pid=$VB_LAST_PID
	vb_wait_for_socket "$VB_TMP/a/vbridged.sock" 10 "$exp_pid" || vb_fail "exporter did not start"
	vb_log_add "$VB_TMP/b.log"
	vb_run_in "$VB_NS_B" "$VBRIDGED" -d --node ecu-b --tsn-vlan 5 "${imp[@]}" \
		--runtime-dir "$VB_TMP/b" >"$VB_TMP/b.log" 2>&1
	local imp_pid=$VB_LAST_PID
	for i in 0 1; do
		vb_wait_for_socket "$VB_TMP/b/disk$i.sock" 15 "$imp_pid" || vb_fail "no disk$i.sock"
	done

	ip netns exec "$VB_NS_A" timeout 60 tshark -q -i "$VB_IF_A" -c 3000 -f "ether proto 0x22f0 or vlan" \
		-w "$VB_TMP/classes.pcap" >"$VB_TMP/classes.pcap.log" 2>&1 &
	cap=$!
	for ((i = 0; i < 200; i++)); do
		grep -q 'Capturing on' "$VB_TMP/classes.pcap.log" && break
		sleep 0.1
	done
	verify 0 &
	pids+=($!)
	verify 1 &
	pids+=($!)
	for i in 0 1; do
		wait "${pids[i]}" || vb_fail "disk$i (${cls[i]}): $(tail -n 3 "$VB_TMP/bench-$i.log")"
	done
	wait "$cap" || vb_fail "tshark capture: $(tail -n 3 "$VB_TMP/classes.pcap.log")"

	# Per frame: VID, PCP, subtype, stream id (TSCF or NTSCF).
	out=$(tshark -r "$VB_TMP/classes.pcap" -T fields -E separator=';' -e vlan.id -e vlan.priority \
		-e ieee1722.subtype -e tscf.stream_id -e ntscf.stream_id 2>"$VB_TMP/tshark.err") ||
		vb_fail "tshark -r: $(cat "$VB_TMP/tshark.err")"
	printf '%s\n' "$out" >"$VB_TMP/frames.txt"
	bad=$(python3 - "$VB_TMP/frames.txt" <<'PY'
import sys
want_pcp = {0: 6, 1: 3, 2: 2, 3: 0}
seen, bad = {}, []
for line in open(sys.argv[1]):
    vid, pcp, sub, tsid, nsid = (line.rstrip("\n").split(";") + [""] * 5)[:5]
    sid = int(tsid or nsid, 16)
    cls = (sid >> 12) & 0xF
    seen[(sub, cls)] = seen.get((sub, cls), 0) + 1
    if vid != "5" or int(pcp or -1) != want_pcp.get(cls):
        bad.append(f"class {cls}: vid {vid!r} pcp {pcp!r}")
for need in (("0x05", 3), ("0x05", 1), ("0x82", 3), ("0x82", 1)):
    if not seen.get(need):
        bad.append(f"no {'TSCF' if need[0] == '0x05' else 'NTSCF'} frames of class {need[1]}")
print("; ".join(bad[:4]) if bad else "ok " + ", ".join(f"{s}/class {c}: {n}" for (s, c), n in sorted(seen.items())))
PY
)
	[[ $bad == ok* ]] || vb_fail "frames: $bad"
	echo "ok classes and tags on the wire: $bad"
	for side in a b; do
		local st
		st=$(ip netns exec "$([[ $side == a ]] && echo "$VB_NS_A" || echo "$VB_NS_B")" "$VBCTL" \
			-s "$VB_TMP/$side/vbridged.sock" status --json)
		python3 -c '
import json, sys
l = json.loads(sys.argv[1])["links"][0]
# veth in a new namespace has no qdisc (noqueue): no launch time, and status says why.
want = "; ".join(c + ": immediate (root qdisc noqueue)" for c in ("control", "audio", "video", "bulk"))
sys.exit(0 if l["state"] == "up" and l["drops"] == 0 and l.get("transport_detail") == want else 1)' "$st" ||
			vb_fail "side $side: link not up, dropped, or no launch-time verdict: $st"
	done
	vb_stop_clean "$imp_pid" importer
	vb_stop_clean "$exp_pid" exporter
	echo "PASS: test_tsn_classes"
}

main "$@"
