#!/usr/bin/env bash
# kbuild buildroot: build roots unpacked from .deb and .rpm payloads.
# (a) crafted .debs with bad paths are refused, naming package and path,
# and store nothing; (b) a good crafted .deb unpacks right (modes, links,
# hardlinks, merged /usr); conflicts between packages; the cache; (c) an
# .rpm made with rpmbuild; (d) the real build-essential + kernel headers
# closure from the fixtures ($KBUILD_FIXTURES/debs): cached rebuild,
# hardlink checkout, and gcc-12 compiling and running a program in a
# chroot of it.
. "$(dirname "$0")/lib.sh"

FIX=${KBUILD_FIXTURES:-/var/cache/kbuild-fixtures}
W=$T/w
mkdir -p "$W"

# mkdeb OUT NAME < SPEC: a .deb (debian-binary, control.tar.xz,
# data.tar.xz, assembled with ar) whose data.tar holds SPEC's entries in
# order, one a line:
#   d PATH | f PATH MODE TEXT | l PATH TARGET | h PATH TARGET | c PATH (fifo)
# Python's tarfile writes any path, which dpkg-deb would refuse to build.
mkdeb() {
	local out=$1 name=$2 dir
	dir=$(mktemp -d "$W/deb.XXXXXX")
	cat >"$dir/spec"
	python3 - "$dir" "$name" <<'EOF' || return 1
import io, sys, tarfile
dir, name = sys.argv[1], sys.argv[2]
def add(tf, path, typ, mode=0o644, data=b"", target=""):
    ti = tarfile.TarInfo(path)
    ti.type, ti.mode, ti.uname, ti.gname, ti.mtime = typ, mode, "root", "root", 1700000000
    if typ == tarfile.REGTYPE:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        ti.linkname = target
        tf.addfile(ti)
with tarfile.open(dir + "/data.tar.xz", "w:xz", format=tarfile.GNU_FORMAT) as tf:
    for line in open(dir + "/spec").read().splitlines():
        if not line.strip():
            continue
        kind, rest = line.split(" ", 1)
        if kind == "d":
            add(tf, rest, tarfile.DIRTYPE, 0o755)
        elif kind == "f":
            path, mode, text = rest.split(" ", 2)
            add(tf, path, tarfile.REGTYPE, int(mode, 8), (text + "\n").encode())
        elif kind == "l":
            path, target = rest.split(" ", 1)
            add(tf, path, tarfile.SYMTYPE, 0o777, target=target)
        elif kind == "h":
            path, target = rest.split(" ", 1)
            add(tf, path, tarfile.LNKTYPE, 0o644, target=target)
        elif kind == "c":
            add(tf, rest, tarfile.FIFOTYPE, 0o644)
control = ("Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\n"
           "Description: test package\n" % name).encode()
with tarfile.open(dir + "/control.tar.xz", "w:xz") as tf:
    add(tf, "./control", tarfile.REGTYPE, 0o644, control)
open(dir + "/debian-binary", "w").write("2.0\n")
EOF
	(cd "$dir" && rm -f "$out" && ar rc "$out" debian-binary control.tar.xz data.tar.xz)
}

# add FILE: stores it, prints the blob hash
add() { kb -q store add "$1"; }

# ---- (a) refusals ----
refused() { # DESC NAME PATH-IN-MESSAGE < SPEC
	local desc=$1 name=$2 path=$3 h before
	mkdeb "$W/$name.deb" "$name" || {
		fail "$desc: could not make the .deb"
		return
	}
	h=$(add "$W/$name.deb")
	before=$(objects)
	expect_fail 1 "$desc: refused" kb buildroot "$h"
	err_has "$desc: the message names the package and the path" "$name 1.0" "'$path'" "refused"
	diag "$(head -c 300 "$ERR")"
	same "$desc: nothing lands in the store" "$(objects)" "$before"
}

refused "'..' in a path" bad-dotdot ../etc/x <<'EOF'
d ./usr/
f ./usr/ok 644 fine
f ../etc/x 644 escaped
EOF
refused "an absolute path" bad-abs /etc/x <<'EOF'
d ./usr/
f ./usr/ok 644 fine
f /etc/x 644 escaped
EOF
refused "a file through a symlink to /etc" bad-symlink usr/evil/passwd <<'EOF'
d ./usr/
f ./usr/ok 644 fine
l ./usr/evil /etc
f ./usr/evil/passwd 644 root::0:0::/:/bin/sh
EOF
err_has "the symlink is named with its target" "'usr/evil' (-> '/etc'"
refused "a file through a relative symlink out of the root" bad-uplink a/x <<'EOF'
l ./a ../../..
f ./a/x 644 escaped
EOF
refused "a '..' hidden in the middle" bad-middle ./usr/../../x <<'EOF'
f ./usr/../../x 644 escaped
EOF
refused "a hardlink out of the root" bad-hardlink ../../etc/shadow <<'EOF'
f ./usr/ok 644 fine
h ./usr/hl ../../etc/shadow
EOF
refused "a directory through a symlink" bad-dirlink usr/share/d/sub <<'EOF'
l ./usr/share/d /tmp
d ./usr/share/d/sub/
EOF
refused "a file where a layout link is" bad-layout bin <<'EOF'
f ./bin 644 not a directory
EOF
printf 'hello\n' >"$W/not-a-deb"
expect_fail 1 "a blob that is not a package is refused" kb buildroot "$(add "$W/not-a-deb")"
err_has "... saying so" "neither a .deb"
expect_fail 1 "a hash that is not stored is refused" kb buildroot "$(sha_str nothing)"
err_has "... saying so" "not in the store"
expect_fail 2 "no package is a usage error" kb buildroot
check "--help" kb buildroot --help
out_has "--help describes the command" "usage: kbuild buildroot" "--checkout DIR"

# ---- (b) a good .deb ----
mkdeb "$W/good.deb" good <<'EOF'
d ./
d ./bin/
d ./usr/
d ./usr/bin/
d ./usr/lib/
d ./usr/share/good/
f ./usr/bin/tool 755 #!/bin/sh echo tool
f ./usr/bin/suid 4755 setuid program
f ./usr/share/good/data 600 private data
f ./bin/fromroot 755 lands in usr/bin
l ./usr/bin/link tool
l ./usr/share/good/abs /etc/passwd
l ./usr/share/good/up ../../../..
h ./usr/lib/hardlink ./usr/share/good/data
h ./usr/lib/hardlink-x usr/bin/tool
c ./usr/share/good/fifo
f ./lib64/ld-test 644 through lib64
EOF
G=$(add "$W/good.deb")
check "a good .deb makes a root" kb buildroot --ref roots/good "$G"
R1=$(cat "$OUT")
truth "... and prints a tree hash" is_hash "$R1"
err_has "the fifo is skipped with a warning naming package and path" "good 1.0" "fifo" "'./usr/share/good/fifo'"
check "the root checks out" kb buildroot --checkout "$W/good" "$G"
same "... to the same tree" "$(cat "$OUT")" "$R1"
err_has "the second time it is cached" "cached"
D=$W/good
truth "bin is the layout link to usr/bin" [ "$(readlink "$D/bin")" = usr/bin ]
truth "sbin, lib, lib64 are layout links" [ "$(readlink "$D/sbin")$(readlink "$D/lib")$(readlink "$D/lib64")" = usr/sbinusr/libusr/lib64 ]
truth "bin/fromroot landed in usr/bin" [ -f "$D/usr/bin/fromroot" ] && [ ! -L "$D/usr/bin/fromroot" ]
truth "lib64/ld-test landed in usr/lib64" [ -f "$D/usr/lib64/ld-test" ]
same "a file's content" "$(cat "$D/usr/bin/tool")" "#!/bin/sh echo tool"
truth "an executable is executable" [ -x "$D/usr/bin/tool" ]
truth "a 0600 file is a plain file" [ -f "$D/usr/share/good/data" ] && [ ! -x "$D/usr/share/good/data" ]
truth "the setuid file keeps its x bit" [ -x "$D/usr/bin/suid" ]
truth "... but not setuid" [ ! -u "$D/usr/bin/suid" ]
same "a symlink keeps its target" "$(readlink "$D/usr/bin/link")" tool
same "an absolute symlink is kept as it is" "$(readlink "$D/usr/share/good/abs")" /etc/passwd
same "a symlink out of the root is kept as a symlink" "$(readlink "$D/usr/share/good/up")" ../../../..
same "a hardlink has its target's content" "$(cat "$D/usr/lib/hardlink")" "private data"
truth "a hardlink to an executable is executable" [ -x "$D/usr/lib/hardlink-x" ]
truth "no fifo" [ ! -e "$D/usr/share/good/fifo" ]
truth "a minimal etc/passwd" grep -qx 'root:x:0:0:root:/root:/bin/sh' "$D/etc/passwd"
truth "a minimal etc/group" grep -qx 'root:x:0:' "$D/etc/group"
truth "no awk without mawk" [ ! -e "$D/usr/bin/awk" ] && [ ! -L "$D/usr/bin/awk" ]
check "the ref names the root" kb store ref get roots/good
out_has "... its tree" "$R1"

# the same content from another package is fine; different content is not
mkdeb "$W/same.deb" same <<'EOF'
f ./usr/bin/tool 755 #!/bin/sh echo tool
d ./bin/
l ./bin usr/bin
l ./usr/bin/link tool
f ./usr/bin/mawk 755 a pretend mawk
f ./usr/bin/gcc 755 a pretend gcc
EOF
S=$(add "$W/same.deb")
check "two packages shipping the same file, link and dir agree" kb buildroot "$G" "$S"
R2=$(cat "$OUT")
check "the other order gives the same root, from the cache" kb buildroot "$S" "$G"
same "... the same tree" "$(cat "$OUT")" "$R2"
err_has "... cached" "cached"
check "the root of both checks out" kb store checkout "$R2" "$W/both"
same "awk -> mawk when mawk is there" "$(readlink "$W/both/usr/bin/awk")" mawk
same "cc -> gcc when gcc is there" "$(readlink "$W/both/usr/bin/cc")" gcc
truth "no c++ without g++" [ ! -L "$W/both/usr/bin/c++" ]
mkdeb "$W/other.deb" other <<'EOF'
f ./usr/bin/tool 755 #!/bin/sh echo another tool
EOF
O=$(add "$W/other.deb")
before=$(objects)
expect_fail 1 "a different file at the same path is refused" kb buildroot "$G" "$O"
err_has "... naming both packages and the path" "good 1.0" "other 1.0" "'usr/bin/tool'" "Replaces"
same "... and nothing lands in the store" "$(objects)" "$before"
mkdeb "$W/modes.deb" modes <<'EOF'
f ./usr/bin/tool 644 #!/bin/sh echo tool
EOF
expect_fail 1 "the same content with another x bit is refused" kb buildroot "$G" "$(add "$W/modes.deb")"
err_has "... saying so" "different mode"
mkdeb "$W/relink.deb" relink <<'EOF'
l ./usr/bin/link other
EOF
expect_fail 1 "a symlink with another target is refused" kb buildroot "$G" "$(add "$W/relink.deb")"
err_has "... naming both targets" "'other'" "'tool'" "good 1.0"
mkdeb "$W/linkdir.deb" linkdir <<'EOF'
l ./usr/share/good tool
EOF
expect_fail 1 "a symlink where another package has a directory is refused" kb buildroot "$G" "$(add "$W/linkdir.deb")"
mkdeb "$W/lib32.deb" lib32 <<'EOF'
f ./lib32/libx.so 644 32-bit
EOF
check "lib32 becomes a layout link when a package ships below it" kb buildroot --checkout "$W/l32" "$(add "$W/lib32.deb")"
truth "... lib32 -> usr/lib32 and the file in usr/lib32" [ "$(readlink "$W/l32/lib32")" = usr/lib32 ] && [ -f "$W/l32/usr/lib32/libx.so" ]
# dpkg-deb's own output, with each payload compression it makes
P=$W/pkgdir
mkdir -p "$P/DEBIAN" "$P/usr/bin" "$P/usr/share/doc/viadpkg"
printf 'Package: viadpkg\nVersion: 2.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n' >"$P/DEBIAN/control"
printf '#!/bin/sh\necho hi\n' >"$P/usr/bin/hi"
chmod 4755 "$P/usr/bin/hi"
echo doc >"$P/usr/share/doc/viadpkg/README"
ln -s hi "$P/usr/bin/hello"
roots=()
for z in xz gzip zstd none; do
	if dpkg-deb --root-owner-group -Z"$z" --build "$P" "$W/viadpkg-$z.deb" >/dev/null 2>&1; then
		check "dpkg-deb -Z$z: unpacked" kb buildroot "$W/viadpkg-$z.deb"
		roots+=("$(cat "$OUT")")
	else
		ok "skipped: this dpkg-deb cannot make -Z$z"
	fi
done
truth "every compression gives the same root" [ "$(printf '%s\n' "${roots[@]}" | sort -u | wc -l)" = 1 ]
mkdeb "$W/lib32evil.deb" lib32evil <<'EOF'
l ./usr/lib32 /etc
f ./lib32/passwd 644 root::0:0::/:/bin/sh
EOF
check "lib32 is no layout link when a package has usr/lib32 as a symlink" kb buildroot --checkout "$W/l32e" "$(add "$W/lib32evil.deb")"
truth "... lib32 is a plain directory, usr/lib32 the package's symlink" [ -d "$W/l32e/lib32" ] && [ ! -L "$W/l32e/lib32" ] && [ -f "$W/l32e/lib32/passwd" ] && [ "$(readlink "$W/l32e/usr/lib32")" = /etc ]
check "a package given as a path is added first" kb buildroot "$W/good.deb"
same "... the same root" "$(cat "$OUT")" "$R1"
check "the store is sound" kb store fsck

# ---- (c) an .rpm made with rpmbuild ----
if command -v rpmbuild >/dev/null; then
	mkdir -p "$HOME" "$W/rpm"
	cat >"$HOME/.rpmmacros" <<EOF
%_topdir $W/rpm
%_dbpath $W/rpmdb
%_buildhost kbuild-test
EOF
	cat >"$W/kbt.spec" <<'EOF'
Name: kbt
Version: 1.0
Release: 1
Summary: kbuild test package
License: MIT
BuildArch: noarch
%description
A test package.
%install
mkdir -p %{buildroot}/usr/share/kbt %{buildroot}/usr/bin
echo hello from an rpm > %{buildroot}/usr/share/kbt/hello.txt
printf '#!/bin/sh\necho run\n' > %{buildroot}/usr/bin/kbt-run
chmod 755 %{buildroot}/usr/bin/kbt-run
ln -s ../share/kbt/hello.txt %{buildroot}/usr/bin/kbt-link
ln %{buildroot}/usr/share/kbt/hello.txt %{buildroot}/usr/share/kbt/hardlink.txt
%files
/usr/share/kbt
/usr/bin/kbt-run
/usr/bin/kbt-link
EOF
	if run rpmbuild -bb --quiet "$W/kbt.spec" && RPM=$(ls "$W"/rpm/RPMS/noarch/kbt-*.rpm 2>/dev/null) && [ -n "$RPM" ]; then
		check "an .rpm makes a root" kb buildroot --checkout "$W/rpmroot" "$RPM"
		same "... its file" "$(cat "$W/rpmroot/usr/share/kbt/hello.txt")" "hello from an rpm"
		same "... its hardlink (data on the last name of the cpio group)" "$(cat "$W/rpmroot/usr/share/kbt/hardlink.txt" 2>&1)" "hello from an rpm"
		same "... its symlink" "$(readlink "$W/rpmroot/usr/bin/kbt-link")" ../share/kbt/hello.txt
		truth "... its executable" [ -x "$W/rpmroot/usr/bin/kbt-run" ]
		mkdeb "$W/clash.deb" clash <<'EOF'
f ./usr/share/kbt/hello.txt 644 something else
EOF
		expect_fail 1 "an .rpm and a .deb clashing are refused" kb buildroot "$RPM" "$(add "$W/clash.deb")"
		err_has "... naming the rpm by its lead" "kbt-1.0-1" "clash 1.0"
	else
		fail "rpmbuild could not build the test package"
		diag_file "$ERR"
	fi
else
	ok "skipped: no rpmbuild for the .rpm part"
fi

# ---- (d) the real build-essential + kernel headers closure ----
if [ ! -e "$FIX/debs/.complete" ]; then
	ok "skipped: no fixture packages in $FIX/debs (run .ci/fixtures)"
	finish
fi
mapfile -t DEBS < <(ls "$FIX"/debs/*.deb)
check "the ${#DEBS[@]} fixture .debs go into the store" kb store add "${DEBS[@]}"
mapfile -t H <"$OUT"
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
start=$EPOCHREALTIME
check "the build root of ${#DEBS[@]} packages is made" kb buildroot "${H[@]}"
ROOT=$(cat "$OUT")
diag "first build: $(secs "$start" "$EPOCHREALTIME") s ($(tail -n1 "$ERR"))"
start=$EPOCHREALTIME
check "the second time" kb buildroot --checkout "$W/root" "${H[@]}"
t=$(secs "$start" "$EPOCHREALTIME")
diag "cached, with a hardlink checkout: $t s ($(tr '\n' ' ' <"$ERR"))"
same "... the same root" "$(cat "$OUT")" "$ROOT"
err_has "... is an action-cache hit" "cached"
truth "... and takes well under 5 s" awk -v t="$t" 'BEGIN { exit !(t < 5) }'
R=$W/root
truth "usr/bin/gcc-12 is there" [ -x "$R/usr/bin/gcc-12" ]
truth "usr/bin/make is there" [ -x "$R/usr/bin/make" ]
same "usr/bin/awk -> mawk" "$(readlink "$R/usr/bin/awk")" mawk
truth "bin/sh works through the layout link" [ -x "$R/bin/sh" ]
hdr=$(ls -d "$R"/usr/src/linux-headers-*-amd64 2>/dev/null | head -n1)
truth "kernel headers in usr/src with include/" [ -n "$hdr" ] && [ -d "$hdr/include" ]
same "a hardlink checkout shares the store's inodes" "$(stat -c %i "$R/usr/bin/make")" "$(stat -c %i "$(objpath "$(sha "$R/usr/bin/make")")")"
if [ "$(id -u)" != 0 ] || ! command -v chroot >/dev/null; then
	ok "skipped: the chroot smoke test needs root"
else
	check "gcc-12 runs in a chroot of the root" chroot "$R" /usr/bin/gcc-12 --version
	out_has "... and says so" "gcc-12 (Debian 12"
	mkdir -p "$R/build"
	printf '#include <stdio.h>\nint main(void) { puts("hello from the build root"); return 0; }\n' >"$R/build/hello.c"
	check "gcc-12 compiles hello.c in the chroot" chroot "$R" /usr/bin/gcc-12 -O2 -o /build/hello /build/hello.c
	check "... and it runs" chroot "$R" /build/hello
	out_has "... printing its line" "hello from the build root"
	if [ "${KBUILD_VARIANT:-normal}" != asan ]; then
		printf 'all:\n\t@echo made | awk '"'"'{ print toupper($$0) }'"'"'\n' >"$R/build/Makefile"
		check "make and awk work in the chroot" chroot "$R" /usr/bin/make -s -C /build
		out_has "... printing" "MADE"
	fi
fi
finish
