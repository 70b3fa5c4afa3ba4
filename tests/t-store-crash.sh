#!/usr/bin/env bash
# kill -9 at random moments: 'store add --ref', 'store gc' and 'store
# import' are killed mid-work, round after round, in one store. After each
# kill the store must be fsck-clean, every ref must be absent or hold its
# right value (and refs set by runs that finished must still be there),
# and every ref must check out.
#
# KBUILD_CRASH_ROUNDS overrides the round count (default 100; 50 for the
# slower ASan build).
. "$(dirname "$0")/lib.sh"

S=$KBUILD_STORE
REF=$T/refstore # clean adds, for the expected hashes
case "$KBUILD" in
*asan*) rounds=${KBUILD_CRASH_ROUNDS:-50} ;;
*) rounds=${KBUILD_CRASH_ROUNDS:-100} ;;
esac
V=4 # tree variants

# ---- inputs: V trees of 300 small files (half shared between variants)
# ---- and a 3 MB file each, and a bundle of two of them
python3 - "$T/trees" "$V" <<'EOF'
import os, sys, random
root, nv = sys.argv[1], int(sys.argv[2])
for v in range(nv):
    base = os.path.join(root, "v%d" % v)
    rnd = random.Random(v)
    for d in range(10):
        dd = os.path.join(base, "dir%02d" % d, "sub")
        os.makedirs(dd)
        for f in range(30):
            shared = f % 2 == 0
            tag = "shared" if shared else "v%d" % v
            with open(os.path.join(dd, "f%02d" % f), "w") as fh:
                fh.write("%s %d %d\n" % (tag, d, f) * (1 + f))
    os.makedirs(os.path.join(base, "empty", "dir"))
    with open(os.path.join(base, "big"), "wb") as fh:
        fh.write(os.urandom(3 << 20))
    os.symlink("big", os.path.join(base, "link"))
    os.chmod(os.path.join(base, "dir00", "sub", "f01"), 0o755)
EOF
declare -A want # ref name -> expected hash
declare -a HV
for v in $(seq 0 $((V - 1))); do
	HV[$v]=$("$KBUILD" --store "$REF" store add "$T/trees/v$v") || { fail "reference add of variant $v"; finish; }
done
"$KBUILD" --store "$REF" store ref set b/0 "${HV[0]}" &&
	"$KBUILD" --store "$REF" store ref set b/1 "${HV[1]}" &&
	"$KBUILD" -q --store "$REF" store export -o "$T/bundle.kbb" b/0 b/1 ||
	{ fail "could not prepare the bundle"; finish; }
ok "prepared $V trees and a bundle (expected hashes from a clean store)"

# How long each operation takes here, run to completion in a scratch
# store: the kill comes at a random moment within that time (at most
# 150 ms), so most kills land mid-work on slow and fast machines alike.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
timed() { # VAR CMD...: runs CMD, stores its duration in ms in VAR
	local var=$1 t0
	shift
	t0=$(now_ms)
	if ! "$@" >/dev/null 2>"$T/cal.err"; then
		fail "calibration run failed: $*"
		diag_file "$T/cal.err"
	fi
	printf -v "$var" %d $(($(now_ms) - t0))
}
CAL=$T/calstore
timed cal_add "$KBUILD" --store "$CAL" store add --ref r/1 "$T/trees/v2"
timed cal_import "$KBUILD" --store "$CAL" store import "$T/bundle.kbb"
"$KBUILD" --store "$CAL" store ref delete b/0 && "$KBUILD" --store "$CAL" store ref delete b/1
timed cal_gc "$KBUILD" --store "$CAL" store gc
rm -rf "$CAL"
declare -A span
for op in add import gc; do
	c=cal_$op
	sp=$((${!c} * 3 / 2))
	[ $sp -lt 10 ] && sp=10
	[ $sp -gt 150 ] && sp=150
	span[$op]=$sp
done
diag "a full run takes: add ${cal_add} ms, import ${cal_import} ms, gc ${cal_gc} ms;" \
	"first kill windows 0-${span[add]}, 0-${span[import]}, 0-${span[gc]} ms"

check "initialise the store under test" kb store add --ref r/base "$T/trees/v0"
same "...with the expected hash" "$(cat "$OUT")" "${HV[0]}"
want[r/base]=${HV[0]}
declare -A must # refs that finished runs set: must still exist

# verify ROUND: fsck, refs, checkouts
verify() {
	local round=$1 bad=0 name type hash line
	run kb store fsck
	if [ "$RC" -ne 0 ]; then
		fail "round $round: fsck exits 0 after kill -9 (exit $RC)"
		diag_file "$OUT"
		diag_file "$ERR"
		return 1
	fi
	run kb store ref list
	if [ "$RC" -ne 0 ]; then
		fail "round $round: ref list works after kill -9"
		diag_file "$ERR"
		return 1
	fi
	cp "$OUT" "$T/refs"
	local -A seen=() checked=()
	while read -r name type hash; do
		seen[$name]=1
		if [ -z "${want[$name]:-}" ]; then
			fail "round $round: unexpected ref '$name'"
			bad=1
		elif [ "$type $hash" != "tree ${want[$name]}" ]; then
			fail "round $round: ref '$name' is '$type $hash', not tree ${want[$name]}"
			bad=1
		elif [ -z "${checked[$hash]:-}" ]; then
			# every ref names one of a few trees: check each tree out
			# once per round, through the ref
			checked[$hash]=1
			rm -rf "$T/co"
			run kb store checkout "$name" "$T/co"
			if [ "$RC" -ne 0 ]; then
				fail "round $round: checkout of ref '$name' after kill -9"
				diag_file "$ERR"
				bad=1
			elif [ "$(find "$T/co" -type f | wc -l)" -ne 301 ] ||
				! cmp -s "$T/co/big" "$T/trees/v${vof[$hash]}/big"; then
				fail "round $round: checkout of ref '$name' is incomplete"
				bad=1
			fi
		fi
	done <"$T/refs"
	for name in "${!must[@]}"; do
		if [ -z "${seen[$name]:-}" ]; then
			fail "round $round: ref '$name', set by a run that finished, is gone"
			bad=1
		fi
	done
	return $bad
}
declare -A vof
for v in $(seq 0 $((V - 1))); do vof[${HV[$v]}]=$v; done

killed=0 finished=0 failed_runs=0 good=0
declare -A opkilled=() opcount=()
for round in $(seq 1 "$rounds"); do
	op=$((RANDOM % 3))
	case $op in
	0) # add a variant under a new ref; preferably one no ref holds, so
		# that the add has objects to write (a gc may have taken them)
		kb store ref list >"$T/held" 2>/dev/null
		free=()
		for v in $(seq 0 $((V - 1))); do
			grep -q "${HV[$v]}" "$T/held" || free+=("$v")
		done
		if [ ${#free[@]} -gt 0 ]; then
			v=${free[$((RANDOM % ${#free[@]}))]}
		else
			v=$((RANDOM % V))
		fi
		name=r/$round
		want[$name]=${HV[$v]}
		opname=add
		cmd=(store add --ref "$name" "$T/trees/v$v")
		;;
	1) # gc, after dropping most refs so that it has work to do
		opname=gc
		run kb store ref list
		cut -d' ' -f1 "$OUT" | sort -t/ -k2 -n | head -n -2 >"$T/drop"
		while read -r name; do
			[ "$name" = r/base ] && continue
			kb store ref delete "$name" || fail "round $round: ref delete $name"
			unset "must[$name]"
			# an r/N that comes back is a bug; b/* come back by import
			[ "${name#b/}" != "$name" ] || unset "want[$name]"
		done <"$T/drop"
		cmd=(store gc)
		;;
	2) # import the bundle
		opname=import
		want[b/0]=${HV[0]}
		want[b/1]=${HV[1]}
		cmd=(store import "$T/bundle.kbb")
		;;
	esac
	opcount[$opname]=$((${opcount[$opname]:-0} + 1))
	"$KBUILD" "${cmd[@]}" >"$T/bg.out" 2>"$T/bg.err" &
	pid=$!
	bg_track "$pid"
	ms=$((RANDOM % ${span[$opname]}))
	sleep "$(printf '0.%03d' "$ms")"
	kill -KILL "$pid" 2>/dev/null
	rc=0
	{ wait "$pid"; } 2>/dev/null || rc=$?
	# keep each op's kill window about 1.4 times what the op takes here
	# (about 70% of kills mid-work): longer after a kill, shorter after
	# a run that finished first
	sp=${span[$opname]}
	if [ $rc -eq 137 ]; then
		sp=$((sp + sp / 10 + 1))
		[ $sp -gt 150 ] && sp=150
	else
		sp=$((sp - sp / 5))
		[ $sp -lt 5 ] && sp=5
	fi
	span[$opname]=$sp
	if [ $rc -eq 137 ]; then
		killed=$((killed + 1))
		opkilled[$opname]=$((${opkilled[$opname]:-0} + 1))
	elif [ $rc -eq 0 ]; then
		finished=$((finished + 1))
		case $opname in
		add) must[$name]=1 ;;
		import) must[b/0]=1 must[b/1]=1 ;;
		esac
	else
		failed_runs=$((failed_runs + 1))
		fail "round $round: '${cmd[*]}' failed on its own (exit $rc)"
		diag_file "$T/bg.err"
	fi
	sancheck "round $round: ${cmd[*]}" "$T/bg.err" || true
	if verify "$round"; then
		good=$((good + 1))
	else
		diag "round $round: $opname killed after ${ms}ms (exit $rc)"
	fi
done

diag "kill windows at the end: add 0-${span[add]} ms, import 0-${span[import]} ms, gc 0-${span[gc]} ms"
diag "ops: add ${opcount[add]:-0} (killed ${opkilled[add]:-0}), gc ${opcount[gc]:-0} (killed ${opkilled[gc]:-0}), import ${opcount[import]:-0} (killed ${opkilled[import]:-0})"
diag "$killed of $rounds rounds killed a live process; $finished finished before the kill"
same "$rounds kill -9 rounds, fsck clean and refs consistent after each" "$good" "$rounds"
truth "a good fraction of the rounds ($killed of $rounds) killed the process mid-work" \
	test $((killed * 3)) -ge "$rounds"
truth "adds and imports were killed mid-work too (add ${opkilled[add]:-0}, import ${opkilled[import]:-0})" \
	test "${opkilled[add]:-0}" -gt 0 -a "${opkilled[import]:-0}" -gt 0

# leftovers of the killed processes: invisible to readers, gone after gc
check "a final gc runs" kb store gc
same "...and clears the temporary files" "$(find "$S/tmp" -mindepth 1 | wc -l)" 0
same "...and staged objects left in the shards" "$(find "$S/objects" -name '.*' | wc -l)" 0
same "...and dead processes' roots files" "$(find "$S/roots" -mindepth 1 | wc -l)" 0
check "fsck after the final gc" kb store fsck
verify final && ok "refs consistent after the final gc"
# the store still works normally
check "a fresh add after all the kills" kb store add --ref r/after "$T/trees/v3"
same "...gives the expected hash" "$(cat "$OUT")" "${HV[3]}"

finish
