#!/usr/bin/env bash
# kbuild diff: one kind of non-determinism injected at a time (an embedded
# date, the build path in an ELF section, a random byte, file order, a
# umask, an mtime, a module signature, SOURCE_DATE_EPOCH in an .rpm), and
# the difference must be named down to the inner file and reason; the
# same path must appear in diffoscope's report. Also: identical inputs,
# --json, nesting, store operands, --max, bad and truncated input.
. "$(dirname "$0")/lib.sh"

export SOURCE_DATE_EPOCH=1700000000
W=$T/w
mkdir -p "$W"
cd "$W" || exit 1

# kdiff WANT_RC DESC A B [OPTIONS]: kbuild diff, its exit status checked
kdiff() {
	local want=$1 desc=$2
	shift 2
	run kb diff "$@"
	if [ "$RC" = "$want" ]; then
		ok "$desc"
	else
		fail "$desc (exit $RC, wanted $want)"
		diag_file "$OUT"
		diag_file "$ERR"
	fi
}
# line_has DESC STRING...: one line of $OUT holds every STRING
line_has() {
	local desc=$1
	shift
	if python3 - "$OUT" "$@" <<'EOF'; then
import sys
lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
sys.exit(0 if any(all(w in l for w in sys.argv[2:]) for l in lines) else 1)
EOF
		ok "$desc"
	else
		fail "$desc (no line has: $*)"
		diag_file "$OUT"
	fi
}
# dscope DESC A B STRING: diffoscope's report on A and B mentions STRING
# (kbuild's name for the innermost thing that differs)
dscope() {
	local desc=$1 a=$2 b=$3 s=$4
	if ! command -v diffoscope >/dev/null; then
		fail "$desc (diffoscope is not installed: .ci/setup installs diffoscope-minimal)"
		return
	fi
	diffoscope --text - "$a" "$b" >"$W/dscope.out" 2>"$W/dscope.err"
	if grep -qF -- "$s" "$W/dscope.out"; then
		ok "$desc"
	else
		fail "$desc (diffoscope's report lacks '$s')"
		diag_file "$W/dscope.out"
	fi
}

# ---- an embedded timestamp: a .deb whose data.tar.xz holds a dated file ----
mkdir -p p1/usr/share/doc/hello p2/usr/share/doc/hello
printf 'hello\nBuilt on Mon Jan  1 10:00:00 UTC 2024\nbye\n' >p1/usr/share/doc/hello/BUILDINFO
printf 'hello\nBuilt on Tue Feb  6 11:30:00 UTC 2024\nbye\n' >p2/usr/share/doc/hello/BUILDINFO
printf 'same\n' | tee p1/usr/share/doc/hello/README >p2/usr/share/doc/hello/README
check "store add payload 1" kb store add p1
T1=$(cat "$OUT")
check "store add payload 2" kb store add p2
T2=$(cat "$OUT")
deb=(--name hello --version 1.0 --arch amd64 --maintainer 'K B <kb@example.org>' --summary s)
check "package deb 1" kb package deb "${deb[@]}" -o a.deb "$T1"
check "package deb 2" kb package deb "${deb[@]}" -o b.deb "$T2"
kdiff 1 "timestamp: the .debs differ (exit 1)" a.deb b.deb
line_has "timestamp: the text line names data.tar.xz and the file" \
	"data.tar.xz > ./usr/share/doc/hello/BUILDINFO: text differs from line 2"
out_has "timestamp: the unified diff shows both dates" \
	"-Built on Mon Jan  1 10:00:00 UTC 2024" "+Built on Tue Feb  6 11:30:00 UTC 2024"
line_has "timestamp: md5sums in control.tar.xz differ too" "control.tar.xz > ./md5sums"
if grep -q '> ./usr/share/doc/hello/README' "$OUT"; then fail "the unchanged README is not reported"; else ok "the unchanged README is not reported"; fi
dscope "timestamp: diffoscope names the same file" a.deb b.deb "./usr/share/doc/hello/BUILDINFO"

# identical
kdiff 0 "identical .debs: exit 0" a.deb a.deb
same "identical: says so" "$(cat "$OUT")" identical
cp a.deb a-copy.deb
kdiff 0 "identical copies: exit 0" a.deb a-copy.deb

# --json: parses, same paths as the lines
kdiff 1 "--json: exit 1" --json a.deb b.deb
cp "$OUT" diff.json
check "--json parses (python3 -m json.tool)" python3 -m json.tool diff.json
same "--json: the same paths" "$(python3 -c '
import json, sys
for d in json.load(open(sys.argv[1])):
    print(" > ".join(d["path"]) + " [" + d["kind"] + "]")' diff.json)" \
	"$(printf '%s\n' '{a.deb,b.deb} > control.tar.xz > ./md5sums [text]' \
		'{a.deb,b.deb} > data.tar.xz > ./usr/share/doc/hello/BUILDINFO [text]')"
kdiff 0 "--json identical: exit 0" --json a.deb a.deb
same "--json identical: an empty array" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])))' "$OUT")" "[]"

# store operands: two trees, entry by entry; blobs by hash
kdiff 1 "store trees: exit 1" "$T1" "$T2"
line_has "store trees: the file by its path in the tree" \
	"{${T1:0:12},${T2:0:12}} > usr/share/doc/hello/BUILDINFO: text differs"
check "store add a.deb" kb store add a.deb
DA=$(cat "$OUT")
check "store add b.deb" kb store add b.deb
DB=$(cat "$OUT")
kdiff 1 "store blobs: exit 1" "$DA" "$DB"
line_has "store blobs: opened as .debs" "data.tar.xz > ./usr/share/doc/hello/BUILDINFO"
check "ref set" kb store ref set pkgs/a "$DA"
kdiff 1 "a ref name and a file" pkgs/a b.deb
line_has "ref and file: the file named" "./usr/share/doc/hello/BUILDINFO"

# ---- the build path inside an ELF section ----
for v in a b; do
	mkdir -p "$v/src"
	printf 'const char *where(void) { return __FILE__; }\nint twice(int x) { return 2 * x; }\n' \
		>"$v/src/mod.c"
	cc -O2 -c "$W/$v/src/mod.c" -o "$v.o" || fail "cc -c $v/src/mod.c"
done
kdiff 1 "build path: the objects differ" a.o b.o
# .rodata.str1.1, or .str1.8 when the path is long enough to be aligned
line_has "build path: names the section and both paths" "{a.o,b.o} > section .rodata.str1." \
	"$W/a/src/mod.c" "$W/b/src/mod.c"
sec=$(sed -n 's/^{a.o,b.o} > section \([^:]*\): .*/\1/p' "$OUT" | head -n 1)
dscope "build path: diffoscope names the same section ($sec)" a.o b.o "${sec:-no section}"
for v in a b; do cc -O2 -g -c "$W/$v/src/mod.c" -o "$v-g.o"; done
kdiff 1 "build path with -g: differ" a-g.o b-g.o
line_has "build path with -g: a debug string section named" "section .debug_"

# ---- a module signed vs unsigned, and signed twice ----
cp a.o m.ko
sign() { # FILE SIGBYTE: a fake PKCS#7 signature trailer appended
	python3 - "$1" "$2" <<'EOF'
import struct, sys
sig = bytes([0x30, 0x82]) + bytes([int(sys.argv[2])]) * 300
with open(sys.argv[1], "ab") as f:
    f.write(sig + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, len(sig)) + b"~Module signature appended~\n")
EOF
}
cp m.ko m-signed.ko && sign m-signed.ko 1
cp m.ko m-signed2.ko && sign m-signed2.ko 2
kdiff 1 "unsigned vs signed module: differ" m.ko m-signed.ko
line_has "unsigned vs signed: a signature line, only B signed" "m-signed.ko} > signature: only B is signed" "PKCS#7"
if grep -q section "$OUT"; then fail "unsigned vs signed: no section reported"; else ok "unsigned vs signed: no section reported"; fi
kdiff 1 "re-signed module: differ" m-signed.ko m-signed2.ko
line_has "re-signed: the signatures differ" "> signature: the module signatures differ"
dscope "signature: diffoscope sees the trailer" m.ko m-signed.ko "Module signature appended"

# ---- a random byte in a plain file ----
head -c 5000 /dev/urandom >r1.bin
cp r1.bin r2.bin
flip_byte r2.bin 1234
kdiff 1 "random byte: differ" r1.bin r2.bin
line_has "random byte: the offset" "{r1.bin,r2.bin}: differs at offset 0x4d2 (1 of 5000 bytes differ)"
dscope "random byte: diffoscope shows the same offset" r1.bin r2.bin "000004d0"

# ---- tar: file order, umask, mtime ----
mkdir -p tt/pkg
printf 'one\n' >tt/pkg/one
printf 'two\n' >tt/pkg/two
chmod 644 tt/pkg/one tt/pkg/two
mktar() { tar -C tt --mtime="@${MT:-0}" --owner=0 --group=0 --numeric-owner -cf "$@"; }
mktar order1.tar pkg/one pkg/two
mktar order2.tar pkg/two pkg/one
kdiff 1 "order: differ" order1.tar order2.tar
line_has "order: same entries, different order" "{order1.tar,order2.tar}: same entries, different order" "pkg/two"
dscope "order: diffoscope lists the entry" order1.tar order2.tar "pkg/two"
chmod 664 tt/pkg/one
mktar umask2.tar pkg/one pkg/two
chmod 644 tt/pkg/one
kdiff 1 "umask: differ" order1.tar umask2.tar
line_has "umask: the mode of the inner entry" "{order1.tar,umask2.tar} > pkg/one: mode 0644 vs 0664"
dscope "umask: diffoscope names the entry" order1.tar umask2.tar "pkg/one"
MT=1700000000 mktar mtime2.tar pkg/one pkg/two
xz -k order1.tar
xz -k mtime2.tar
kdiff 1 "mtime: differ" order1.tar.xz mtime2.tar.xz
line_has "mtime: the inner entry's mtime" "{order1.tar.xz,mtime2.tar.xz} > pkg/one: mtime 1970-01-01 00:00:00 vs 2023-11-14 22:13:20 UTC"
dscope "mtime: diffoscope names the entry" order1.tar.xz mtime2.tar.xz "pkg/one"
xz -1 -c order1.tar >order1-fast.tar.xz
kdiff 1 "recompressed: differ" order1.tar.xz order1-fast.tar.xz
line_has "recompressed: every entry equal, the compression differs" "every entry and its metadata compare equal"

# large enough that both sides are listed at once (two threads), with
# members over the 1 MiB kept from the listing (read again to compare)
mkdir -p big
head -c 1500000 /dev/urandom >big/blob
head -c 300000 /dev/urandom >big/small
tar -C big --mtime=@0 --owner=0 --group=0 -cJf big1.tar.xz blob small
flip_byte big/blob 1400000
tar -C big --mtime=@0 --owner=0 --group=0 -cJf big2.tar.xz blob small
kdiff 1 "large tar.xz: differ" big1.tar.xz big2.tar.xz
line_has "large tar.xz: the member read again, its offset" \
	"{big1.tar.xz,big2.tar.xz} > blob: differs at offset 0x155cc0 (1 of 1500000 bytes differ)"

# ---- .rpm at two SOURCE_DATE_EPOCHs ----
rpm=(--name hello --version 1.0 --release 1 --arch x86_64 --license MIT --summary s)
check "package rpm 1" kb package rpm "${rpm[@]}" --source-date-epoch 1700000000 -o a.rpm "$T1"
check "package rpm 2" kb package rpm "${rpm[@]}" --source-date-epoch 1700000100 -o b.rpm "$T1"
kdiff 1 "rpm: differ" a.rpm b.rpm
line_has "rpm: BUILDTIME by name" "{a.rpm,b.rpm} > header > tag BUILDTIME: 1700000000" "1700000100"
line_has "rpm: FILEMTIMES names a file" "header > tag FILEMTIMES: item" "/usr/share/doc/hello"
line_has "rpm: the payload entry's mtime" "payload > ./usr/share/doc/hello/README: mtime"
dscope "rpm: diffoscope names BUILDTIME" a.rpm b.rpm "BUILDTIME"
check "package rpm with the other payload" kb package rpm "${rpm[@]}" -o c.rpm "$T2"
kdiff 1 "rpm content: differ" a.rpm c.rpm
line_has "rpm content: the payload file's text" "payload > ./usr/share/doc/hello/BUILDINFO: text differs from line 2"
line_has "rpm content: FILEDIGESTS item names the file" "tag FILEDIGESTS: item" "(/usr/share/doc/hello/BUILDINFO)"
dscope "rpm content: diffoscope names the file" a.rpm c.rpm "./usr/share/doc/hello/BUILDINFO"

# ---- initramfs (cpio newc, zstd) and ISO 9660 ----
mkdir -p ir/etc
printf 'a=1\n' >ir/etc/conf
(cd ir && find . | LC_ALL=C sort | cpio -o -H newc --reproducible 2>/dev/null | zstd -q) >i1.img
printf 'a=2\n' >ir/etc/conf
(cd ir && find . | LC_ALL=C sort | cpio -o -H newc --reproducible 2>/dev/null | zstd -q) >i2.img
kdiff 1 "initramfs: differ" i1.img i2.img
line_has "initramfs: the inner file" "{i1.img,i2.img} > " "etc/conf: text differs from line 1"
dscope "initramfs: diffoscope names the same file" i1.img i2.img "etc/conf"
if command -v xorriso >/dev/null; then
	mkdir -p iso/boot
	printf 'menu 1\n' >iso/boot/menu.cfg
	touch -d @1700000000 iso/boot/menu.cfg iso/boot iso
	xorriso -as mkisofs -quiet -R -o c1.iso iso 2>/dev/null
	printf 'menu 2\n' >iso/boot/menu.cfg
	touch -d @1700000000 iso/boot/menu.cfg iso/boot iso
	xorriso -as mkisofs -quiet -R -o c2.iso iso 2>/dev/null
	kdiff 1 "ISO: differ" c1.iso c2.iso
	line_has "ISO: the inner file" "{c1.iso,c2.iso} > boot/menu.cfg: text differs from line 1"
else
	fail "xorriso is not installed (.ci/setup installs it)"
fi

# ---- nested: a .deb inside a tar.gz inside a directory ----
mkdir -p n1/sub n2/sub nt
cp a.deb nt/hello.deb
tar -C nt --mtime=@0 --owner=0 --group=0 -czf n1/sub/bundle.tar.gz ./hello.deb
cp b.deb nt/hello.deb
tar -C nt --mtime=@0 --owner=0 --group=0 -czf n2/sub/bundle.tar.gz ./hello.deb
printf 'x\n' | tee n1/same >n2/same
printf 'only\n' >n1/only-a
kdiff 1 "nested: differ" n1 n2
line_has "nested: the whole chain" \
	"{n1,n2} > sub/bundle.tar.gz > ./hello.deb > data.tar.xz > ./usr/share/doc/hello/BUILDINFO: text differs"
line_has "nested: a file only in A" "{n1,n2} > only-a: only in A"
dscope "nested: diffoscope names the same inner file" n1 n2 "./usr/share/doc/hello/BUILDINFO"

# ---- --max ----
mkdir -p many
for i in $(seq 1 12); do printf '%s\n' "$i" >many/f$i; done
tar -C many --mtime=@0 -cf many1.tar .
tar -C many --mtime=@9 -cf many2.tar .
kdiff 1 "--max 5: differ" --max 5 many1.tar many2.tar
same "--max 5: five lines and the count" "$(wc -l <"$OUT")" 6
out_has "--max 5: the rest counted" "... 8 more differences"
kdiff 1 "--max 5 --json" --json --max 5 many1.tar many2.tar
same "--json --max: the count object" "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(len(d), d[-1]["kind"], d[-1]["count"])' "$OUT")" "6 more 8"
expect_fail 2 "--max 0 is bad usage" kb diff --max 0 a.deb b.deb
expect_fail 2 "one operand is bad usage" kb diff a.deb

# ---- bad input ----
expect_fail 2 "a missing file: exit 2" kb diff a.deb nosuch.deb
err_has "a missing file: named" "nosuch.deb: no such file or directory"
expect_fail 2 "a hash not in the store: exit 2" kb diff a.deb "$(sha_str nothing)"
err_has "a hash not in the store: said so" "$(sha_str nothing)" "not in the store"
mkfifo fifo
expect_fail 2 "a fifo: exit 2, not a hang" kb diff a.deb fifo
if [ "$(id -u)" != 0 ]; then
	cp a.deb unreadable.deb && chmod 000 unreadable.deb
	expect_fail 2 "an unreadable file: exit 2" kb diff a.deb unreadable.deb
	err_has "an unreadable file: named" "unreadable.deb"
else
	mkdir -p locked && : >locked/f
	expect_fail 2 "a file below a regular file (not a directory): exit 2" kb diff a.deb a.deb/x
fi
head -c 700 a.deb >trunc.deb
kdiff 1 "truncated .deb: a difference, not a crash" a.deb trunc.deb
line_has "truncated .deb: cannot read ... (truncated" "cannot read B as an ar archive" "truncated"
ar p a.deb data.tar.xz >data.tar.xz
head -c 150 data.tar.xz >trunc.tar.xz
kdiff 1 "truncated .xz: a difference, not a crash" data.tar.xz trunc.tar.xz
line_has "truncated .xz: cannot read" "cannot read B as compressed data" "truncated"
head -c 400 a.rpm >trunc.rpm
kdiff 1 "truncated .rpm: a difference" a.rpm trunc.rpm
line_has "truncated .rpm: said so" "cannot read B's rpm headers"
head -c 1000 a.o >trunc.o
kdiff 1 "truncated ELF: a difference" a.o trunc.o
line_has "truncated ELF: said so" "cannot read B as ELF"
kdiff 1 "a .deb vs an .rpm: the types" a.deb a.rpm
line_has "a .deb vs an .rpm: named" "A is an ar archive, B is an rpm package"

finish
