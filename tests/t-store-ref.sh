#!/usr/bin/env bash
# refs (set/get/list/delete, compare-and-swap, names) and the action cache.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/a" "$T/b"
printf 'one\n' >"$T/a/f"
printf 'two\n' >"$T/b/f"
printf 'blob\n' >"$T/blob"
A=$(kb store add "$T/a")
B=$(kb store add "$T/b")
F=$(kb store add "$T/blob")
NOTSTORED=$(sha_str "never stored")

# ---- set / get / list / delete ----
check "ref set" kb store ref set rel/a "$A"
check "ref get" kb store ref get rel/a
same "ref get prints TYPE HASH" "$(cat "$OUT")" "tree $A"
check "ref set of a blob" kb store ref set blobs/one "$F"
check "...ref get" kb store ref get blobs/one
same "...is typed blob" "$(cat "$OUT")" "blob $F"
check "ref set with every allowed character" kb store ref set 'x/A-z_0.9+@=:y' "$B"
check "ref set naming another ref as the target" kb store ref set copy-of-a rel/a
run kb store ref get copy-of-a
same "...copies its value" "$(cat "$OUT")" "tree $A"
check "ref list" kb store ref list
same "ref list shows every ref, sorted" "$(cat "$OUT")" "blobs/one blob $F
copy-of-a tree $A
rel/a tree $A
x/A-z_0.9+@=:y tree $B"
check "ref list with a prefix" kb store ref list rel/
same "...shows only the refs under it" "$(cat "$OUT")" "rel/a tree $A"
check "a ref names the tree for ls" kb store ls rel/a
out_has "...which lists its file" "f $(sha "$T/a/f") f"
check "a ref names the tree for checkout" kb store checkout rel/a "$T/co-a"
same_tree "...which checks out" "$T/a" "$T/co-a"
check "a ref to a blob works with cat" kb store cat blobs/one
same_file "...which prints the blob" "$OUT" "$T/blob"
check "ref set overwrites without --old" kb store ref set rel/a "$B"
same "...to the new value" "$(kb store ref get rel/a)" "tree $B"
check "ref delete" kb store ref delete copy-of-a
expect_fail 1 "ref get of a deleted ref fails" kb store ref get copy-of-a
err_has "...naming it" "copy-of-a"
same "ref list no longer shows it" "$(kb store ref list | grep -c copy-of-a)" 0
expect_fail 1 "ref delete of a missing ref fails" kb store ref delete copy-of-a
err_has "...naming it" "copy-of-a"
check "add --ref sets a ref" kb store add --ref added/a "$T/a"
same "...to the added tree" "$(kb store ref get added/a)" "tree $A"
check "add --ref=NAME form" kb store add --ref=added/b "$T/b"
same "...sets it too" "$(kb store ref get added/b)" "tree $B"
expect_fail 2 "add --ref with two paths is a usage error" kb store add --ref two "$T/a" "$T/b"
expect_fail 1 "ref get of a ref that never existed fails" kb store ref get no/such
err_has "...naming it" "no/such"

# ---- compare-and-swap ----
kb store ref set cas "$A"
check "set --old CURRENT succeeds" kb store ref set --old "$A" cas "$B"
same "...and changes the ref" "$(kb store ref get cas)" "tree $B"
expect_fail 1 "set --old STALE fails" kb store ref set --old "$A" cas "$A"
err_has "...saying what the ref is" "$B"
same "...and leaves the ref unchanged" "$(kb store ref get cas)" "tree $B"
expect_fail 1 "set --old none on an existing ref fails" kb store ref set --old none cas "$A"
same "...and leaves the ref unchanged" "$(kb store ref get cas)" "tree $B"
check "set --old none on a new ref succeeds" kb store ref set --old none fresh "$A"
same "...and creates it" "$(kb store ref get fresh)" "tree $A"
expect_fail 1 "set --old HASH on a missing ref fails" kb store ref set --old "$A" missing "$B"
expect_fail 1 "...and does not create it" kb store ref get missing
expect_fail 1 "delete --old STALE fails" kb store ref delete --old "$A" cas
same "...and keeps the ref" "$(kb store ref get cas)" "tree $B"
check "delete --old CURRENT succeeds" kb store ref delete --old "$B" cas
expect_fail 1 "...and removes it" kb store ref get cas
expect_fail 2 "--old with something that is not a hash is a usage error" kb store ref set --old xyz fresh "$B"
same "...and leaves the ref unchanged" "$(kb store ref get fresh)" "tree $A"

# ---- targets that are not in the store ----
expect_fail 1 "ref set to a hash not in the store is refused" kb store ref set ghost "$NOTSTORED"
err_has "...naming the hash" "$NOTSTORED"
expect_fail 1 "...and the ref does not exist" kb store ref get ghost
kb store ref set keep "$A"
expect_fail 1 "ref set of an existing ref to a missing hash is refused" kb store ref set keep "$NOTSTORED"
same "...and the ref keeps its value" "$(kb store ref get keep)" "tree $A"
expect_fail 1 "ref set to a ref that does not exist is refused" kb store ref set keep2 no/such/ref
err_has "...naming it" "no/such/ref"

# ---- invalid names ----
refs_before=$(kb store ref list)
for name in 'a/../b' '/x' 'a//b' '..' '.' 'x/' 'a/./b' '.hidden' 'sp ace' 'per%cent' $'nl\nx' '' "$(printf 'x%.0s' {1..201})"; do
	shown=$(printf '%q' "$name")
	expect_fail 2 "ref set $shown is refused" kb store ref set "$name" "$A"
	if [ ${#name} -le 200 ] && [ "$name" != $'nl\nx' ]; then
		err_has "...naming the ref" "'$name'"
	fi
	err_lines "...in one line" 1
	expect_fail 2 "ref get $shown is refused" kb store ref get "$name"
	expect_fail 2 "ref delete $shown is refused" kb store ref delete "$name"
	expect_fail 2 "add --ref $shown is refused" kb store add --ref "$name" "$T/a"
done
same "no invalid name changed the refs" "$(kb store ref list)" "$refs_before"
same "no stray files appeared in refs/" "$(find "$KBUILD_STORE/refs" -mindepth 1 | grep -c -v '/[a-zA-Z0-9._+@=:%-]*$')" 0
expect_fail 2 "ref with an unknown subcommand" kb store ref frob x
err_has "...names it" "frob"
expect_fail 2 "ref set with one argument" kb store ref set onlyname
expect_fail 2 "ref with no subcommand" kb store ref

# a ref that is 200 bytes long is fine
long=$(printf 'y%.0s' {1..200})
check "a 200-byte ref name is accepted" kb store ref set "$long" "$A"
same "...and reads back" "$(kb store ref get "$long")" "tree $A"

# ---- action cache ----
KEY=$(sha_str "action one")
KEY2=$(sha_str "action two")
check "ac put --meta" kb store ac put --meta $'k v\nexit 0' "$KEY" "$A"
check "ac get" kb store ac get "$KEY"
same "ac get prints the result and the metadata" "$(cat "$OUT")" "tree $A
k v
exit 0"
check "ac put KEY HASH --meta TEXT (option after the operands)" kb store ac put "$KEY2" "$F" --meta 'k v'
check "ac get of it" kb store ac get "$KEY2"
same "...prints blob HASH and the metadata" "$(cat "$OUT")" "blob $F
k v"
check "ac put without metadata, by ref" kb store ac put "$KEY2" rel/a
run kb store ac get "$KEY2"
same "...replaces the entry" "$(cat "$OUT")" "tree $B"
for bad in ABC "${KEY^^}" "${KEY}0" "${KEY:1}" "g${KEY:1}" ""; do
	expect_fail 2 "ac put with key '$bad' is refused" kb store ac put "$bad" "$A"
	[ -n "$bad" ] && err_has "...naming the key" "'$bad'"
	expect_fail 2 "ac get with key '$bad' is refused" kb store ac get "$bad"
done
expect_fail 1 "ac get of an unknown key fails" kb store ac get "$(sha_str unknown)"
err_has "...naming the key" "$(sha_str unknown)"
expect_fail 1 "ac put of a result not in the store fails" kb store ac put "$(sha_str k3)" "$NOTSTORED"
expect_fail 1 "...and creates no entry" kb store ac get "$(sha_str k3)"
expect_fail 2 "ac with an unknown subcommand" kb store ac frob "$KEY"
big=$(head -c 70000 /dev/zero | tr '\0' 'm')
expect_fail 1 "ac put with more than 64 KiB of metadata fails" kb store ac put --meta "$big" "$KEY" "$A"
run kb store ac get "$KEY"
same "...and keeps the old entry" "$(head -n 1 "$OUT")" "tree $A"

check "fsck is clean after all this" kb store fsck

# a tree whose children are gone (a gc killed mid-sweep leaves such) can be
# named neither by a ref nor by the action cache
mkdir -p "$T/part/d" && echo gone >"$T/part/d/f" && echo stays >"$T/part/g"
PT=$(kb store add "$T/part")
PF=$(sha "$T/part/d/f")
rm -f "$(objpath "$PF")"
expect_fail 1 "ref set to a tree with a missing child is refused" kb store ref set partial "$PT"
err_has "... naming the missing object and where it is in the tree" "blob $PF at d/f is missing"
expect_fail 1 "ac put of such a tree is refused" kb store ac put "$(sha_str partial-key)" "$PT"
run kb store ref get partial
truth "... and no ref was made" test "$RC" -ne 0
finish
