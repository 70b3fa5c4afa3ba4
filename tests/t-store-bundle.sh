#!/usr/bin/env bash
# export/import: a bundle carries refs and their closure into another
# store; a cut, damaged, incomplete or foreign file changes nothing.
. "$(dirname "$0")/lib.sh"

S1=$T/s1 # the exporting store
S2=$T/s2 # the importing store
k1() { "$KBUILD" --store "$S1" "$@"; }
k2() { "$KBUILD" --store "$S2" "$@"; }

mkdir -p "$T/src/d/e" "$T/src/empty" "$T/two" "$T/own"
printf 'alpha\n' >"$T/src/a"
head -c 1500000 /dev/urandom >"$T/src/d/big"
printf '#!/bin/sh\n' >"$T/src/d/run"
chmod +x "$T/src/d/run"
ln -s ../a "$T/src/d/link"
: >"$T/src/d/e/empty"
printf 'second tree\n' >"$T/two/t"
printf 'the importing store has its own things\n' >"$T/own/o"

check "add the first tree to s1" k1 store add --ref rel/main "$T/src"
H=$(cat "$OUT")
check "add the second tree to s1" k1 store add --ref two "$T/two"
H2=$(cat "$OUT")
check "add to s2" k2 store add --ref own "$T/own"
OWN=$(cat "$OUT")

# snapshot of a store: every file below objects/ (staging leftovers too),
# the refs, and tmp/
snap() {
	{
		echo "objects:"
		(cd "$1/objects" && find . -type f | LC_ALL=C sort)
		echo "refs:"
		"$KBUILD" --store "$1" store ref list
		echo "ac:"
		(cd "$1/ac" && find . -type f | LC_ALL=C sort)
		echo "tmp:"
		(cd "$1/tmp" && find . -mindepth 1 | LC_ALL=C sort)
	} 2>&1
}

# unchanged DESC: s2 is as it was at $BASE, and fsck-clean
unchanged() {
	local now
	now=$(snap "$S2")
	if [ "$now" = "$BASE" ]; then
		ok "$1: the store is unchanged"
	else
		fail "$1: the store is unchanged"
		diff <(printf '%s\n' "$BASE") <(printf '%s\n' "$now") | head -n 10 | sed 's/^/#   /'
	fi
	run k2 store fsck
	if [ "$RC" -eq 0 ]; then ok "$1: fsck is clean"; else fail "$1: fsck is clean (exit $RC)"; diag_file "$OUT"; fi
}

# ---- export ----
check "export two refs" k1 store export -o "$T/b.kbb" rel/main two
truth "the bundle is a zstd file" bash -c 'zstd -t -q "$1"' _ "$T/b.kbb"
zstd -dc "$T/b.kbb" >"$T/b.raw"
# the object records of a decompressed bundle: TYPE HASH SIZE per line
records() {
	python3 - "$1" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
pos = data.index(b"\n") + 1
while data.startswith(b"object ", pos):
    nl = data.index(b"\n", pos)
    _, t, h, size = data[pos:nl].decode().split()
    print(t, h, size)
    pos = nl + 1 + int(size)
EOF
}
records "$T/b.raw" >"$T/records"
same "the bundle starts with its magic line" "$(head -n 1 "$T/b.raw")" "kbuild-bundle 1"
same "the bundle ends with its end record" "$(tail -n 1 "$T/b.raw" | tr -d '\0' | grep -o 'end [0-9]* [0-9]*$')" \
	"end $(wc -l <"$T/records") 2"
expect_fail 1 "export of an unknown ref fails" k1 store export -o "$T/none.kbb" no/such
err_has "...naming it" "no/such"
truth "...and writes no file" test ! -e "$T/none.kbb"
expect_fail 2 "export without -o is a usage error" k1 store export rel/main
expect_fail 2 "export with nothing to export is a usage error" k1 store export -o "$T/x.kbb"
truth "no temporary bundle files are left" test -z "$(find "$T" -maxdepth 1 -name '*.tmp-*')"

# ---- import into a fresh store ----
check "import into a fresh store" k2 store import "$T/b.kbb"
err_has "...reports what it imported" "refs"
same "the refs arrive" "$(k2 store ref list)" "own tree $OWN
rel/main tree $H
two tree $H2"
check "fsck of the importing store is clean" k2 store fsck
check "checkout of the imported ref" k2 store checkout rel/main "$T/co"
same_tree "...reproduces the tree" "$T/src" "$T/co"
same "...the executable keeps its x bit" "$(stat -c %a "$T/co/d/run")" 555
check "checkout of the second imported ref" k2 store checkout two "$T/co2"
same_tree "...reproduces it too" "$T/two" "$T/co2"
check "importing the same bundle again" k2 store import "$T/b.kbb"
check "...keeps the store clean" k2 store fsck
same "...and the refs as they were" "$(k2 store ref list | wc -l)" 3
check "export of a bare hash" k1 store export -o "$T/hash.kbb" "$H2"
check "...imports into a third store" "$KBUILD" --store "$T/s3" store import "$T/hash.kbb"
same "...with no refs" "$("$KBUILD" --store "$T/s3" store ref list)" ""
check "...and the tree is there" "$KBUILD" --store "$T/s3" store ls "$H2"
check "a store made by import takes an export of it" "$KBUILD" --store "$T/s3" store export -o "$T/again.kbb" "$H2"

# from here on, s2 must not change: it holds only its own tree
rm -rf "$S2"
k2 store add --ref own "$T/own" >/dev/null
BASE=$(snap "$S2")

# ---- truncated bundles ----
size=$(stat -c %s "$T/b.kbb")
for cut in 0 1 4 10 $((size / 4)) $((size / 2)) $((size - 20)) $((size - 4)) $((size - 1)); do
	head -c "$cut" "$T/b.kbb" >"$T/cut.kbb"
	expect_fail 1 "a bundle cut to $cut of $size bytes is refused" k2 store import "$T/cut.kbb"
	if grep -qE 'truncated|damaged|not a kbuild bundle' "$ERR" && grep -qF "$T/cut.kbb" "$ERR"; then
		ok "...with a clear message naming the file"
	else
		fail "...with a clear message naming the file"
		diag_file "$ERR"
	fi
	unchanged "cut at $cut"
done
# a cut that falls exactly after the end record's newline but before the
# zstd frame's end: the decompressed stream is whole, the frame is not
cp "$T/b.kbb" "$T/long.kbb"
printf 'trailing junk' >>"$T/long.kbb"
expect_fail 1 "a bundle with bytes after its end is refused" k2 store import "$T/long.kbb"
err_has "...naming the file" "$T/long.kbb"
unchanged "trailing junk"

# ---- a damaged object inside a valid zstd stream ----
# damage RAW OUT WHICH: flips one content byte of the WHICH-th object
damage() {
	python3 - "$1" "$2" "$3" <<'EOF'
import sys
raw, out, which = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = bytearray(open(raw, "rb").read())
pos, n = data.index(b"\n") + 1, 0
while True:
    nl = data.index(b"\n", pos)
    head = data[pos:nl].decode()
    if not head.startswith("object "):
        sys.exit("no such object")
    size = int(head.split()[3])
    if n == which and size > 0:
        data[nl + 1 + size // 2] ^= 0x20
        break
    pos, n = nl + 1 + size, n + 1
open(out, "wb").write(data)
EOF
}
nobj=$(wc -l <"$T/records")
same "the bundle holds the closure of both refs" "$nobj" "$(($(k1 store ls -r rel/main | cut -c3-66 | sort -u | wc -l) + 1 + 2))"
bigi=$(awk '$3 > 1000000 {print NR - 1; exit}' "$T/records")
for which in 0 "$bigi" $((nobj / 2)) $((nobj - 1)); do
	kind=$(sed -n "$((which + 1))p" "$T/records" | cut -d' ' -f1)
	damage "$T/b.raw" "$T/bad.raw" "$which" || { fail "could not build a damaged bundle"; continue; }
	rm -f "$T/bad.kbb"
	zstd -q "$T/bad.raw" -o "$T/bad.kbb"
	expect_fail 1 "a bundle with a damaged $kind (object $which of $nobj) is refused" k2 store import "$T/bad.kbb"
	if grep -qE 'hash|damaged' "$ERR" && grep -qF "$T/bad.kbb" "$ERR"; then
		ok "...saying it is damaged and naming the file"
	else
		fail "...saying it is damaged and naming the file"
		diag_file "$ERR"
	fi
	unchanged "damaged $kind"
done
# the same with --force: force is about refs, not about damage
expect_fail 1 "--force does not let a damaged bundle in" k2 store import --force "$T/bad.kbb"
unchanged "damaged, --force"

# ---- structurally wrong bundles ----
# edit RAW OUT PYTHON-EXPR-ON-data: rewrites the decompressed bundle
edit() {
	python3 -c "
import sys
data = open(sys.argv[1], 'rb').read()
$3
open(sys.argv[2], 'wb').write(data)" "$1" "$2" && rm -f "$2.kbb" && zstd -q "$2" -o "$2.kbb"
}
# drop the first object record (a blob the trees need), fix the count
edit "$T/b.raw" "$T/inc" "
first = data.index(b'\nobject ') + 1
nl = data.index(b'\n', first)
size = int(data[first:nl].split()[3])
data = data[:first] + data[nl + 1 + size:]
import re
data = re.sub(rb'end (\d+) (\d+)\n$', lambda m: b'end %d %s\n' % (int(m.group(1)) - 1, m.group(2)), data)"
expect_fail 1 "a bundle missing an object its trees need is refused" k2 store import "$T/inc.kbb"
err_has "...as incomplete" "incomplete"
unchanged "incomplete bundle"
edit "$T/b.raw" "$T/cnt" "data = data.replace(b'\nend ', b'\nend 1')"
expect_fail 1 "a bundle whose end record has the wrong count is refused" k2 store import "$T/cnt.kbb"
unchanged "wrong count"
edit "$T/b.raw" "$T/noend" "data = data[:data.rindex(b'end ')]"
expect_fail 1 "a bundle without its end record is refused" k2 store import "$T/noend.kbb"
err_has "...as truncated" "truncated"
unchanged "no end record"
edit "$T/b.raw" "$T/badref" "data = data.replace(b'ref two ', b'ref ../two ')"
expect_fail nz "a bundle with an invalid ref name is refused" k2 store import "$T/badref.kbb"
err_has "...naming the ref" "../two"
unchanged "invalid ref name"
edit "$T/b.raw" "$T/ghostref" "data = data.replace(b'ref two tree ', b'ref two tree ' + b'0' * 64 + b'\nref ghost tree ')
data = data.replace(b'\nend ', b'\nend ').replace(b' 2\n', b' 3\n')"
expect_fail 1 "a bundle whose ref names an object it lacks is refused" k2 store import "$T/ghostref.kbb"
unchanged "ref to a missing object"

# ---- files that are not bundles ----
head -c 5000 /dev/urandom >"$T/random.bin"
printf 'just some text\nin a file\n' >"$T/text.txt"
printf 'kbuild-bundle 1\nnot zstd\n' >"$T/plain-bundle"
printf 'hello\n' | zstd -q >"$T/other.zst"
: >"$T/empty.kbb"
for f in random.bin text.txt plain-bundle other.zst empty.kbb; do
	expect_fail 1 "importing $f is refused" k2 store import "$T/$f"
	err_has "...naming the file" "$T/$f"
	unchanged "$f"
done
expect_fail 1 "importing a file that does not exist fails" k2 store import "$T/nope.kbb"
err_has "...naming it" "$T/nope.kbb"
expect_fail 1 "importing a directory fails" k2 store import "$T/src"
unchanged "nonexistent file and directory"

# ---- ref conflicts ----
check "add a tree to s2 under the name the bundle uses" k2 store add --ref rel/main "$T/own"
BASE=$(snap "$S2")
expect_fail 1 "import over a different existing ref is refused" k2 store import "$T/b.kbb"
err_has "...naming the ref and --force" "rel/main" "--force"
unchanged "ref conflict"
same "...and the ref keeps its value" "$(k2 store ref get rel/main)" "tree $OWN"
check "import --force replaces the ref" k2 store import --force "$T/b.kbb"
same "...to the bundle's value" "$(k2 store ref get rel/main)" "tree $H"
same "...and brings the other ref" "$(k2 store ref get two)" "tree $H2"
same "...and leaves unrelated refs alone" "$(k2 store ref get own)" "tree $OWN"
check "fsck after a forced import" k2 store fsck
check "checkout of the forced ref" k2 store checkout rel/main "$T/co3"
same_tree "...is the bundle's tree" "$T/src" "$T/co3"
check "gc keeps everything the imported refs reach" k2 store gc
check "...fsck after gc" k2 store fsck
check "...checkout after gc" k2 store checkout two "$T/co4"
same_tree "...is whole" "$T/two" "$T/co4"

finish
