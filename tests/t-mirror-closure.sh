#!/usr/bin/env bash
# mirror closure: libsolv solves "install PKG..." over upstream snapshots.
#
# (a) Small repositories built here (dpkg-deb + apt-ftparchive, rpmbuild +
#     createrepo_c): exact closures with versions, architectures, paths,
#     sizes and sha256 of the real package files; Recommends only when
#     asked; unknown names, conflicts and missing dependencies named; two
#     upstreams in one pool; file requires answered by rpm-md filelists.
# (b) Real Debian 12 metadata from the fixture cache (.ci/fixtures): the
#     closure of build-essential and linux-headers-amd64 equals what
#     apt-get install --simulate --no-install-recommends chooses from the
#     same lists on an empty system.
#
# 'kbuild mirror sync' is not what is tested here: each snapshot is made
# by hand, a directory laid out as the repository's metadata stored with
# 'kbuild store add --ref mirror/NAME/latest'.
. "$(dirname "$0")/lib.sh"

R=$T/repo
mkdir -p "$R/recipes"
cd "$R" || exit 1

# snapshot NAME DIR: DIR (laid out by repository path) becomes the latest
# snapshot of upstream NAME
snapshot() {
	run kb store add --ref "mirror/$1/latest" "$2"
	if [ "$RC" -ne 0 ]; then
		fail "storing the snapshot of $1"
		diag_file "$ERR"
	fi
}

# closure lines as "NAME VERSION ARCH UPSTREAM PATH SIZE SHA256", sorted
# as kbuild sorts them (by name): expected lines are built from the files
expect_line() { # NAME VERSION ARCH UPSTREAM PATH FILE
	printf '%s %s %s %s %s %s %s\n' "$1" "$2" "$3" "$4" "$5" "$(stat -c %s "$6")" "$(sha "$6")"
}

closure_is() { # DESC EXPECTED-FILE ARGS...
	local desc=$1 exp=$2
	shift 2
	run kb mirror closure "$@"
	if [ "$RC" -ne 0 ]; then
		fail "$desc (exit $RC)"
		diag_file "$ERR"
		return
	fi
	same_file "$desc" "$exp" "$OUT"
}

# ---------------------------------------------------------------- (a) apt
if ! command -v dpkg-deb >/dev/null || ! command -v apt-ftparchive >/dev/null; then
	ok "skipped: no dpkg-deb/apt-ftparchive for the apt repositories"
else
	# mkdeb REPO NAME VERSION ARCH [CONTROL-LINE...]: a real .deb in REPO/pool/main
	mkdeb() {
		local repo=$1 n=$2 v=$3 a=$4 d
		shift 4
		d=$T/debsrc/$n-$v
		mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$n" "$repo/pool/main"
		{
			printf 'Package: %s\nVersion: %s\nArchitecture: %s\n' "$n" "$v" "$a"
			printf 'Maintainer: Test <test@example.org>\n'
			[ $# -eq 0 ] || printf '%s\n' "$@"
			printf 'Description: %s for the closure tests\n a longer description\n .\n that continues\n' "$n"
		} >"$d/DEBIAN/control"
		echo "$n $v" >"$d/usr/share/doc/$n/README"
		dpkg-deb -Zgzip --root-owner-group --build "$d" "$repo/pool/main/${n}_${v#*:}_$a.deb" >/dev/null ||
			fail "dpkg-deb --build $n $v"
	}
	# index REPO SNAPDIR SUITE COMPRESS: REPO's Packages (apt-ftparchive),
	# compressed by COMPRESS (xz, gzip, zstd or cat), in the snapshot tree
	index() {
		local repo=$1 snap=$2 suite=$3 comp=$4 ext dir
		case $comp in xz) ext=.xz ;; gzip) ext=.gz ;; zstd) ext=.zst ;; *) ext= ;; esac
		dir=$snap/dists/$suite/main/binary-amd64
		mkdir -p "$dir"
		(cd "$repo" && apt-ftparchive packages pool) >"$repo/Packages"
		if [ -n "$ext" ]; then
			$comp -c <"$repo/Packages" >"$dir/Packages$ext"
		else
			cp "$repo/Packages" "$dir/Packages"
		fi
		echo "not signed: the closure never reads it" >"$snap/dists/$suite/InRelease"
	}

	A=$T/deb-a
	B=$T/deb-b
	mkdeb "$A" app 1.0 amd64 "Depends: libfoo (>= 1.0), tool | missingtool, virtual-thing" \
		"Recommends: extra"
	mkdeb "$A" libfoo 1.0 amd64
	mkdeb "$A" libfoo 1.1 amd64
	mkdeb "$A" tool 2.0 all
	mkdeb "$A" provider-a 1.0 amd64 "Provides: virtual-thing"
	mkdeb "$A" extra 3.0 all "Depends: extralib"
	mkdeb "$A" extralib 1 all
	mkdeb "$A" old-needer 1.0 amd64 "Pre-Depends: libfoo (<< 1.1)"
	mkdeb "$A" bad 1.0 amd64 "Depends: app" "Conflicts: libfoo"
	mkdeb "$A" broken 1.0 amd64 "Depends: nosuchlib (>= 2)"
	mkdeb "$A" useb 1.0 amd64 "Depends: blib (>= 2.0)"
	mkdeb "$A" epochpkg 2:1.0-1 amd64
	mkdeb "$A" shared 1.0 all
	# among providers libsolv prefers a suggested or an enhancing one (else
	# the first by name)
	mkdeb "$A" chooser 1.0 amd64 "Depends: virt2, virt3" "Suggests: p-zzz"
	mkdeb "$A" p-aaa 1.0 all "Provides: virt2"
	mkdeb "$A" p-zzz 1.0 all "Provides: virt2"
	mkdeb "$A" p-bbb 1.0 all "Provides: virt3"
	mkdeb "$A" p-yyy 1.0 all "Provides: virt3" "Enhances: chooser"
	mkdeb "$B" blib 2.1 amd64
	mkdeb "$B" blib 1.0 amd64
	mkdeb "$B" shared 2.0 all
	index "$A" "$T/snap-a" stable xz
	index "$B" "$T/snap-b" stable gzip
	snapshot a "$T/snap-a"
	snapshot b "$T/snap-b"

	# an index whose package names no SHA256 (hand-written, uncompressed)
	mkdir -p "$T/snap-c/dists/old/main/binary-amd64"
	cat >"$T/snap-c/dists/old/main/binary-amd64/Packages" <<'EOF'
Package: nosha
Version: 1
Architecture: all
Filename: pool/main/nosha_1_all.deb
Size: 1234
MD5sum: 0123456789abcdef0123456789abcdef
EOF
	snapshot c "$T/snap-c"

	# a large generated index (zstd): 4000 packages in a chain, each with a
	# size and sha256 of its own, a stanza without Package, runs of empty
	# lines, lines longer than kbuild's read buffer and a last stanza
	# without its final newline; the closure of the chain's head must pair
	# every package with its own stanza's Size and SHA256
	mkdir -p "$T/snap-f/dists/big/main/binary-amd64"
	python3 - "$T/big-Packages" "$T/exp-big" <<'EOF'
import os, sys
n = 4000
out, exp = open(sys.argv[1], "w"), open(sys.argv[2], "w")
for i in range(n):
    out.write("Package: filler-%04d\nVersion: 1.%d\nArchitecture: amd64\n" % (i, i))
    if i + 1 < n:
        out.write("Depends: filler-%04d (>= 1.%d)\n" % (i + 1, i + 1))
    if i == 100:
        out.write("Tag: " + "x" * 3000000 + "\n")
    if i == 200:
        out.write("Description: long\n" + (" " + "y" * 999 + "\n") * 2000)
    out.write("Filename: pool/f/filler-%04d.deb\nSize: %d\nSHA256: %064x\n" % (i, 1000 + 7 * i, i * 7919))
    if i + 1 < n:
        out.write("\n\n\n" if i % 500 == 0 else "\n")
    if i == 300:
        out.write("Comment: a stanza without a package is not one\nVersion: 9\n\n")
    exp.write("filler-%04d 1.%d amd64 f pool/f/filler-%04d.deb %d %064x\n" % (i, i, i, 1000 + 7 * i, i * 7919))
out.close()
os.truncate(sys.argv[1], os.path.getsize(sys.argv[1]) - 1)  # no final newline
EOF
	zstd -q -c "$T/big-Packages" >"$T/snap-f/dists/big/main/binary-amd64/Packages.zst"
	snapshot f "$T/snap-f"

	cat >recipes/up.recipe <<'EOF'
upstream "f" {
    type = "apt"
    url = "http://127.0.0.1:9/f"
    suite = "big"
    components = ["main"]
    architectures = ["amd64"]
    require_signature = false
}
upstream "a" {
    type = "apt"
    url = "http://127.0.0.1:9/a"
    suite = "stable"
    components = ["main"]
    architectures = ["amd64"]
    require_signature = false
}
upstream "b" {
    type = "apt"
    url = "http://127.0.0.1:9/b"
    suite = "stable"
    components = ["main"]
    architectures = ["amd64"]
    require_signature = false
}
upstream "c" {
    type = "apt"
    url = "http://127.0.0.1:9/c"
    suite = "old"
    components = ["main"]
    architectures = ["amd64"]
    require_signature = false
}
upstream "never-synced" {
    type = "apt"
    url = "http://127.0.0.1:9/n"
    suite = "stable"
    components = ["main"]
    architectures = ["amd64"]
    require_signature = false
}
upstream "r" {
    type = "rpm-md"
    url = "http://127.0.0.1:9/r"
    architectures = ["x86_64", "noarch"]
    require_signature = false
}
EOF

	P=$A/pool/main
	{
		expect_line app 1.0 amd64 a pool/main/app_1.0_amd64.deb "$P/app_1.0_amd64.deb"
		expect_line libfoo 1.1 amd64 a pool/main/libfoo_1.1_amd64.deb "$P/libfoo_1.1_amd64.deb"
		expect_line provider-a 1.0 amd64 a pool/main/provider-a_1.0_amd64.deb "$P/provider-a_1.0_amd64.deb"
		expect_line tool 2.0 all a pool/main/tool_2.0_all.deb "$P/tool_2.0_all.deb"
	} >"$T/exp-app"
	closure_is "closure of app: newest libfoo, the existing alternative, the virtual's provider; no Recommends" \
		"$T/exp-app" a app
	err_lines "nothing on stderr" 0

	{
		cat "$T/exp-app"
		expect_line extra 3.0 all a pool/main/extra_3.0_all.deb "$P/extra_3.0_all.deb"
		expect_line extralib 1 all a pool/main/extralib_1_all.deb "$P/extralib_1_all.deb"
	} | sort >"$T/exp-app-rec"
	closure_is "--recommends adds the recommended package and what it depends on" \
		"$T/exp-app-rec" --recommends a app

	{
		expect_line libfoo 1.0 amd64 a pool/main/libfoo_1.0_amd64.deb "$P/libfoo_1.0_amd64.deb"
		expect_line old-needer 1.0 amd64 a pool/main/old-needer_1.0_amd64.deb "$P/old-needer_1.0_amd64.deb"
	} >"$T/exp-old"
	closure_is "a versioned Pre-Depends picks the older libfoo" "$T/exp-old" a old-needer
	expect_line libfoo 1.0 amd64 a pool/main/libfoo_1.0_amd64.deb "$P/libfoo_1.0_amd64.deb" >"$T/exp-pin"
	closure_is "NAME=VERSION asks for that version" "$T/exp-pin" a libfoo=1.0
	expect_line libfoo 1.1 amd64 a pool/main/libfoo_1.1_amd64.deb "$P/libfoo_1.1_amd64.deb" >"$T/exp-arch"
	closure_is "NAME:ARCH asks for that architecture" "$T/exp-arch" a libfoo:amd64
	expect_line epochpkg 2:1.0-1 amd64 a pool/main/epochpkg_1.0-1_amd64.deb "$P/epochpkg_1.0-1_amd64.deb" >"$T/exp-epoch"
	closure_is "versions keep their epoch" "$T/exp-epoch" a epochpkg
	expect_line provider-a 1.0 amd64 a pool/main/provider-a_1.0_amd64.deb "$P/provider-a_1.0_amd64.deb" >"$T/exp-virt"
	closure_is "a virtual package with one provider means the provider" "$T/exp-virt" a virtual-thing

	{
		expect_line chooser 1.0 amd64 a pool/main/chooser_1.0_amd64.deb "$P/chooser_1.0_amd64.deb"
		expect_line p-yyy 1.0 all a pool/main/p-yyy_1.0_all.deb "$P/p-yyy_1.0_all.deb"
		expect_line p-zzz 1.0 all a pool/main/p-zzz_1.0_all.deb "$P/p-zzz_1.0_all.deb"
	} >"$T/exp-chooser"
	closure_is "Suggests and Enhances reach libsolv: they pick among providers" "$T/exp-chooser" a chooser

	expect_fail 1 "a virtual package with several providers is not guessed" kb mirror closure a virt2
	err_has "its providers are named" "'virt2' is a virtual package provided by p-aaa p-zzz (name one)"

	expect_fail 1 "an unknown package name fails" kb mirror closure a app nosuchpkg
	err_has "naming it and the upstream" "no package named 'nosuchpkg' in 'a'"
	err_lines "in one line" 1
	expect_fail 1 "unknown names are all named at once, before solving" kb mirror closure a,b zzz app yyy
	err_has "both names and both upstreams" "no package named 'zzz', 'yyy' in 'a' and 'b'"
	expect_fail 1 "an unknown version fails" kb mirror closure a libfoo=9
	err_has "naming the request" "no package named 'libfoo=9' in 'a'"

	expect_fail 1 "a conflict fails" kb mirror closure a bad
	err_has "with libsolv's problem text and the rules behind it, naming both packages" \
		"cannot install bad: 1 problem" \
		"problem 1: package bad-1.0.amd64 requires app, but none of the providers can be installed" \
		"package bad-1.0.amd64 conflicts with libfoo provided by libfoo-1.1.amd64" \
		"a way out: do not ask to install bad"
	expect_fail 1 "a conflict between the packages asked for fails" kb mirror closure a bad libfoo
	err_has "naming both" "package bad-1.0.amd64 conflicts with libfoo provided by libfoo-1.1.amd64"
	expect_fail 1 "a missing dependency fails" kb mirror closure a broken
	err_has "with libsolv's problem text naming what is missing and who needs it" \
		"nothing provides nosuchlib >= 2 needed by broken-1.0.amd64"
	expect_fail 1 "a dependency in an upstream left out fails" kb mirror closure a useb
	err_has "naming it" "nothing provides blib >= 2.0 needed by useb-1.0.amd64"

	{
		expect_line blib 2.1 amd64 b pool/main/blib_2.1_amd64.deb "$B/pool/main/blib_2.1_amd64.deb"
		expect_line shared 2.0 all b pool/main/shared_2.0_all.deb "$B/pool/main/shared_2.0_all.deb"
		expect_line useb 1.0 amd64 a pool/main/useb_1.0_amd64.deb "$P/useb_1.0_amd64.deb"
	} >"$T/exp-ab"
	closure_is "two upstreams in one pool: a's package depends on b's; the newer 'shared' comes from b" \
		"$T/exp-ab" a,b useb shared
	closure_is "the order of the upstreams does not matter" "$T/exp-ab" b,a useb shared

	closure_is "a 4000-package chain from a large index: each package with its own stanza's size and sha256" \
		"$T/exp-big" f filler-0000

	expect_fail 1 "a package whose index names no SHA256 is refused" kb mirror closure c nosha
	err_has "naming it and its upstream" "upstream 'c': package nosha-1.all has no SHA256 in its index"
	expect_fail 1 "an upstream never synced is refused" kb mirror closure never-synced app
	err_has "saying what to run" "upstream 'never-synced' has no snapshot yet" "kbuild mirror sync never-synced"
	expect_fail 2 "no package named at all is a usage error" kb mirror closure a

	# a snapshot without Packages for the architecture
	mkdir -p "$T/snap-e/dists/stable/main/binary-arm64"
	cp "$T/snap-a/dists/stable/main/binary-amd64/Packages.xz" "$T/snap-e/dists/stable/main/binary-arm64/"
	snapshot never-synced "$T/snap-e"
	expect_fail 1 "a snapshot without an index for the architecture is refused" \
		kb mirror closure never-synced app
	err_has "saying so" "upstream 'never-synced': snapshot" "holds no Packages index under dists/*/binary-amd64/"
	# a damaged index
	mkdir -p "$T/snap-d/dists/stable/main/binary-amd64"
	xzsize=$(stat -c %s "$T/snap-a/dists/stable/main/binary-amd64/Packages.xz")
	head -c $((xzsize / 2)) "$T/snap-a/dists/stable/main/binary-amd64/Packages.xz" \
		>"$T/snap-d/dists/stable/main/binary-amd64/Packages.xz"
	snapshot never-synced "$T/snap-d"
	expect_fail 1 "a truncated Packages.xz is an error, not a smaller pool" kb mirror closure never-synced app
	err_has "naming the file" "upstream 'never-synced': cannot read dists/stable/main/binary-amd64/Packages.xz"
fi

# ------------------------------------------------------------- (a) rpm-md
if ! command -v rpmbuild >/dev/null || ! command -v createrepo_c >/dev/null; then
	ok "skipped: no rpmbuild/createrepo_c for the rpm-md repository"
else
	RR=$T/rpm-repo
	mkdir -p "$RR" "$T/rpmspec"
	# mkrpm NAME VERSION ARCH FILE [SPEC-LINE...]: an rpm owning FILE
	mkrpm() {
		local n=$1 v=$2 a=$3 f=$4 spec=$T/rpmspec/$1-$2.spec
		shift 4
		{
			printf '%%global debug_package %%{nil}\n%%define __os_install_post %%{nil}\n'
			printf 'Name: %s\nVersion: %s\nRelease: 1\nSummary: %s\nLicense: MIT\nBuildArch: %s\n' "$n" "$v" "$n" "$a"
			[ $# -eq 0 ] || printf '%s\n' "$@"
			printf '%%description\n%s\n%%install\nmkdir -p %%{buildroot}%s\n' "$n" "$(dirname "$f")"
			printf 'echo %s > %%{buildroot}%s\n%%files\n%s\n' "$n-$v" "$f" "$f"
		} >"$spec"
		rpmbuild --quiet -bb --nodeps --define "_topdir $T/rpmtop" --define "_rpmdir $RR" \
			--define "_dbpath $T/rpmdb" "$spec" >"$T/rpmbuild.log" 2>&1 || {
			fail "rpmbuild $n"
			diag_file "$T/rpmbuild.log"
		}
	}
	# the required file is in no directory primary.xml lists: only
	# filelists.xml knows who owns it
	mkrpm rapp 1.0 x86_64 /usr/bin/rapp "Requires: /usr/share/rtool/data.txt" "Requires: rlib >= 2"
	mkrpm rtool 1.0 noarch /usr/share/rtool/data.txt
	mkrpm rlib 2.0 x86_64 /usr/lib64/rlib/2.so
	mkrpm rlib 1.0 x86_64 /usr/lib64/rlib/1.so
	mkrpm rbad 1.0 x86_64 /usr/bin/rbad "Requires: librnothere.so.1()(64bit)"
	mkrpm rclash 1.0 noarch /usr/share/rclash "Conflicts: rtool"
	# EL's kernel-devel: asked for by what it provides, with the release
	mkrpm rkernel-devel 5.14.0 x86_64 /usr/src/kernels/rk "Provides: rkernel-devel-uname-r = 5.14.0-427.el9.x86_64"
	mkrpm rkernel-devel 5.15.0 x86_64 /usr/src/kernels/rk2 "Provides: rkernel-devel-uname-r = 5.15.0-1.el9.x86_64"
	createrepo_c -q "$RR" || fail "createrepo_c"
	mkdir -p "$T/snap-r"
	cp -r "$RR/repodata" "$T/snap-r/"
	if zcat "$RR"/repodata/*-primary.xml.gz | grep -q '<file>/usr/share/rtool/data.txt</file>'; then
		fail "primary.xml lists /usr/share/rtool/data.txt: the filelists case tests nothing"
	fi
	snapshot r "$T/snap-r"
	{
		expect_line rapp 1.0-1 x86_64 r x86_64/rapp-1.0-1.x86_64.rpm "$RR/x86_64/rapp-1.0-1.x86_64.rpm"
		expect_line rlib 2.0-1 x86_64 r x86_64/rlib-2.0-1.x86_64.rpm "$RR/x86_64/rlib-2.0-1.x86_64.rpm"
		expect_line rtool 1.0-1 noarch r noarch/rtool-1.0-1.noarch.rpm "$RR/noarch/rtool-1.0-1.noarch.rpm"
	} >"$T/exp-rapp"
	closure_is "rpm-md: a file Requires found through filelists, the newer rlib" "$T/exp-rapp" r rapp
	expect_line rkernel-devel 5.14.0-1 x86_64 r x86_64/rkernel-devel-5.14.0-1.x86_64.rpm \
		"$RR/x86_64/rkernel-devel-5.14.0-1.x86_64.rpm" >"$T/exp-uname"
	closure_is "rpm-md: NAME=VERSION of a provide (kernel-devel-uname-r=KVER, as dnf takes it) means its provider" \
		"$T/exp-uname" r rkernel-devel-uname-r=5.14.0-427.el9.x86_64
	expect_fail 1 "rpm-md: ... and a version nothing provides is named" kb mirror closure r rkernel-devel-uname-r=5.14.0-9.el9.x86_64
	err_has "as missing" "no package named 'rkernel-devel-uname-r=5.14.0-9.el9.x86_64' in 'r'"
	expect_fail 1 "rpm-md: a missing library fails" kb mirror closure r rbad
	err_has "naming it and who needs it" "nothing provides librnothere.so.1()(64bit) needed by rbad-1.0-1.x86_64"
	expect_fail 1 "rpm-md: a conflict fails" kb mirror closure r rapp rclash
	err_has "naming both" "rclash-1.0-1.noarch conflicts with rtool"
	if command -v dpkg-deb >/dev/null && command -v apt-ftparchive >/dev/null; then
		expect_fail 1 "apt and rpm-md upstreams do not share a pool" kb mirror closure a,r app
		err_has "naming both" "upstreams 'a' (apt) and 'r' (rpm-md) cannot share a closure: their types differ"
	fi
	# a snapshot whose repomd.xml names a primary it does not hold
	mkdir -p "$T/snap-r2/repodata"
	cp "$RR/repodata/repomd.xml" "$T/snap-r2/repodata/"
	snapshot r "$T/snap-r2"
	expect_fail 1 "rpm-md: a snapshot lacking the primary named by repomd.xml is refused" kb mirror closure r rapp
	err_has "naming the file" "upstream 'r': the snapshot lacks repodata/" "-primary.xml.gz, which repomd.xml names as its primary metadata"
fi

# ------------------------------------------------------- (b) Debian 12
FIX=${KBUILD_FIXTURES:-/var/cache/kbuild-fixtures}/debian
if [ ! -e "$FIX/.complete" ]; then
	ok "skipped: no fixture ($FIX; .ci/fixtures makes it)"
	finish
fi

# the snapshots: bookworm main amd64, and bookworm-updates if the fixture has it
mkdir -p "$T/snap-deb/dists/bookworm/main/binary-amd64"
cp "$FIX/dists/bookworm/InRelease" "$T/snap-deb/dists/bookworm/"
cp "$FIX/dists/bookworm/main/binary-amd64/Packages" "$T/snap-deb/dists/bookworm/main/binary-amd64/"
snapshot debian "$T/snap-deb"
updates=0
if [ -e "$FIX/dists/bookworm-updates/main/binary-amd64/Packages" ]; then
	updates=1
	mkdir -p "$T/snap-upd/dists/bookworm-updates/main/binary-amd64"
	cp "$FIX/dists/bookworm-updates/InRelease" "$T/snap-upd/dists/bookworm-updates/"
	cp "$FIX/dists/bookworm-updates/main/binary-amd64/Packages" "$T/snap-upd/dists/bookworm-updates/main/binary-amd64/"
	snapshot debian-updates "$T/snap-upd"
fi
cat >recipes/debian.recipe <<'EOF'
upstream "debian" {
    type = "apt"
    url = "http://127.0.0.1:9/debian"
    suite = "bookworm"
    components = ["main"]
    architectures = ["amd64"]
    require_signature = false
}
upstream "debian-updates" {
    type = "apt"
    url = "http://127.0.0.1:9/debian"
    suite = "bookworm-updates"
    components = ["main"]
    architectures = ["amd64"]
    require_signature = false
}
EOF

# apt on the same lists, with nothing of the host's configuration and an
# empty dpkg status: the fixture read through apt's file: method (verified
# against the fixture's keyring), indexes uncompressed
AD=$T/apt
mkdir -p "$AD/lists/partial" "$AD/cache/archives/partial" "$AD/etc"
: >"$AD/status"
apt_sources() { # SUITE...
	local s
	for s in "$@"; do
		echo "deb [arch=amd64 signed-by=$FIX/keyring.gpg] file:$FIX $s main"
	done >"$AD/etc/sources.list"
}
cat >"$AD/apt.conf" <<EOF
Dir::Etc::Main "/dev/null";
Dir::Etc::Parts "/dev/null";
Dir::Etc::SourceList "$AD/etc/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State::Status "$AD/status";
Dir::State::extended_states "$AD/extended_states";
Dir::State::Lists "$AD/lists";
Dir::Cache "$AD/cache";
Dir::Cache::pkgcache "pkgcache.bin";
Dir::Cache::srcpkgcache "srcpkgcache.bin";
Dir::Log "$AD/log";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Get::Assume-Yes "true";
APT::Sandbox::User "root";
Debug::NoLocking "true";
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
Acquire::Check-Date "false";
Acquire::IndexTargets::deb::Packages::CompressionTypes "uncompressed";
EOF
export APT_CONFIG=$AD/apt.conf
apt_set() { # ARGS...: "NAME VERSION ARCH" of what apt would install, sorted
	apt-get install --simulate "$@" >"$T/apt.out" 2>"$T/apt.err" || {
		fail "apt-get install --simulate $*"
		diag_file "$T/apt.err"
	}
	sed -nE 's/^Inst ([^ ]+) \(([^ ]+) .*\[([^]]+)\]\)( \[.*\])?$/\1 \2 \3/p' "$T/apt.out" | sort
}
kb_set() { cut -d' ' -f1-3 "$OUT"; }

apt_sources bookworm
if ! apt-get update >"$T/apt-update.log" 2>&1 || grep -q '^[EW]:' "$T/apt-update.log"; then
	fail "apt-get update from the fixture"
	diag_file "$T/apt-update.log"
fi

want=(build-essential linux-headers-amd64)
check "Debian 12: closure of ${want[*]}" kb mirror closure debian "${want[@]}"
kb_set >"$T/kb.set"
apt_set --no-install-recommends "${want[@]}" >"$T/apt.set"
# Identical on this request: no alternative in it is decided differently
# and apt, like libsolv, installs no Essential package nothing depends on.
# (Where they do differ, see the --recommends case below.)
same_file "Debian 12: the same packages, versions and architectures as apt-get --no-install-recommends" \
	"$T/apt.set" "$T/kb.set"
truth "Debian 12: a real closure (over 50 packages)" test "$(wc -l <"$T/kb.set")" -gt 50
truth "Debian 12: the kernel headers are in it" grep -q '^linux-headers-[0-9.-]*-amd64 ' "$T/kb.set"

# every line's path, size and sha256 are those of the package's stanza
python3 - "$FIX/dists/bookworm/main/binary-amd64/Packages" "$OUT" >"$T/stanzas.log" <<'EOF'
import sys
want = {}
for line in open(sys.argv[2]):
    n, v, a, up, path, size, sha = line.split()
    want[(n, v, a)] = (path, size, sha)
bad = 0
for st in open(sys.argv[1], encoding="utf-8", errors="replace").read().split("\n\n"):
    f = {}
    for l in st.split("\n"):
        if ":" in l and not l.startswith(" "):
            k, _, val = l.partition(":")
            f[k] = val.strip()
    key = (f.get("Package"), f.get("Version"), f.get("Architecture"))
    if key in want:
        got = (f["Filename"], f["Size"], f["SHA256"])
        if got != want[key]:
            print("mismatch", key, got, want[key])
            bad += 1
        del want[key]
for k in want:
    print("not in the index", k)
    bad += 1
sys.exit(1 if bad else 0)
EOF
if [ $? -eq 0 ]; then ok "Debian 12: every path, size and sha256 is its stanza's"; else
	fail "Debian 12: paths, sizes and sha256 match the stanzas"
	diag_file "$T/stanzas.log"
fi

# Under ASan+UBSan one closure of the real index costs about 40 s (libsolv,
# not instrumented itself, grows big arrays in small steps, which ASan's
# allocator turns into an mmap and a copy each): the checks of solver
# behaviour below run in the normal variant only.
if [ "${KBUILD_VARIANT:-normal}" = asan ]; then
	ok "Debian 12: the further cases run in the normal variant only"
	finish
fi

# With Recommends, libsolv and apt legitimately differ where a choice is
# open: for "A | B" and for virtual packages apt takes the first
# alternative, libsolv the best candidate by its own policy (by name among
# equals; e.g. "pinentry-curses | pinentry" -> another pinentry provider).
# Only what must hold is asserted: everything of the closure without
# Recommends is in it, and it is larger.
check "Debian 12: closure with --recommends" kb mirror closure --recommends debian "${want[@]}"
kb_set >"$T/kb-rec.set"
truth "Debian 12: --recommends adds packages" test "$(wc -l <"$T/kb-rec.set")" -gt "$(wc -l <"$T/kb.set")"
truth "Debian 12: --recommends keeps every package of the plain closure" \
	test -z "$(comm -23 "$T/kb.set" "$T/kb-rec.set")"
apt_set "${want[@]}" >"$T/apt-rec.set"
diag "with Recommends: apt $(wc -l <"$T/apt-rec.set") packages, kbuild $(wc -l <"$T/kb-rec.set"), $(comm -3 "$T/apt-rec.set" "$T/kb-rec.set" | wc -l) differ"

expect_fail 1 "Debian 12: an unknown package" kb mirror closure debian build-essential no-such-package-here
err_has "is named" "no package named 'no-such-package-here' in 'debian'"
expect_fail 1 "Debian 12: a conflict" kb mirror closure debian exim4-daemon-light postfix
err_has "is libsolv's problem text naming both" "cannot install exim4-daemon-light postfix" "postfix" "exim4-daemon-light"

if [ $updates = 1 ]; then
	# two upstreams in one pool: the newest version wins whichever upstream
	# holds it, as in apt (bookworm-updates has older libssl3 and
	# openssh-client than bookworm's point release, ca-certificates the same)
	apt_sources bookworm bookworm-updates
	rm -rf "$AD/lists"/* "$AD/cache"/*.bin
	mkdir -p "$AD/lists/partial"
	if ! apt-get update >"$T/apt-update.log" 2>&1 || grep -q '^[EW]:' "$T/apt-update.log"; then
		fail "apt-get update from the fixture (with bookworm-updates)"
		diag_file "$T/apt-update.log"
	fi
	want+=(openssh-client ca-certificates)
	check "Debian 12 + updates: closure over two upstreams" kb mirror closure debian,debian-updates "${want[@]}"
	kb_set >"$T/kb-upd.set"
	apt_set --no-install-recommends "${want[@]}" >"$T/apt-upd.set"
	same_file "Debian 12 + updates: the same packages as apt with both suites" "$T/apt-upd.set" "$T/kb-upd.set"
	diag "from bookworm-updates: $(grep -c ' debian-updates ' "$OUT") packages"
fi

finish
