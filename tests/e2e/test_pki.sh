#!/bin/bash
# tools/vb-pki, checked with the openssl CLI: the CA and node certificates
# have the extensions tls:// links rely on and verify against their CA;
# an expired certificate, a not yet valid one, a foreign CA's and a wrong
# name fail verification (the certificate side of adversarial case 36);
# pins equal the SPKI SHA-256 computed by openssl; keys are mode 0600;
# refusals are clear and leave nothing behind (run times are printed).
# Needs no root and no build (VB_SRC: source tree).
set -euo pipefail

SRC=${VB_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PKI=$SRC/tools/vb-pki
T=$(mktemp -d /tmp/vb-e2e-test_pki.XXXXXX)
cleanup() {
	if [[ ${VB_KEEP:-} == 1 ]]; then
		echo "kept $T" >&2
	else
		rm -rf -- "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# run_pki ARGS...: runs vb-pki, fails the test if it fails. How long it took
# goes to stderr for the record: speed is not a pass/fail matter (a loaded
# 2-core CI machine once took 1.6 s for a demo PKI).
run_pki() {
	local t0 ms out
	t0=${EPOCHREALTIME/./}
	out=$("$PKI" "$@" 2>&1) || fail "vb-pki $*: $out"
	ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
	echo "vb-pki $1: $ms ms" >&2
	printf '%s\n' "$out"
}

# refused WANT_RC WANT_TEXT ARGS...: vb-pki must fail with that status and say that.
refused() {
	local want_rc=$1 want=$2 out rc=0
	shift 2
	out=$("$PKI" "$@" 2>&1) || rc=$?
	((rc == want_rc)) || fail "vb-pki $*: exit status $rc, want $want_rc ($out)"
	[[ $out == *"$want"* ]] || fail "vb-pki $*: said '$out', want '$want'"
}

mode_of() { stat -c %a "$1"; }

# ext CERT NAME: the extension's lines, one string.
ext() { openssl x509 -in "$1" -noout -ext "$2" 2>/dev/null | tr -s ' \n' ' '; }

# verify_fails CA CERT WANT [OPTS...]: openssl verify must refuse CERT with WANT.
verify_fails() {
	local ca=$1 cert=$2 want=$3 out
	shift 3
	out=$(openssl verify -CAfile "$ca" "$@" "$cert" 2>&1) && fail "$cert verified against $ca"
	[[ $out == *"$want"* ]] || fail "verify $cert: '$out', want '$want'"
}

# valid_days CERT N: CERT expires N days from now (give or take a day).
valid_days() {
	openssl x509 -in "$1" -noout -checkend $((($2 - 1) * 86400)) >/dev/null ||
		fail "$1 expires before $2 days: $(openssl x509 -in "$1" -noout -enddate)"
	! openssl x509 -in "$1" -noout -checkend $((($2 + 1) * 86400)) >/dev/null ||
		fail "$1 expires after $2 days: $(openssl x509 -in "$1" -noout -enddate)"
}

check_help() {
	local out
	out=$("$PKI" --help) || fail "--help failed"
	for w in "ca DIR" "node DIR NAME" "pin CERT" "demo DIR" --not-before --no-san; do
		[[ $out == *"$w"* ]] || fail "--help does not mention '$w'"
	done
	refused 2 "unknown command 'frob'" frob
	refused 2 "a command is missing"
	echo "ok help: usage lists every command; unknown and missing commands refused"
}

check_ca() {
	local d=$T/a
	run_pki ca "$d" --name "unit CA" --days 30 >/dev/null
	[[ $(mode_of "$d/ca.key") == 600 ]] || fail "ca.key mode $(mode_of "$d/ca.key")"
	[[ $(mode_of "$d/ca.pem") == 644 ]] || fail "ca.pem mode $(mode_of "$d/ca.pem")"
	[[ $(openssl x509 -in "$d/ca.pem" -noout -subject) == "subject=CN = unit CA" ]] ||
		fail "CA subject: $(openssl x509 -in "$d/ca.pem" -noout -subject)"
	[[ $(ext "$d/ca.pem" basicConstraints) == *"critical CA:TRUE"* ]] ||
		fail "CA basicConstraints: $(ext "$d/ca.pem" basicConstraints)"
	[[ $(ext "$d/ca.pem" keyUsage) == *"critical Certificate Sign, CRL Sign"* ]] ||
		fail "CA keyUsage: $(ext "$d/ca.pem" keyUsage)"
	openssl pkey -in "$d/ca.key" -noout -text | grep -q "NIST CURVE: P-256" ||
		fail "CA key is not EC P-256"
	openssl verify -CAfile "$d/ca.pem" "$d/ca.pem" >/dev/null || fail "CA does not verify itself"
	valid_days "$d/ca.pem" 30
	refused 1 "ca.pem exists; use --force" ca "$d"
	echo "ok ca: P-256 key 0600, CA:TRUE critical, keyCertSign+cRLSign, self-verifies, not overwritten"
}

check_node() {
	local d=$T/a c
	run_pki node "$d" ecu-a >/dev/null
	c=$d/ecu-a.pem
	[[ $(mode_of "$d/ecu-a.key") == 600 ]] || fail "ecu-a.key mode $(mode_of "$d/ecu-a.key")"
	[[ $(mode_of "$c") == 644 ]] || fail "ecu-a.pem mode $(mode_of "$c")"
	[[ $(openssl verify -CAfile "$d/ca.pem" "$c") == "$c: OK" ]] || fail "ecu-a does not verify"
	for p in sslserver sslclient; do
		openssl verify -CAfile "$d/ca.pem" -purpose "$p" "$c" >/dev/null ||
			fail "ecu-a is not fit for $p"
	done
	openssl verify -CAfile "$d/ca.pem" -verify_hostname ecu-a "$c" >/dev/null ||
		fail "ecu-a does not verify as ecu-a"
	verify_fails "$d/ca.pem" "$c" "hostname mismatch" -verify_hostname ecu-b
	[[ $(ext "$c" subjectAltName) == *"Subject Alternative Name: DNS:ecu-a "* ]] ||
		fail "ecu-a SAN: $(ext "$c" subjectAltName)"
	[[ $(openssl x509 -in "$c" -noout -subject) == "subject=CN = ecu-a" ]] || fail "ecu-a subject"
	valid_days "$c" 365
	[[ $(ext "$c" extendedKeyUsage) == *"TLS Web Server Authentication, TLS Web Client Authentication"* ]] ||
		fail "ecu-a EKU: $(ext "$c" extendedKeyUsage)"
	[[ $(ext "$c" keyUsage) == *"critical Digital Signature "* ]] || fail "ecu-a keyUsage: $(ext "$c" keyUsage)"
	[[ $(ext "$c" basicConstraints) == *"CA:FALSE"* ]] || fail "ecu-a basicConstraints"
	openssl pkey -in "$d/ecu-a.key" -noout -text | grep -q "NIST CURVE: P-256" ||
		fail "ecu-a key is not EC P-256"
	[[ $(openssl x509 -in "$c" -noout -pubkey) == "$(openssl pkey -in "$d/ecu-a.key" -pubout)" ]] ||
		fail "ecu-a.key does not belong to ecu-a.pem"

	run_pki node "$d" bare --no-san >/dev/null
	[[ $(ext "$d/bare.pem" subjectAltName) != *DNS:* ]] || fail "--no-san still has a SAN"
	openssl verify -CAfile "$d/ca.pem" "$d/bare.pem" >/dev/null || fail "bare does not verify"

	mkdir -p "$T/other"
	run_pki node "$T/other" ecu-c --ca "$d" --days 7 >/dev/null
	valid_days "$T/other/ecu-c.pem" 7
	[[ -f $T/other/ecu-c.pem && ! -e $T/other/ca.pem ]] || fail "--ca: files in the wrong place"
	openssl verify -CAfile "$d/ca.pem" "$T/other/ecu-c.pem" >/dev/null || fail "--ca: ecu-c does not verify"
	echo "ok node: P-256 key 0600, CN and SAN, server+client EKU, digitalSignature, verifies; wrong name, --no-san, --ca"
}

check_validity() {
	local d=$T/a
	run_pki node "$d" old --not-before 2020-01-01 --not-after 2020-06-01 >/dev/null
	[[ $(openssl x509 -in "$d/old.pem" -noout -enddate) == "notAfter=Jun  1 00:00:00 2020 GMT" ]] ||
		fail "old: $(openssl x509 -in "$d/old.pem" -noout -dates)"
	verify_fails "$d/ca.pem" "$d/old.pem" "certificate has expired"
	run_pki node "$d" later --not-before "+10 days" >/dev/null
	verify_fails "$d/ca.pem" "$d/later.pem" "certificate is not yet valid"
	run_pki node "$d" gt --not-before 20200101000000Z --days 2 >/dev/null
	[[ $(openssl x509 -in "$d/gt.pem" -noout -dates | tr '\n' ' ') == "notBefore=Jan  1 00:00:00 2020 GMT notAfter=Jan  3 00:00:00 2020 GMT " ]] ||
		fail "gt: $(openssl x509 -in "$d/gt.pem" -noout -dates)"
	refused 2 "--not-after must be later than --not-before" node "$d" x --not-before 2021-01-01 --not-after 2020-01-01
	refused 2 "date 'someday': not understood" node "$d" x --not-after someday
	refused 2 "--days and --not-after exclude each other" node "$d" x --days 3 --not-after 2030-01-01
	refused 2 "--days '0'" node "$d" x --days 0
	echo "ok validity: expired -> 'certificate has expired', future -> 'not yet valid', explicit dates, bad dates refused"
}

check_demo() {
	local d=$T/demo
	run_pki demo "$d" >/dev/null
	for f in ca ecu-a ecu-b foreign/ca foreign/mallory; do
		[[ -s $d/$f.pem ]] || fail "demo: no $f.pem"
		[[ $(mode_of "$d/$f.key") == 600 ]] || fail "demo: $f.key mode $(mode_of "$d/$f.key")"
	done
	openssl verify -CAfile "$d/ca.pem" "$d/ecu-a.pem" "$d/ecu-b.pem" >/dev/null || fail "demo nodes do not verify"
	openssl verify -CAfile "$d/foreign/ca.pem" "$d/foreign/mallory.pem" >/dev/null ||
		fail "mallory does not verify against its own CA"
	verify_fails "$d/ca.pem" "$d/foreign/mallory.pem" "unable to get local issuer certificate"
	verify_fails "$d/foreign/ca.pem" "$d/ecu-a.pem" "unable to get local issuer certificate"
	[[ $(openssl x509 -in "$d/ca.pem" -noout -fingerprint) != "$(openssl x509 -in "$d/foreign/ca.pem" -noout -fingerprint)" ]] ||
		fail "foreign CA is the same CA"
	refused 1 "exists; use --force" demo "$d"
	run_pki demo "$d" --force >/dev/null
	echo "ok demo: CA, ecu-a, ecu-b verify; foreign CA's mallory fails against ours and ours against it"
}

# The pin the way docs/security.md tells an operator to compute it by hand.
openssl_pin() {
	openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform der |
		openssl dgst -sha256 -binary | base64
}

check_pins() {
	local d=$T/demo f out want hex seen=()
	for f in ca ecu-a ecu-b foreign/mallory; do
		out=$(run_pki pin "$d/$f.pem")
		want=$(openssl_pin "$d/$f.pem")
		[[ $(sed -n 1p <<<"$out") == "sha256//$want" ]] || fail "pin $f: '$out', want sha256//$want"
		hex=$(base64 -d <<<"$want" | od -An -v -tx1 | tr -d ' \n')
		[[ $(sed -n 2p <<<"$out") == "$hex" ]] || fail "pin $f hex: '$out', want $hex"
		[[ $(wc -l <<<"$out") == 2 && ${#want} == 44 && ${#hex} == 64 ]] || fail "pin $f: format '$out'"
		seen+=("$want")
	done
	[[ $(printf '%s\n' "${seen[@]}" | sort -u | wc -l) == 4 ]] || fail "two certificates share a pin"
	refused 1 "cannot read it" pin "$T/nonexistent.pem"
	refused 1 "as a PEM certificate" pin "$d/ecu-a.key"
	echo "ok pin: sha256//BASE64 and hex equal openssl's SPKI SHA-256 for 4 certificates"
}

check_refusals() {
	local d=$T/a
	refused 2 "node name 'ca' would overwrite" node "$d" ca
	refused 2 "node name 'a/b'" node "$d" a/b
	refused 2 "node name '.x'" node "$d" .x
	refused 2 "want DIR and NAME" node "$d"
	refused 1 "no CA in $T/none" node "$T/none" x
	refused 1 "ecu-a.pem exists" node "$d" ecu-a
	refused 2 "CA name 'a/b'" ca "$T/b" --name a/b
	# A CA key that is not the CA certificate's: openssl refuses, nothing is left behind.
	mkdir "$T/mix"
	cp "$d/ca.pem" "$T/mix/"
	cp "$T/demo/foreign/ca.key" "$T/mix/"
	refused 1 "CA certificate and CA private key do not match" node "$T/mix" x
	[[ $(find "$T" -name '.vb-pki.*' | wc -l) == 0 ]] || fail "staging directories left: $(find "$T" -name '.vb-pki.*')"
	[[ ! -e $T/mix/x.pem && ! -e $T/mix/x.key ]] || fail "a failed run left files"
	run_pki node "$d" ecu-a --force >/dev/null
	echo "ok refusals: bad names, missing CA, existing files, mismatched CA key; nothing left behind"
}

main() {
	command -v openssl >/dev/null || fail "openssl CLI missing (apt-get install openssl)"
	[[ -x $PKI ]] || fail "$PKI missing or not executable"
	check_help
	check_ca
	check_node
	check_validity
	check_demo
	check_pins
	check_refusals
	echo "PASS: test_pki"
}

main "$@"
