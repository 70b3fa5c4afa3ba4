#!/usr/bin/env bash
# Concurrency: 4 writers each add 20 trees (sharing content with each
# other) and point a ref at each, while gc runs in a loop the whole time.
# No run may fail, and afterwards the store is fsck-clean and every ref
# holds its tree, whole.
. "$(dirname "$0")/lib.sh"

S=$KBUILD_STORE
W=4
N=20

# ---- inputs: tree w/i has files shared by all trees, by all writers'
# ---- i-th trees, by writer w's trees, and its own
python3 - "$T/in" "$W" "$N" <<'EOF'
import os, sys
root, nw, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for w in range(nw):
    for i in range(n):
        d = os.path.join(root, "w%d" % w, "t%02d" % i)
        for sub in ("common", "round", "writer", "own/deeper"):
            os.makedirs(os.path.join(d, sub))
        def put(path, text, mode=0o644):
            p = os.path.join(d, path)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, mode)
        for k in range(5):
            put("common/c%d" % k, "common to every tree %d\n" % k)
            put("round/r%d" % k, "shared by the trees numbered %d, file %d\n" % (i, k))
            put("writer/w%d" % k, "writer %d's file %d\n" % (w, k), 0o755 if k == 0 else 0o644)
            put("own/deeper/o%d" % k, "only in tree %d/%d, file %d\n" % (w, i, k) * (k + 1))
        os.symlink("common/c0", os.path.join(d, "link"))
        os.makedirs(os.path.join(d, "empty"))
EOF

# expected hashes, from a clean store
for w in $(seq 0 $((W - 1))); do
	"$KBUILD" --store "$T/refstore" store add "$T"/in/w$w/t* >"$T/expect.$w" ||
		{ fail "reference adds for writer $w"; finish; }
done
ok "expected hashes of $((W * N)) trees from a clean store"
check "initialise the store" kb store add --ref base "$T/in/w0/t00"

# ---- gc in a loop until the writers are done ----
(
	n=0 bad=0
	while [ ! -e "$T/stop" ]; do
		if ! "$KBUILD" store gc >"$T/gc.out" 2>"$T/gc.err"; then
			bad=$((bad + 1))
			cat "$T/gc.err" >>"$T/gc.errors"
		fi
		n=$((n + 1))
	done
	echo "$n $bad" >"$T/gc.count"
) &
gcpid=$!
bg_track $gcpid

# ---- the writers ----
wpids=()
for w in $(seq 0 $((W - 1))); do
	(
		i=0
		for d in "$T"/in/w$w/t*; do
			if h=$("$KBUILD" store add --ref "w$w/t$(printf %02d $i)" "$d" 2>>"$T/w$w.err"); then
				echo "$h" >>"$T/got.$w"
			else
				echo "FAILED" >>"$T/got.$w"
			fi
			# a shared ref everyone moves: always some whole tree
			"$KBUILD" store ref set latest "w$w/t$(printf %02d $i)" 2>>"$T/w$w.err" ||
				echo "ref set latest failed" >>"$T/w$w.err"
			i=$((i + 1))
		done
	) &
	wpids+=($!)
	bg_track $!
done
for p in "${wpids[@]}"; do wait "$p"; done
touch "$T/stop"
wait $gcpid
read -r gcruns gcbad <"$T/gc.count"
diag "gc ran $gcruns times while the writers worked"
truth "gc ran several times while the writers worked ($gcruns)" test "$gcruns" -ge 3
same "no concurrent gc failed" "$gcbad" 0
[ "$gcbad" -eq 0 ] || diag_file "$T/gc.errors"

sancheck "the concurrent writers and gc runs" "$T"/w*.err "$T/gc.errors" || true

# ---- every writer's run succeeded, with the expected hashes ----
for w in $(seq 0 $((W - 1))); do
	if [ -s "$T/w$w.err" ]; then
		# waiting for gc is reported on stderr and is fine; nothing else is
		if grep -v 'waiting for' "$T/w$w.err" >"$T/w$w.bad"; then
			fail "writer $w: stderr has only 'waiting' notes"
			diag_file "$T/w$w.bad"
		fi
	fi
	same "writer $w: every add succeeded with the expected hash" "$(cat "$T/got.$w")" "$(cat "$T/expect.$w")"
done

# ---- the store afterwards ----
check "fsck is clean after the concurrent run" kb store fsck
check "ref list" kb store ref list
same "every ref is there" "$(wc -l <"$OUT")" $((W * N + 2))
bad=0
for w in $(seq 0 $((W - 1))); do
	i=0
	while read -r h; do
		name=w$w/t$(printf %02d $i)
		got=$(kb store ref get "$name" 2>&1)
		if [ "$got" != "tree $h" ]; then
			fail "ref $name is '$got', not tree $h"
			bad=$((bad + 1))
		elif ! mkdir -p "$T/co/w$w" || ! kb store checkout "$name" "$T/co/$name" 2>"$T/co.err"; then
			fail "checkout of ref $name"
			diag_file "$T/co.err"
			bad=$((bad + 1))
		elif ! diff -r --no-dereference "$T/in/$name" "$T/co/$name" >/dev/null ||
			[ "$(stat -c %a "$T/co/$name/writer/w0")" != 555 ]; then
			fail "checkout of ref $name has the wrong content"
			bad=$((bad + 1))
		fi
		i=$((i + 1))
	done <"$T/expect.$w"
done
same "all $((W * N)) refs hold their tree and check out whole" "$bad" 0
latest=$(kb store ref get latest | cut -d' ' -f2)
truth "the shared ref names one of the trees" grep -qx "$latest" "$T"/expect.*
check "a last gc" kb store gc
out_has "...removes nothing that a ref reaches" "removed 0 objects"
check "fsck after it" kb store fsck

# ---- kbuilds that create one new store at once take turns: 30 rounds of
# ---- 4 adds into a directory that does not exist yet
bad=0
for r in $(seq 1 30); do
	pids=()
	for w in $(seq 0 $((W - 1))); do
		"$KBUILD" --store "$T/new$r" store add "$T/in/w$w/t00" >/dev/null 2>"$T/new.err.$w" &
		pids+=($!)
	done
	for w in $(seq 0 $((W - 1))); do
		if ! wait "${pids[$w]}"; then
			bad=$((bad + 1))
			diag_file "$T/new.err.$w"
		fi
	done
	"$KBUILD" --store "$T/new$r" store fsck >/dev/null 2>&1 || bad=$((bad + 1))
done
same "4 adds creating one store at once all succeed and leave it fsck-clean, 30 rounds" "$bad" 0

finish
