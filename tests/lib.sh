# tests/lib.sh: helpers for the shell tests, sourced by every tests/t-*.sh.
#
# The runner (tests/run) exports KBUILD (the binary under test) and T (a
# fresh temporary directory, removed afterwards). A script prints
# "ok - DESCRIPTION" or "FAIL - DESCRIPTION" per assertion, diagnostics as
# "# ..." lines, and ends with 'finish', which exits 1 if anything failed.
# KBUILD_STORE, HOME and XDG_DATA_HOME all point below $T.
#
#   ok DESC / fail DESC / diag TEXT / diag_file FILE
#   kb ARGS...                  runs $KBUILD
#   run CMD...                  stdout to $OUT, stderr to $ERR, status in $RC
#   check DESC CMD...           ok if CMD exits 0
#   expect_fail CODE DESC CMD...  ok if CMD exits CODE ("nz": any failure
#                               that is not a crash); $ERR keeps its stderr
#   err_has DESC STR... / out_has DESC STR...   fixed strings in $ERR/$OUT
#   err_lines DESC N            $ERR has N lines
#   same DESC GOT WANT / differ DESC A B / same_file DESC A B
#   truth DESC CMD...           ok if a plain test command succeeds
#   same_tree DESC DIR1 DIR2    diff -r plus types, x bits, link targets
#   listing DIR                 that description of a tree, one line a path
#   is_hash S / sha FILE / sha_str STRING
#   objects [STORE] / nobjects [STORE] / objpath HASH [STORE]
#   flip_byte FILE [OFFSET]     xor one byte (read-only files too)
#   bg_track PID                a background process to kill on exit
#   sancheck DESC FILE...       sanitizer reports in FILEs fail DESC
#   need_tools TOOL...          ends the script with a "skipped" ok line
#                               unless every TOOL is on PATH
#   need_sandbox                the same unless kbuild's sandbox can run here
#   finish
#
# Sanitizers (ASan+UBSan pass): the runner sends ASan/LSan reports to
# files in $KB_SANDIR and makes them exit 86; 'run' (and so every helper
# built on it) fails the command's test on a report there or in its
# stderr (UBSan reports land on stderr).

set -u
: "${KBUILD:?KBUILD must name the kbuild binary (run the tests with tests/run)}"
: "${T:?T must name a temporary directory (run the tests with tests/run)}"
export LC_ALL=C
# never the user's real store: every script works below $T
export KBUILD_STORE="${KBUILD_STORE:-$T/store}"
case "$KBUILD_STORE" in
"$T"/*) ;;
*) echo "FAIL - KBUILD_STORE ($KBUILD_STORE) is outside the test directory $T"; exit 1 ;;
esac
export HOME="$T/home" XDG_DATA_HOME="$T/xdg"
mkdir -p "$HOME"

_kb_nfail=0
_kb_nok=0

ok() {
	_kb_nok=$((_kb_nok + 1))
	printf 'ok - %s\n' "$*"
}
fail() {
	_kb_nfail=$((_kb_nfail + 1))
	printf 'FAIL - %s\n' "$*"
}
diag() { printf '# %s\n' "$*"; }
# prints a file as diagnostics (at most 20 lines)
diag_file() {
	[ -s "$1" ] || return 0
	head -n 20 "$1" | sed 's/^/#   /'
}

kb() { "$KBUILD" "$@"; }

# _kb_sancheck DESC [FILE...]: sanitizer reports written (to $KB_SANDIR,
# where the runner sends ASan/LSan reports, or into the FILEs, where
# stderr went: UBSan reports there) fail the test named DESC
_kb_sancheck() {
	local desc=$1 dir=${KB_SANDIR:-} f found=0
	shift
	for f in "$@"; do
		[ -f "$f" ] || continue
		if grep -qE 'ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)' "$f"; then
			found=1
			fail "sanitizer report while running: $desc"
			diag_file "$f"
		fi
	done
	[ -n "$dir" ] && [ -d "$dir" ] || return $found
	for f in "$dir"/*; do
		[ -e "$f" ] || continue
		found=1
		fail "sanitizer report while running: $desc"
		diag_file "$f"
		mkdir -p "$dir.seen"
		mv "$f" "$dir.seen/"
	done
	return $found
}

# sancheck DESC [FILE...]: the same, for scripts that send stderr to
# files of their own (background runs)
sancheck() { _kb_sancheck "$@"; }

# run CMD...: runs it with stdout in $OUT (file), stderr in $ERR (file),
# exit status in $RC. Does not print anything.
OUT="$T/.out"
ERR="$T/.err"
RC=0
run() {
	RC=0
	"$@" >"$OUT" 2>"$ERR" || RC=$?
	_kb_sancheck "$*" "$ERR" || true
	return 0
}

# check DESC CMD...: ok if CMD exits 0
check() {
	local desc=$1
	shift
	run "$@"
	if [ "$RC" -eq 0 ]; then
		ok "$desc"
	else
		fail "$desc (exit $RC from: $*)"
		diag_file "$ERR"
	fi
	[ "$RC" -eq 0 ]
}

# expect_fail CODE DESC CMD...: ok if CMD exits with CODE ("nz": any
# non-zero status except a crash). stderr stays in $ERR for further
# assertions (see err_has).
expect_fail() {
	local code=$1 desc=$2
	shift 2
	run "$@"
	local good=0
	if [ "$code" = nz ]; then
		[ "$RC" -ne 0 ] && [ "$RC" -lt 128 ] && [ "$RC" -ne 86 ] && good=1
	else
		[ "$RC" -eq "$code" ] && good=1
	fi
	if [ $good = 1 ]; then
		ok "$desc"
	else
		fail "$desc (exit $RC, wanted $code, from: $*)"
		diag_file "$ERR"
	fi
	[ $good = 1 ]
}

# err_has DESC PATTERN...: every fixed string PATTERN is in $ERR
err_has() {
	local desc=$1 p miss=
	shift
	for p in "$@"; do
		grep -qF -- "$p" "$ERR" || miss="$miss '$p'"
	done
	if [ -z "$miss" ]; then
		ok "$desc"
	else
		fail "$desc (stderr lacks$miss)"
		diag_file "$ERR"
	fi
}

# err_lines DESC N: $ERR has exactly N lines
err_lines() {
	local n
	n=$(wc -l <"$ERR")
	if [ "$n" -eq "$2" ]; then
		ok "$1"
	else
		fail "$1 (stderr has $n lines, wanted $2)"
		diag_file "$ERR"
	fi
}

# out_has DESC PATTERN...: every fixed string PATTERN is in $OUT
out_has() {
	local desc=$1 p miss=
	shift
	for p in "$@"; do
		grep -qF -- "$p" "$OUT" || miss="$miss '$p'"
	done
	if [ -z "$miss" ]; then
		ok "$desc"
	else
		fail "$desc (stdout lacks$miss)"
		diag_file "$OUT"
	fi
}

# same DESC A B: the strings are equal
same() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		fail "$1 (got '$2', wanted '$3')"
	fi
}

# differ DESC A B: the strings differ
differ() {
	if [ "$2" != "$3" ]; then
		ok "$1"
	else
		fail "$1 (both are '$2')"
	fi
}

# same_file DESC A B: the files have equal content
same_file() {
	if cmp -s -- "$2" "$3"; then
		ok "$1"
	else
		fail "$1 ($2 and $3 differ)"
		diff -- "$2" "$3" 2>&1 | head -n 20 | sed 's/^/#   /'
	fi
}

# truth DESC CMD...: ok if CMD (a plain test, not kbuild) succeeds
truth() {
	local desc=$1
	shift
	if "$@"; then
		ok "$desc"
	else
		fail "$desc"
	fi
}

# is_hash STRING: 64 lowercase hex digits
is_hash() { [[ $1 =~ ^[0-9a-f]{64}$ ]]; }

sha() { sha256sum <"$1" | cut -c1-64; }
sha_str() { printf '%s' "$1" | sha256sum | cut -c1-64; }

# a description of a directory tree, one entry per line, independent of
# times, owners and mode bits other than the owner's x: path (repr of the
# raw bytes), type, and content hash, symlink target or nothing
listing() {
	python3 - "$1" <<'EOF'
import hashlib, os, stat, sys
root = os.fsencode(sys.argv[1])
out = []
for dp, dns, fns in os.walk(root):
    for n in dns + fns:
        p = os.path.join(dp, n)
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        m = st.st_mode
        if stat.S_ISLNK(m):
            d = "l " + repr(os.readlink(p))
        elif stat.S_ISDIR(m):
            d = "d"
        elif stat.S_ISREG(m):
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()
            d = ("x " if m & 0o100 else "f ") + h
        else:
            d = "other %o" % m
        out.append(repr(rel) + " " + d)
for line in sorted(out):
    print(line)
EOF
}

# same_tree DESC A B: diff -r and the listing agree
same_tree() {
	local d
	if ! d=$(diff -r --no-dereference -- "$2" "$3" 2>&1); then
		fail "$1 (diff -r: $(printf '%s' "$d" | head -n 3 | tr '\n' ' '))"
		return 1
	fi
	if [ "$(listing "$2")" != "$(listing "$3")" ]; then
		fail "$1 (listings differ)"
		diff <(listing "$2") <(listing "$3") | head -n 20 | sed 's/^/#   /'
		return 1
	fi
	ok "$1"
}

# every file below the store's objects/ (staged leftovers too), one
# relative path a line, sorted: a snapshot to compare
objects() { (cd "${1:-$KBUILD_STORE}/objects" && find . -type f | LC_ALL=C sort); }
# the number of object files (each executable variant counts)
nobjects() { find "${1:-$KBUILD_STORE}/objects" -type f ! -name '.*' | wc -l; }
# the refs, as 'ref list' prints them
refs_of() { "$KBUILD" --store "${1:-$KBUILD_STORE}" store ref list 2>&1; }

# path of the object file for a hash (the plain variant, else .x)
objpath() {
	local s=${2:-$KBUILD_STORE} h=$1
	if [ -e "$s/objects/${h:0:2}/${h:2}" ]; then
		echo "$s/objects/${h:0:2}/${h:2}"
	else
		echo "$s/objects/${h:0:2}/${h:2}.x"
	fi
}

# flips one byte (xor 0x01) at OFFSET (default: the middle) of FILE
flip_byte() {
	python3 - "$1" "${2:--1}" <<'EOF'
import os, sys
path, off = sys.argv[1], int(sys.argv[2])
mode = os.stat(path).st_mode
os.chmod(path, mode | 0o200)
with open(path, "r+b") as f:
    data = bytearray(f.read())
    if off < 0:
        off = len(data) // 2
    data[off] ^= 1
    f.seek(0)
    f.write(data)
os.chmod(path, mode)
EOF
}

# background processes: on exit, whatever the script started in the
# background and has not waited for yet is killed, by its pid. bg_track
# PID marks one explicitly (kept only while it is still a job of this
# shell: a pid that was waited for may belong to someone else by then).
_kb_bg=()
bg_track() { _kb_bg+=("$@"); }
_kb_live() { # the tracked pids and the jobs that are still jobs
	local p live
	live=" $(jobs -p | tr '\n' ' ') "
	for p in "${_kb_bg[@]}" $live; do
		case "$live" in *" $p "*) echo "$p" ;; esac
	done | sort -u
}
_kb_cleanup() {
	local p pids
	pids=$(_kb_live)
	[ -n "$pids" ] || return 0
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	sleep 0.2
	for p in $(_kb_live); do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap _kb_cleanup EXIT

need_tools() {
	local tool
	for tool in "$@"; do
		if ! command -v "$tool" >/dev/null; then
			ok "skipped: no $tool (.ci/setup installs it)"
			finish
		fi
	done
}

need_sandbox() {
	if [ "$(id -u)" != 0 ] && ! unshare -Ur true 2>/dev/null; then
		ok "skipped: no user namespaces here, so no sandbox"
		finish
	fi
}

# qemu with UEFI Secure Boot on (OVMF with Microsoft's keys, as shipped by
# Debian's ovmf); OVMF_VARS_MOK makes such a variable store with CERT.der
# as an enrolled MOK. SB_CODE/SB_VARS exist when the firmware is there.
SB_CODE=/usr/share/OVMF/OVMF_CODE_4M.ms.fd
SB_VARS=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
sb_qemu() { # VARS-FILE ISO LOG: boots ISO (512 MiB; at most 180 s)
	timeout 180 qemu-system-x86_64 -nographic -serial mon:stdio -no-reboot -m 512 \
		-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on \
		-drive "if=pflash,format=raw,unit=0,file=$SB_CODE,readonly=on" \
		-drive "if=pflash,format=raw,unit=1,file=$1" -cdrom "$2" </dev/null >"$3" 2>&1
}
ovmf_vars_mok() { # CERT.der OUT
	python3 "$(dirname "${BASH_SOURCE[0]}")/mok-vars.py" "$SB_VARS" "$1" "$2"
}

finish() {
	_kb_sancheck "(end of script)" || true
	diag "$_kb_nok ok, $_kb_nfail failed"
	[ "$_kb_nfail" -eq 0 ] && exit 0
	exit 1
}
