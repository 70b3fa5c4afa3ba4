#!/usr/bin/env bash
# The parser fuzz targets (tests/fuzz/, libFuzzer with ASan+UBSan, built by
# 'ninja fuzz' with Debian's clang), each run for a bounded time on a copy
# of its seed corpus: no crash, no leak, no timeout, no out-of-memory.
#
# Runs once per test pass: only for the normal variant (the targets carry
# their own sanitizers). KBUILD_FUZZ_SECONDS (default 30) bounds each
# target. Work happens in a temporary directory ($T/fuzz under tests/run,
# else one made with mktemp and removed unless something failed); nothing
# is written into the repository except build/fuzz/.
set -u
export LC_ALL=C

case "${KBUILD:-}" in
*/asan/*)
	echo "ok - fuzzing runs once, in the normal pass"
	exit 0
	;;
esac

root=${KBUILD_TEST_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
secs=${KBUILD_FUZZ_SECONDS:-30}
case $secs in '' | *[!0-9]* | 0)
	echo "FAIL - KBUILD_FUZZ_SECONDS must be a positive number of seconds, not '$secs'"
	exit 1
	;;
esac

if [ -n "${T:-}" ]; then
	work=$T/fuzz
	own=0
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/kbuild-fuzz.XXXXXX") || exit 1
	own=1
fi
mkdir -p "$work"
nfail=0

fail() {
	nfail=$((nfail + 1))
	printf 'FAIL - %s\n' "$*"
}
# diag FILE [N]: the first N (20) lines of FILE as '# ' lines
diag() { sed -n "1,${2:-20}p" "$1" | sed 's/^/#   /'; }

if ! command -v clang >/dev/null; then
	echo "FAIL - clang is not installed (Debian: apt-get install clang libclang-rt-14-dev, or .ci/setup)"
	exit 1
fi
if ! ninja -C "$root" fuzz >"$work/build.log" 2>&1; then
	fail "ninja fuzz builds the fuzz targets"
	tail -n 20 "$work/build.log" | sed 's/^/#   /'
	exit 1
fi
echo "ok - ninja fuzz builds the fuzz targets"

# target corpus dictionary
targets=(
	"fuzz_recipe recipe recipe"
	"fuzz_recipe_load recipe recipe"
	"fuzz_lock lock lock"
	"fuzz_lock_roundtrip lock lock"
	"fuzz_diff diff diff"
)
for t in "${targets[@]}"; do
	read -r name corpus dict <<<"$t"
	bin=$root/build/fuzz/$name
	d=$work/$name
	mkdir -p "$d/corpus" "$d/artifacts" "$d/tmp"
	cp "$root/tests/fuzz/corpus/$corpus/"* "$d/corpus/"
	dictarg=()
	[ -f "$root/tests/fuzz/$dict.dict" ] && dictarg=(-dict="$root/tests/fuzz/$dict.dict")
	rc=0
	(
		cd "$d" || exit 1
		export TMPDIR="$d/tmp" # where the targets keep their scratch files
		export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
		unset LSAN_OPTIONS
		exec "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
			-print_final_stats=1 -artifact_prefix="$d/artifacts/" "${dictarg[@]}" \
			"$d/corpus"
	) >"$d/log" 2>&1 || rc=$?
	runs=$(sed -n 's/^Done \([0-9][0-9]*\) runs.*/\1/p' "$d/log" | tail -n 1)
	arts=$(ls "$d/artifacts" 2>/dev/null)
	if [ $rc -eq 0 ] && [ -n "$runs" ] && [ -z "$arts" ]; then
		echo "ok - $name: $runs runs, no crash or leak"
		continue
	fi
	art=$(ls -d "$d/artifacts/"* 2>/dev/null | head -n 1)
	fail "$name: exit status $rc${art:+, input saved as $art}"
	# the report: from the sanitizer's or libFuzzer's first ERROR/runtime
	# error line on, plus the input as base64 when libFuzzer printed it
	first=$(grep -nE '^==[0-9]+==ERROR|runtime error:|^ERROR: libFuzzer|^fuzz_' "$d/log" |
		head -n 1 | cut -d: -f1)
	if [ -n "$first" ]; then
		tail -n +"$first" "$d/log" | grep -vE '^ *#[0-9]+ 0x[0-9a-f]+ in (fuzzer::|main|__libc|_start)|^stat::' |
			head -n 25 | sed 's/^/#   /'
	else
		tail -n 25 "$d/log" | sed 's/^/#   /'
	fi
	grep -m1 '^Base64: ' "$d/log" | sed 's/^/#   /'
done

if [ $nfail -gt 0 ]; then
	[ $own = 1 ] && echo "# kept $work"
	exit 1
fi
[ $own = 1 ] && rm -rf "$work"
exit 0
