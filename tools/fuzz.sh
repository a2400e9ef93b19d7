#!/bin/bash
# Builds the libFuzzer targets (tests/fuzz) into build-fuzz with clang-14 and
# -DVB_FUZZ=ON, then runs each TARGET (default: all) for SECONDS (default 60)
# in one job. Inputs that add coverage go to build-fuzz/corpus/<target>/ (the
# seeds in tests/fuzz/corpus/ are only read), crashes to
# build-fuzz/crashes/<target>/, libFuzzer's log to build-fuzz/logs/<target>.log.
# Prints executions and findings per target; exits 1 if anything was found.
#
#   tools/fuzz.sh [SECONDS] [TARGET...]
#   e.g. nice -n 10 tools/fuzz.sh 600 fuzz_vu_stream fuzz_wire
# Environment: CC (default clang-14), BUILD_DIR (default build-fuzz),
# FUZZ_ARGS (more libFuzzer flags).
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$SRC/build-fuzz}
# Every target of tests/fuzz/CMakeLists.txt's VB_FUZZ_TARGETS (one list, there).
mapfile -t ALL < <(sed -n '/^set(VB_FUZZ_TARGETS/,/)/p' "$SRC/tests/fuzz/CMakeLists.txt" |
	tr -d '()' | tr ' ' '\n' | grep '^fuzz_')

secs=60
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
	secs=$1
	shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
	[[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target $t (${ALL[*]})" >&2; exit 2; }
done

cmake -S "$SRC" -B "$BUILD" -DCMAKE_C_COMPILER="${CC:-clang-14}" -DVB_FUZZ=ON -DVB_TESTS=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" >/dev/null

# Executions: the final stats line, or the last status line if the run stopped early.
execs_of() {
	local n
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$1" | tail -1)
	[[ -n $n ]] || n=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$1" | tail -1)
	echo "${n:-0}"
}

found=0
for t in "${targets[@]}"; do
	corpus=$BUILD/corpus/$t crashes=$BUILD/crashes/$t logs=$BUILD/logs
	work=$logs/$t.run
	mkdir -p "$corpus" "$crashes" "$work"
	before=$(find "$crashes" -type f | wc -l)
	# -jobs=1: one worker writes fuzz-0.log into the current directory (one per
	# target, so that two fuzz.sh runs side by side keep their logs apart).
	(cd "$work" && rm -f fuzz-0.log &&
		"$BUILD/tests/fuzz/$t" -jobs=1 -workers=1 -max_total_time="$secs" -timeout=25 \
			-print_final_stats=1 -artifact_prefix="$crashes/" ${FUZZ_ARGS:-} \
			"$corpus" "$SRC/tests/fuzz/corpus/$t" >/dev/null 2>&1 || true)
	mv -f "$work/fuzz-0.log" "$logs/$t.log" 2>/dev/null || true
	rmdir "$work" 2>/dev/null || true
	after=$(find "$crashes" -type f | wc -l)
	n=$(execs_of "$logs/$t.log")
	size=$(find "$corpus" "$SRC/tests/fuzz/corpus/$t" -type f | wc -l)
	if [[ $after -gt $before ]]; then
		found=1
		printf '%-16s %10s execs in %ss, corpus %s: FOUND %d new input(s) in %s (log %s)\n' \
			"$t" "$n" "$secs" "$size" $((after - before)) "$crashes" "$logs/$t.log"
	else
		printf '%-16s %10s execs in %ss, corpus %s: nothing found\n' "$t" "$n" "$secs" "$size"
	fi
done
exit $found
