#!/usr/bin/env bash
# gc: what refs and action-cache entries reach survives whole; the rest
# goes; --dry-run only reports.
. "$(dirname "$0")/lib.sh"

S=$KBUILD_STORE

# tree DIR TAG: a small tree with content unique to TAG, plus shared parts
tree() {
	mkdir -p "$1/sub/deep" "$1/shared"
	printf 'unique %s\n' "$2" >"$1/u"
	printf 'unique deep %s\n' "$2" >"$1/sub/deep/u"
	head -c 300000 /dev/urandom >"$1/sub/big-$2"
	printf 'same in every tree\n' >"$1/shared/s"
	ln -s "target-$2" "$1/link"
}
for t in kept cached gone later; do
	tree "$T/$t" "$t"
done

check "add the tree a ref keeps" kb store add --ref keep/me "$T/kept"
KEPT=$(cat "$OUT")
check "add the tree an ac entry keeps" kb store add "$T/cached"
CACHED=$(cat "$OUT")
check "ac put for it" kb store ac put --meta 'exit 0' "$(sha_str act1)" "$CACHED"
check "add a tree nothing keeps" kb store add "$T/gone"
GONE=$(cat "$OUT")
check "add the tree a ref keeps until later" kb store add --ref later "$T/later"
LATER=$(cat "$OUT")
printf 'lonely blob\n' >"$T/lonely"
LONELY=$(kb store add "$T/lonely")

# unique objects of a tree: its root, u, sub, sub/deep, sub/deep/u, big,
# the link target; shared: shared/, shared/s
uniq_objs=7
n0=$(nobjects)
diag "$n0 objects before gc"
same "the store holds every object once" "$n0" $((4 * uniq_objs + 2 + 1))

# ---- dry run ----
check "gc --dry-run" kb store gc --dry-run
out_has "dry run reports what would go" "would remove $((uniq_objs + 1)) objects"
gone_bytes=$(python3 - "$S" "$GONE" "$LONELY" <<'EOF'
import os, sys
s, gone, lonely = sys.argv[1:]
def path(h):
    p = os.path.join(s, "objects", h[:2], h[2:])
    return p if os.path.exists(p) else p + ".x"
def size(h): return os.path.getsize(path(h))
seen, total = set(), 0
def walk(h, tree):
    global total
    if h in seen: return
    seen.add(h)
    total += size(h)
    if not tree: return
    data = open(path(h), "rb").read().split(b"\n", 1)[1]
    for ent in data.split(b"\0")[:-1]:
        t, hh = ent[0:1], ent[2:66].decode()
        walk(hh, t == b"d")
walk(gone, True)
shared = set()
# the shared directory is reachable from kept trees: do not count it
data = open(path(gone), "rb").read().split(b"\n", 1)[1]
for ent in data.split(b"\0")[:-1]:
    if ent[67:] == b"shared":
        sh = ent[2:66].decode()
        sd = open(path(sh), "rb").read().split(b"\n", 1)[1]
        shared = {sh} | {e[2:66].decode() for e in sd.split(b"\0")[:-1]}
print(total - sum(size(h) for h in shared) + size(lonely))
EOF
)
out_has "dry run reports the bytes that would go ($gone_bytes)" "($gone_bytes bytes)"
same "dry run removes nothing" "$(nobjects)" "$n0"
check "the doomed tree still checks out after a dry run" kb store checkout "$GONE" "$T/co-gone"

# ---- real gc ----
check "gc" kb store gc
out_has "gc reports what it removed" "removed $((uniq_objs + 1)) objects ($gone_bytes bytes)"
same "gc removed exactly the unreachable objects" "$(nobjects)" $((n0 - uniq_objs - 1))
expect_fail 1 "the unreferenced tree is gone" kb store ls "$GONE"
expect_fail 1 "the unreferenced blob is gone" kb store cat "$LONELY"
check "fsck is clean after gc" kb store fsck
check "the ref's tree still checks out" kb store checkout keep/me "$T/co-kept"
same_tree "...whole" "$T/kept" "$T/co-kept"
check "the ac entry's tree still checks out" kb store checkout "$CACHED" "$T/co-cached"
same_tree "...whole" "$T/cached" "$T/co-cached"
check "ac get still finds the entry" kb store ac get "$(sha_str act1)"
out_has "...with its result" "tree $CACHED"
check "a second gc" kb store gc
out_has "...removes nothing more" "removed 0 objects"
same "...and the object count holds" "$(nobjects)" $((n0 - uniq_objs - 1))

# ---- deleting a ref frees its objects on the next gc ----
check "ref delete later" kb store ref delete later
check "gc after deleting a ref" kb store gc
out_has "...removes the ref's unique objects" "removed $uniq_objs objects"
expect_fail 1 "...its tree is gone" kb store ls "$LATER"
check "...and the shared parts stay" kb store checkout keep/me "$T/co-kept2"
same_tree "...whole" "$T/kept" "$T/co-kept2"
check "fsck is clean" kb store fsck

# ---- an ac entry whose result was collected is dropped as stale ----
check "re-add the collected tree" kb store add "$T/gone"
check "ac put for a tree that only the entry keeps" kb store ac put "$(sha_str act2)" "$GONE"
check "the blob object of one file, for a stale entry" kb store add "$T/lonely"
check "ac put for the lonely blob" kb store ac put "$(sha_str act3)" "$LONELY"
# remove the blob behind gc's back: the entry becomes a miss
rm -f "$S/objects/${LONELY:0:2}/${LONELY:2}"
expect_fail 1 "ac get of an entry whose result is gone is a miss" kb store ac get "$(sha_str act3)"
check "gc with a stale ac entry" kb store gc
out_has "...drops the stale entry" "1 stale action-cache entries"
check "...and keeps the live entry's tree" kb store checkout "$GONE" "$T/co-gone2"
same_tree "...whole" "$T/gone" "$T/co-gone2"
check "fsck is clean" kb store fsck

# ---- leftovers of crashed writers go; an empty store stays a store ----
mkdir -p "$S/tmp/txn-999999-1"
printf x >"$S/tmp/txn-999999-1/0"
printf x >"$S/tmp/w-999999-2"
check "gc with crash leftovers in tmp/" kb store gc
out_has "...counts them" "2 temporary files"
same "...and removes them" "$(find "$S/tmp" -mindepth 1 | wc -l)" 0
kb store ref delete keep/me
kb store ref list | while read -r name _; do kb store ref delete "$name"; done
check "gc with no refs (the ac entries still hold their trees)" kb store gc
truth "...keeps what the ac entries reach" test "$(nobjects)" -gt 0
check "...which still check out" kb store checkout "$CACHED" "$T/co-cached2"
find "$S/ac" -type f -delete
check "gc with no refs and no ac entries" kb store gc
same "...leaves no objects" "$(nobjects)" 0
check "fsck of the emptied store is clean" kb store fsck
check "the emptied store takes new trees" kb store add "$T/kept"
same "...with the same hash as before" "$(cat "$OUT")" "$KEPT"

expect_fail 2 "gc with an argument is a usage error" kb store gc now
expect_fail 2 "gc with an unknown option is a usage error" kb store gc --force
err_has "...naming it" "--force"

finish
