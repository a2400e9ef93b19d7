#!/bin/bash
# tsn:// frames as Wireshark sees them: test_avtp writes its golden frames
# (docs/protocol.md section 11, written by hand) to a pcap file
# (VB_AVTP_PCAP), and tshark must decode every one as IEEE 1722 with the
# subtype, stream id and ACF message types the test says, with sv 1 and
# version 0, and report no malformed packet and no expert info. A copy with
# one length field broken must draw tshark's warning, so that a silent
# tshark means something. Needs no root and no namespaces, only tshark
# (tools/deps.sh) and the unit test binary (VB_BUILD).
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

UNIT=$VB_BUILD/tests/test_avtp
PCAP=$VB_TMP/avtp.pcap
EXPECT=$PCAP.expect

vb_need_cmd tshark
[[ -x $UNIT ]] || vb_fail "no $UNIT: build the unit tests first"

VB_AVTP_PCAP=$PCAP "$UNIT" >"$VB_TMP/unit.log" 2>&1 || {
	vb_log_add "$VB_TMP/unit.log"
	vb_fail "test_avtp failed"
}
[[ -s $PCAP && -s $EXPECT ]] || vb_fail "test_avtp wrote no $PCAP / $EXPECT"
nframes=$(wc -l <"$EXPECT")
vb_log "$(tshark --version 2>/dev/null | head -1), $nframes golden frames"

# tshark_run ARGS...: tshark -r on our pcap; its stderr (the root warning) kept aside.
tshark_run() {
	local file=$1
	shift
	tshark -r "$file" "$@" 2>>"$VB_TMP/tshark.err" || vb_fail "tshark -r $file $* failed: $(tail -3 "$VB_TMP/tshark.err")"
}

# norm LIST: "0x0078,0x007a" -> "0x78,0x7a"
norm() {
	local v out=() vs
	IFS=, read -ra vs <<<"$1"
	for v in "${vs[@]}"; do
		out+=("$(printf '0x%02x' "$((v))")")
	done
	(IFS=,; echo "${out[*]}")
}

FIELDS=(-T fields -E separator=';' -E occurrence=a -E 'aggregator=,'
	-e frame.number -e frame.protocols -e ieee1722.subtype -e ieee1722.svfield
	-e ieee1722.verfield -e tscf.stream_id -e ntscf.stream_id -e acf.msg_type
	-e _ws.expert -e _ws.malformed)
tshark_run "$PCAP" "${FIELDS[@]}" >"$VB_TMP/fields.txt"
[[ $(wc -l <"$VB_TMP/fields.txt") -eq $nframes ]] ||
	vb_fail "tshark shows $(wc -l <"$VB_TMP/fields.txt") frames, the test wrote $nframes"

while read -r num subtype stream types; do
	IFS=';' read -r fnum protos st sv ver tsid ntsid acf expert malformed < <(sed -n "${num}p" "$VB_TMP/fields.txt")
	what="frame $num ($subtype $stream $types)"
	[[ $fnum == "$num" ]] || vb_fail "$what: tshark row $num is frame $fnum"
	case $subtype in
	0x05) fmt=tscf sid=$tsid ;;
	0x82) fmt=ntscf sid=$ntsid ;;
	*) vb_fail "$what: unexpected subtype in $EXPECT" ;;
	esac
	[[ :$protos: == *:ieee1722:$fmt:acf:* ]] || vb_fail "$what: not decoded as IEEE 1722 $fmt: $protos"
	[[ $st == "$subtype" ]] || vb_fail "$what: tshark subtype $st"
	[[ $sv == 1 && $((ver)) -eq 0 ]] || vb_fail "$what: tshark sv $sv version $ver"
	[[ ${sid,,} == "${stream,,}" ]] || vb_fail "$what: tshark stream id $sid"
	[[ $(norm "$acf") == "$types" ]] || vb_fail "$what: tshark ACF types $acf"
	[[ -z $expert && -z $malformed ]] || vb_fail "$what: tshark expert info: $expert $malformed"
	vb_log "frame $num: $fmt, stream $sid, ACF $(norm "$acf"): as expected"
done <"$EXPECT"

# The verbose tree: one AVTP layer per frame, nothing malformed, no expert line.
tshark_run "$PCAP" -V >"$VB_TMP/verbose.txt"
n=$(grep -c '^IEEE 1722 Audio Video Transport Protocol (AVTP)$' "$VB_TMP/verbose.txt")
[[ $n -eq $nframes ]] || vb_fail "tshark -V: $n AVTP layers for $nframes frames"
if grep -niE 'malformed|expert info|\[(warning|error)' "$VB_TMP/verbose.txt" >"$VB_TMP/bad.txt"; then
	vb_fail "tshark -V complains: $(head -5 "$VB_TMP/bad.txt")"
fi
tshark_run "$PCAP" -q -z expert >"$VB_TMP/expert.txt"
if grep -qE '^(Errors|Warns|Notes|Chats) \(' "$VB_TMP/expert.txt"; then
	vb_fail "tshark -z expert: $(cat "$VB_TMP/expert.txt")"
fi

# Negative control: frame 1's stream_data_length (pcap header 24 + record 16
# + Ethernet 14 + 20) raised to 255 must be flagged.
cp "$PCAP" "$VB_TMP/broken.pcap"
printf '\x00\xff' | dd of="$VB_TMP/broken.pcap" bs=1 seek=74 conv=notrunc status=none
tshark_run "$VB_TMP/broken.pcap" -q -z expert >"$VB_TMP/expert-broken.txt"
grep -q 'data_length is too large' "$VB_TMP/expert-broken.txt" ||
	vb_fail "tshark did not flag a broken stream_data_length: $(cat "$VB_TMP/expert-broken.txt")"

echo "PASS: tshark decodes all $nframes golden tsn:// frames as IEEE 1722 with no complaint"
