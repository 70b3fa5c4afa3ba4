#!/usr/bin/env bash
# store add / checkout / cat / ls: a tree with every kind of entry goes in
# and comes back out byte for byte; its hash depends on names, types and
# content only.
. "$(dirname "$0")/lib.sh"

S=$KBUILD_STORE
ODD=$'d \xff\xfe\nname'      # a directory: non-UTF-8, space, newline
ODDF=$'f \xff\n spaced \xfe' # a file likewise

# make_tree DIR: the reference tree
make_tree() {
	local d=$1
	mkdir -p "$d/empty/nested/deeper" "$d/emptytop" "$d/sub/dir" "$d/$ODD"
	printf 'hello\n' >"$d/file"
	printf '#!/bin/sh\necho run\n' >"$d/run.sh"
	chmod 755 "$d/run.sh"
	printf 'exec only by owner\n' >"$d/sub/owner-x"
	chmod 744 "$d/sub/owner-x"
	: >"$d/emptyfile"
	ln -s file "$d/rel-link"
	ln -s ../file "$d/sub/up-link"
	ln -s /etc/hostname "$d/abs-link"
	ln -s does/not/exist "$d/dangling"
	ln -s "$ODDF" "$d/odd-link"
	printf 'odd name\n' >"$d/$ODDF"
	printf 'inside odd dir\n' >"$d/$ODD/x"
	head -c 3000000 /dev/urandom >"$d/sub/dir/big.bin"
	printf 'no newline at end' >"$d/sub/dir/tail"
	# names whose byte order is easy to get wrong
	for n in a a.b 'a b' ab A '~' $'\x01' $'\xc3\xa9'; do
		printf '%s\n' "$n" >"$d/sub/$n"
	done
}

mkdir -p "$T/src"
make_tree "$T/src"

# ---- add ----
check "store add of a tree succeeds" kb store add "$T/src"
H=$(cat "$OUT")
truth "store add prints one hash ($H)" is_hash "$H"
same "add prints exactly one line" "$(wc -l <"$OUT")" 1
check "store add of the same tree again" kb store add "$T/src"
same "adding the same tree twice gives the same hash" "$(cat "$OUT")" "$H"

# the documented encoding, recomputed independently
expect=$(python3 - "$T/src" <<'EOF'
import hashlib, os, stat, sys
def blob(b): return hashlib.sha256(b).hexdigest()
def tree(p):
    ents = []
    for n in os.listdir(p):
        q = os.path.join(p, n)
        st = os.lstat(q)
        if stat.S_ISLNK(st.st_mode):
            ents.append((n, "l", blob(os.readlink(q))))
        elif stat.S_ISDIR(st.st_mode):
            ents.append((n, "d", tree(q)))
        else:
            with open(q, "rb") as f:
                ents.append((n, "x" if st.st_mode & 0o100 else "f", blob(f.read())))
    enc = b"kbuild-tree 1\n"
    for n, t, h in sorted(ents):
        enc += t.encode() + b" " + h.encode() + b" " + n + b"\0"
    return blob(enc)
print(tree(os.fsencode(sys.argv[1])))
EOF
)
same "the tree hash follows the documented encoding" "$H" "$expect"

# ---- same content elsewhere: times, owners, umask, order do not matter ----
(
	umask 077
	mkdir "$T/copy"
	cd "$T/src" && cp -r --no-preserve=all . "$T/copy/"
)
# cp drops the x bits with --no-preserve=all: restore only the owner's x
chmod u+x "$T/copy/run.sh" "$T/copy/sub/owner-x"
find "$T/copy" -exec touch -h -d '2001-02-03 04:05:06' {} +
chown -hR nobody:nogroup "$T/copy" 2>/dev/null || chown -hR 65534:65534 "$T/copy"
chmod g+w,o-r "$T/copy/file"
check "add of a copy with other times, owner, umask and mode bits" kb store add "$T/copy"
same "...gives the same hash" "$(cat "$OUT")" "$H"
check "add via a relative path from another directory" bash -c 'cd "$1/copy/sub" && "$2" store add ../../src' _ "$T" "$KBUILD"
same "...gives the same hash" "$(cat "$OUT")" "$H"

# ---- what must change the hash ----
cp -a "$T/src" "$T/v1"
chmod -x "$T/v1/run.sh"
run kb store add "$T/v1"
differ "dropping an executable bit changes the tree hash" "$(cat "$OUT")" "$H"
cp -a "$T/src" "$T/v2"
printf 'hellO\n' >"$T/v2/file"
run kb store add "$T/v2"
differ "changing one byte of a file changes the tree hash" "$(cat "$OUT")" "$H"
cp -a "$T/src" "$T/v3"
rmdir "$T/v3/emptytop"
run kb store add "$T/v3"
differ "removing an empty directory changes the tree hash" "$(cat "$OUT")" "$H"
cp -a "$T/src" "$T/v4"
rm "$T/v4/rel-link"
ln -s file2 "$T/v4/rel-link"
run kb store add "$T/v4"
differ "changing a symlink target changes the tree hash" "$(cat "$OUT")" "$H"
cp -a "$T/src" "$T/v5"
mv "$T/v5/file" "$T/v5/filf"
run kb store add "$T/v5"
differ "renaming a file changes the tree hash" "$(cat "$OUT")" "$H"

# ---- single files ----
for f in "file" "sub/dir/big.bin" "emptyfile" "run.sh"; do
	check "store add FILE ($f)" kb store add "$T/src/$f"
	same "store add $f prints its sha256sum" "$(cat "$OUT")" "$(sha "$T/src/$f")"
	fh=$(cat "$OUT")
	run kb store cat "$fh"
	if [ "$RC" -eq 0 ] && cmp -s "$OUT" "$T/src/$f"; then
		ok "store cat of $f's hash gives its bytes"
	else
		fail "store cat of $f's hash gives its bytes (exit $RC)"
	fi
done
check "store add of several paths" kb store add "$T/src/file" "$T/src" "$T/src/emptyfile"
same "...prints one hash per path, in order" "$(tr '\n' ' ' <"$OUT")" \
	"$(sha "$T/src/file") $H $(sha "$T/src/emptyfile") "
check "store add FILE through a symlink on the command line" kb store add "$T/src/rel-link"
same "...stores the file it names" "$(cat "$OUT")" "$(sha "$T/src/file")"

# ---- ls ----
check "store ls of the tree" kb store ls "$H"
cp "$OUT" "$T/ls"
out_has "ls shows the file with its content hash" "f $(sha "$T/src/file") file"
out_has "ls shows the executable as x" "x $(sha "$T/src/run.sh") run.sh"
out_has "ls shows a symlink as the hash of its target" "l $(sha_str file) rel-link" \
	"l $(sha_str /etc/hostname) abs-link" "l $(sha_str does/not/exist) dangling"
out_has "ls shows directories and the empty file" " emptytop" " empty" \
	"f $(sha_str '') emptyfile"
out_has "ls quotes non-printable name bytes" 'd \xff\xfe\x0aname'
same "ls lists exactly the top-level entries" "$(wc -l <"$T/ls")" \
	"$(find "$T/src" -mindepth 1 -maxdepth 1 -printf x | wc -c)"
check "store ls -r of the tree" kb store ls -r "$H"
out_has "ls -r descends" "f $(sha "$T/src/sub/dir/big.bin") sub/dir/big.bin" " empty/nested/deeper" \
	"l $(sha_str ../file) sub/up-link" "x $(sha "$T/src/sub/owner-x") sub/owner-x"
# newlines in names are quoted, so the line count is the entry count
same "ls -r lists every entry once" "$(wc -l <"$OUT")" "$(find "$T/src" -mindepth 1 -printf x | wc -c)"
check "store ls --recursive is ls -r" kb store ls --recursive "$H"
same "...same output" "$(wc -l <"$OUT")" "$(find "$T/src" -mindepth 1 -printf x | wc -c)"
expect_fail 1 "store ls of a blob fails" kb store ls "$(sha "$T/src/file")"
err_has "...and says it is a blob" "blob"

# ---- checkout (hardlinks) ----
check "store checkout (hardlinks)" kb store checkout "$H" "$T/co"
same_tree "hardlink checkout reproduces the tree" "$T/src" "$T/co"
ino_co=$(stat -c %i "$T/co/file")
ino_obj=$(stat -c %i "$(objpath "$(sha "$T/src/file")")")
same "a checked-out file is the store object's inode" "$ino_co" "$ino_obj"
truth "a checked-out file has more than one link" test "$(stat -c %h "$T/co/sub/dir/big.bin")" -gt 1
same "checked-out plain files are read-only (0444)" "$(stat -c %a "$T/co/file")" 444
same "checked-out executables are 0555" "$(stat -c %a "$T/co/run.sh")" 555
same "an owner-only x bit comes back as 0555" "$(stat -c %a "$T/co/sub/owner-x")" 555
same "the empty file comes back empty" "$(stat -c %s "$T/co/emptyfile")" 0
same "a dangling symlink stays dangling" "$(readlink "$T/co/dangling")" does/not/exist
same "an absolute symlink keeps its target" "$(readlink "$T/co/abs-link")" /etc/hostname
truth "empty nested directories come back" test -d "$T/co/empty/nested/deeper"
truth "the odd-named directory and file come back" test -f "$T/co/$ODD/x" -a -f "$T/co/$ODDF"
hx=$(sha "$T/src/run.sh")
ino_x=$(stat -c %i "$S/objects/${hx:0:2}/${hx:2}.x")
same "the executable is hardlinked to an executable store object" "$(stat -c %i "$T/co/run.sh")" "$ino_x"
# a file stored executable, checked out plain: a separate 0444 variant
mkdir "$T/plainx"
cp "$T/src/run.sh" "$T/plainx/run-plain"
chmod 644 "$T/plainx/run-plain"
run kb store add "$T/plainx"
H2=$(cat "$OUT")
check "checkout of the same content without x" kb store checkout "$H2" "$T/co-plainx"
same "...is 0444 although the content is also stored as 0555" "$(stat -c %a "$T/co-plainx/run-plain")" 444
same "...and the executable checkout stays 0555" "$(stat -c %a "$T/co/run.sh")" 555
check "fsck is clean after checkouts" kb store fsck

# ---- checkout --copy ----
check "store checkout --copy" kb store checkout --copy "$H" "$T/copyco"
same_tree "copy checkout reproduces the tree" "$T/src" "$T/copyco"
same "a copied file has one link" "$(stat -c %h "$T/copyco/sub/dir/big.bin")" 1
differ "a copied file is not the store's inode" "$(stat -c %i "$T/copyco/file")" "$ino_obj"
same "copied plain files are 0644" "$(stat -c %a "$T/copyco/file")" 644
same "copied executables are 0755" "$(stat -c %a "$T/copyco/run.sh")" 755
printf 'changed\n' >"$T/copyco/file"
run kb store cat "$(sha "$T/src/file")"
same_file "editing a copied file leaves the store object alone" "$OUT" "$T/src/file"
check "fsck is clean after editing a copy" kb store fsck

# ---- checkout: destinations ----
mkdir "$T/busy"
printf 'mine\n' >"$T/busy/keep"
before=$(listing "$T/busy")
expect_fail 1 "checkout into a non-empty directory fails" kb store checkout "$H" "$T/busy"
err_has "...naming it" "$T/busy"
same "...and leaves it untouched" "$(listing "$T/busy")" "$before"
expect_fail 1 "checkout onto an existing file fails" kb store checkout "$H" "$T/busy/keep"
same "...and leaves it untouched" "$(cat "$T/busy/keep")" mine
mkdir "$T/emptydest"
check "checkout into an existing empty directory" kb store checkout "$H" "$T/emptydest"
same_tree "...reproduces the tree" "$T/src" "$T/emptydest"
check "checkout of a blob to a new path" kb store checkout "$(sha "$T/src/sub/dir/big.bin")" "$T/one.bin"
same_file "...writes its content" "$T/one.bin" "$T/src/sub/dir/big.bin"
check "checkout with a relative destination" bash -c 'cd "$1" && "$2" store checkout "$3" rel/../relco' _ "$T" "$KBUILD" "$H"
same_tree "...lands where the path says" "$T/src" "$T/relco"
leftovers=$(find "$T" -maxdepth 2 -name '*kbuild-tmp*' | wc -l)
same "no temporary checkout directories are left behind" "$leftovers" 0

finish
