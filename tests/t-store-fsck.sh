#!/usr/bin/env bash
# fsck: a clean store passes; a flipped byte in a blob or a tree, or a
# missing object, is found and named with the ref that reaches it.
. "$(dirname "$0")/lib.sh"

S=$KBUILD_STORE

mkdir -p "$T/src/dir/inner" "$T/other"
printf 'first file\n' >"$T/src/a"
printf 'inner file\n' >"$T/src/dir/inner/b"
head -c 2000000 /dev/urandom >"$T/src/dir/big"
printf 'x\n' >"$T/src/dir/x"
chmod +x "$T/src/dir/x"
printf 'other\n' >"$T/other/o"

check "fsck of a store that does not exist yet fails" bash -c '! "$1" --store "$2/none" store fsck' _ "$KBUILD" "$T"
check "add a tree with a ref" kb store add --ref main "$T/src"
H=$(cat "$OUT")
check "add another tree with a ref" kb store add --ref side "$T/other"
O=$(cat "$OUT")
check "ac entry for the first tree" kb store ac put "$(sha_str act)" "$H"
check "fsck of a clean store" kb store fsck
out_has "...says it is consistent" "consistent"

A=$(sha "$T/src/a")
B=$(sha "$T/src/dir/inner/b")
BIG=$(sha "$T/src/dir/big")
X=$(sha "$T/src/dir/x")
INNER=$(kb store ls -r main | awk '$3 == "dir/inner" {print $2}')
DIR=$(kb store ls main | awk '$3 == "dir" {print $2}')
truth "found the hashes of the subtrees" is_hash "$INNER"

# corrupt FILE HASH WHAT: flips a byte, runs fsck, restores
fsck_finds() { # DESC PATTERN...
	local desc=$1
	shift
	expect_fail 1 "fsck exits 1: $desc" kb store fsck
	cat "$OUT" "$ERR" >"$T/both"
	local p miss=
	for p in "$@"; do
		grep -qF -- "$p" "$T/both" || miss="$miss '$p'"
	done
	if [ -z "$miss" ]; then
		ok "fsck output names $desc"
	else
		fail "fsck output names $desc (lacks$miss)"
		diag_file "$T/both"
	fi
}

# ---- a flipped byte in a blob ----
p=$(objpath "$B")
cp -p "$p" "$T/saved"
flip_byte "$p"
same "the blob object is still read-only after the test flipped it" "$(stat -c %a "$p")" 444
fsck_finds "the corrupt blob and the ref reaching it" "$B" "ref 'main'" "dir/inner/b"
grep -F "$B" "$T/both" | grep -q "action-cache entry $(sha_str act)" &&
	ok "fsck also names the ac entry reaching it" || fail "fsck also names the ac entry reaching it"
grep -qF "ref 'side'" "$T/both" && fail "fsck blames the unrelated ref 'side'" ||
	ok "fsck does not blame the unrelated ref"
same "fsck reports each problem once per reaching root (2 + the object)" \
	"$(grep -cF "$B" "$OUT")" 3
chmod u+w "$p"
cat "$T/saved" >"$p"
chmod 444 "$p"
check "fsck is clean once the blob is repaired" kb store fsck

# ---- the big (streamed) blob, corrupted at its last byte ----
p=$(objpath "$BIG")
cp -p "$p" "$T/saved"
flip_byte "$p" $(($(stat -c %s "$p") - 1))
fsck_finds "a corrupt last byte of a big blob" "$BIG" "ref 'main'"
chmod u+w "$p" && cat "$T/saved" >"$p" && chmod 444 "$p"

# ---- a truncated blob ----
p=$(objpath "$A")
cp -p "$p" "$T/saved"
chmod u+w "$p" && truncate -s 3 "$p" && chmod 444 "$p"
fsck_finds "a truncated blob" "$A" "ref 'main'"
chmod u+w "$p" && cat "$T/saved" >"$p" && chmod 444 "$p"

# ---- an executable blob ----
p="$S/objects/${X:0:2}/${X:2}.x"
truth "the executable is stored as the .x variant" test -f "$p"
cp -p "$p" "$T/saved"
flip_byte "$p"
fsck_finds "a corrupt executable blob" "$X" "ref 'main'"
chmod u+w "$p" && cat "$T/saved" >"$p" && chmod 555 "$p"
check "fsck is clean again" kb store fsck

# ---- a flipped byte in a tree ----
p=$(objpath "$INNER")
cp -p "$p" "$T/saved"
flip_byte "$p" 20 # inside the first entry's hash
fsck_finds "the corrupt tree and the ref reaching it" "$INNER" "ref 'main'"
grep -F "$INNER" "$OUT" | grep -q "tree" && ok "...calling it a tree" || fail "...calling it a tree"
chmod u+w "$p" && cat "$T/saved" >"$p" && chmod 444 "$p"

# ---- the root tree itself ----
p=$(objpath "$H")
cp -p "$p" "$T/saved"
flip_byte "$p" 3 # the magic: no longer parses as a tree
fsck_finds "a corrupt root tree" "$H" "ref 'main'"
printf 'garbage for gc\n' >"$T/garbage"
kb store add "$T/garbage" >/dev/null
nb=$(nobjects)
expect_fail 1 "gc refuses to run with a damaged tree reachable" kb store gc
err_has "...saying why" "fsck"
same "...and removes nothing, not even garbage" "$(nobjects)" "$nb"
chmod u+w "$p" && cat "$T/saved" >"$p" && chmod 444 "$p"
check "fsck is clean once the tree is repaired" kb store fsck

# ---- a missing object ----
n=$(nobjects)
p=$(objpath "$B")
mv "$p" "$T/saved"
fsck_finds "the missing blob and the ref reaching it" "missing" "$B" "ref 'main'" "dir/inner/b"
expect_fail 1 "checkout of a tree with a missing blob fails" kb store checkout main "$T/co"
err_has "...naming the missing object" "$B"
truth "...and leaves nothing at the destination" test ! -e "$T/co"
same "...nor a temporary directory beside it" "$(find "$T" -maxdepth 1 -name '*kbuild-tmp*' | wc -l)" 0
expect_fail 1 "export of a ref reaching a missing object fails" kb store export -o "$T/b.kbb" main
truth "...and writes no bundle" test ! -e "$T/b.kbb"
mv "$T/saved" "$p"
p=$(objpath "$DIR")
mv "$p" "$T/saved"
fsck_finds "a missing subtree" "missing" "$DIR" "ref 'main'"
mv "$T/saved" "$p"
check "fsck is clean once the objects are back" kb store fsck
same "...with every object" "$(nobjects)" "$n"

# ---- damaged refs and ac entries ----
printf 'garbage\n' >"$S/refs/broken"
fsck_finds "a damaged ref file" "broken"
rm "$S/refs/broken"
akey=$(sha_str act)
printf 'not an entry\n' >"$S/ac/${akey:0:2}/${akey:2}"
fsck_finds "a damaged ac entry" "$akey"
rm "$S/ac/${akey:0:2}/${akey:2}"
check "fsck is clean again at the end" kb store fsck

# a damaged ref file: fsck names it and still checks the rest; gc refuses
FS2=$T/store-dmg
kb --store "$FS2" store add --ref good "$T" >/dev/null 2>&1 || true
G1=$(kb --store "$FS2" store ref get good)
kb --store "$FS2" store add --ref bad "$(dirname "$0")" >/dev/null 2>&1
echo garbage >"$FS2/refs/bad"
BLOB=$(printf 'corrupt me' >"$T/cm" && kb --store "$FS2" store add --ref cm "$T/cm")
flip_byte "$(objpath "$BLOB" "$FS2")" 0
expect_fail 1 "fsck with a damaged ref file" kb --store "$FS2" store fsck
out_has "... names the damaged ref" "damaged ref 'bad'"
out_has "... and still checks the other refs" "corrupt blob $BLOB, reached from ref 'cm'"
run kb --store "$FS2" store ref list
out_has "ref list shows it as damaged" "bad damaged" "good $G1"
n0=$(nobjects "$FS2")
expect_fail 1 "gc refuses while a ref is damaged" kb --store "$FS2" store gc
err_has "... naming it" "ref 'bad' is damaged"
same "... and removes nothing" "$(nobjects "$FS2")" "$n0"
finish
