#!/usr/bin/env bash
# rocky9-zfs's own definition, run: the template "el9-zfs" (recipes/
# el9-kmod.inc, with zfs-module.inc, both copied unchanged) against local
# rpm-md repositories standing in for Rocky 9's BaseOS and AppStream.
#
# The stand-ins are made here with the real RPM tools (rpmbuild, rpmsign,
# createrepo_c; repomd.xml.asc signed with the test key) from programs
# that run: the fixture cache's Debian build-essential closure, packed as
# one "toolchain" RPM providing gcc, make, binutils, ... and a "bash" RPM
# (bash, libc, /bin/sh), and the fixture's kernel headers laid out as EL's
# kernel-devel (one build tree at /usr/src/kernels/KVER, providing
# kernel-devel-uname-r = KVER), with a kernel-core providing kernel-uname-r
# and kernel-core-uname-r = KVER that ships the fixture's real kernel image
# as lib/modules/KVER/vmlinuz. The OpenZFS sources are stood in for by
# the test module (tests/fixtures/hello-module) in a .deb shaped like
# Debian's zfs-dkms (usr/src/zfs-VERSION with a configure and module/),
# served from a local apt repository as upstream "debian" with the boot
# fixture's GRUB and busybox.
#
# Then 'kbuild lock' and 'kbuild recipe', and the real clients: rpm -K,
# rpm -qp, modinfo, dnf --installroot with gpgcheck and repo_gpgcheck, a
# tampered darksite refused, xorriso, and the ISO booted in qemu with the
# module loaded. Everything short of Rocky's own bytes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nginx.sh"

FIX=${KBUILD_FIXTURES:-/var/cache/kbuild-fixtures}
ROOT=${KBUILD_TEST_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}

# the shipped recipes load (includes, templates, names) without any network
mkdir -p "$T/shipped"
cp -r "$ROOT/recipes" "$T/shipped/"
run kb --mirror debian=http://127.0.0.1:9/debian upstreams "$T/shipped/recipes/rocky9-zfs.recipe"
out_has "rocky9-zfs loads: its template expands, with Rocky's upstreams" \
	"baseos rpm-md https://dl.rockylinux.org/pub/rocky/9/BaseOS/x86_64/os" \
	"appstream rpm-md https://dl.rockylinux.org/pub/rocky/9/AppStream/x86_64/os" \
	"debian apt http://127.0.0.1:9/debian (from --mirror)"
run kb --mirror debian=http://127.0.0.1:9/debian \
	--mirror debian-updates=http://127.0.0.1:9/debian --mirror debian-security=http://127.0.0.1:9/debian \
	upstreams "$T/shipped/recipes/debian12-zfs.recipe"
out_has "debian12-zfs loads (it shares zfs-module.inc)" "debian-security apt http://127.0.0.1:9/debian (from --mirror)"
need_tools dpkg-deb apt-ftparchive gpg rpmbuild rpmsign createrepo_c dnf rpm modinfo
if [ ! -e "$FIX/debs/.complete" ] || [ ! -e "$FIX/boot/KVER" ]; then
	ok "skipped: no fixture packages in $FIX/debs and $FIX/boot (run .ci/fixtures)"
	finish
fi
need_sandbox
# the kernel release of the fixture's headers, as t-step.sh reads it
KVER=$(ls "$FIX"/debs/linux-headers-*-amd64_*.deb 2>/dev/null |
	sed -n 's|.*/linux-headers-\([0-9][^_]*-amd64\)_.*|\1|p' | head -n1)
if [ -z "$KVER" ]; then
	ok "skipped: no kernel headers in $FIX/debs"
	finish
fi

. "$(dirname "$0")/recipe-env.sh"
export KBUILD_KEYS=$T/keys
ZFS=2.1.99 # not the template's default: the parameter must reach the sources and the RPM

# ---- the stand-in repositories ----
start=$SECONDS
RB=$T/rpmbuild
mkdir -p "$RB/specs" "$RB/trees" "$WWW/baseos" "$WWW/appstream"
# standin REPO NAME VERSION RELEASE TREE SPEC-LINE... -- FILES-LINE...: an
# RPM of the directory TREE as it is (no %install: rpmbuild packs it in
# place), signed with the test key, into $WWW/REPO. Fast: no debuginfo, no
# brp scripts, no automatic dependencies, zstd level 1. rpmbuild refuses
# Debian's kernel release in a dependency (two '-': "Invalid version
# (double separator '-')"); rpm's own switch _wrong_version_format_
# terminate_build keeps the Provides exactly as written, with a warning.
standin() {
	local repo=$1 name=$2 ver=$3 rel=$4 tree=$5 spec=$RB/specs/$2.spec
	shift 5
	{
		printf 'Name: %s\nVersion: %s\nRelease: %s\nLicense: GPL\nBuildArch: x86_64\n' "$name" "$ver" "$rel"
		printf 'Summary: stand-in for Rocky 9'"'"'s %s (kbuild tests)\nAutoReqProv: no\n' "$name"
		while [ $# -gt 0 ] && [ "$1" != -- ]; do
			printf '%s\n' "$1"
			shift
		done
		shift
		printf '%%description\nMade by tests/t-rocky.sh from Debian packages.\n%%files\n'
		printf '%s\n' "$@"
	} >"$spec"
	rpmbuild -bb --nodeps --noclean --buildroot "$tree" --define "_topdir $RB" \
		--define "_rpmdir $WWW/$repo" --define '_build_name_fmt %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm' \
		--define '__os_install_post %{nil}' --define 'debug_package %{nil}' \
		--define '_build_id_links none' --define '_binary_payload w1.zstdio' \
		--define '_wrong_version_format_terminate_build 0' "$spec" >>"$T/rpmbuild.log" 2>&1 &&
		rpmsign --define '_gpg_name archive@kbuild.test' --define "__gpg $(command -v gpg)" --addsign \
			"$WWW/$repo/$name-$ver-$rel.x86_64.rpm" >>"$T/rpmbuild.log" 2>&1
}
x() { # DEST DEB...: unpacks the packages' files into DEST (two at a time)
	local d=$1
	shift
	mkdir -p "$d"
	printf '%s\0' "$@" | xargs -0 -P 2 -I{} dpkg-deb -x {} "$d"
}

made=1
# the build-essential closure but the kernel's packages and what the bash
# stand-in holds; /bin/sh is bash's (as on EL), not dash's
TC=$RB/trees/toolchain BS=$RB/trees/bash
tcdebs=() bsdebs=()
for f in "$FIX"/debs/*.deb; do
	case ${f##*/} in
	linux-headers-* | linux-kbuild-*) ;;
	bash_* | libc6_* | libtinfo6_*) bsdebs+=("$f") ;;
	*) tcdebs+=("$f") ;;
	esac
done
x "$TC" "${tcdebs[@]}" && x "$BS" "${bsdebs[@]}" || made=0
rm -rf "$TC/usr/share/doc" "$TC/usr/share/man" "$TC/usr/share/info" "$TC/usr/share/locale" "$TC/bin/sh"
ln -s bash "$BS/bin/sh"
standin appstream toolchain 12.2.0 1 "$TC" \
	"Provides: gcc make binutils tar xz gzip coreutils grep sed gawk findutils diffutils elfutils-libelf-devel" \
	"Requires: bash" -- '/*' || made=0
standin baseos bash 5.2.15 1 "$BS" "Provides: /bin/sh" -- '/*' || made=0

# kernel-devel: Debian's split headers (-amd64 the objects, -common the
# sources, linux-kbuild the scripts, joined by symlinks) made one tree,
# as EL's kernel-devel ships it
KH=$RB/trees/headers KD=$RB/trees/kernel-devel
K=$KD/usr/src/kernels/$KVER
x "$KH" "$FIX"/debs/linux-headers-"$KVER"_*.deb "$FIX"/debs/linux-headers-"${KVER%-amd64}"-common_*.deb \
	"$FIX"/debs/linux-kbuild-*.deb || made=0
mkdir -p "$K" "$KD/lib/modules/$KVER"
cp -a "$KH/usr/src/linux-headers-${KVER%-amd64}-common/." "$K/" &&
	rm "$K/scripts" "$K/tools" &&
	cp -a "$(readlink -f "$KH/usr/src/linux-headers-$KVER/scripts")" "$K/scripts" &&
	cp -a "$(readlink -f "$KH/usr/src/linux-headers-$KVER/tools")" "$K/tools" &&
	(cd "$KH/usr/src/linux-headers-$KVER" && tar -cf - --exclude=./Makefile --exclude=./scripts --exclude=./tools .) |
	(cd "$K" && tar -xf -) || made=0
ln -s "/usr/src/kernels/$KVER" "$KD/lib/modules/$KVER/build"
# an RPM version has no '-': 6.1.0-56-amd64 is Version 6.1.0, Release 56
KV=${KVER%%-*} KR=${KVER#*-}
KR=${KR%%-*}
standin appstream kernel-devel "$KV" "$KR" "$KD" "Provides: kernel-devel-uname-r = $KVER" -- \
	"/usr/src/kernels/$KVER" "/lib/modules/$KVER/build" || made=0
KC=$RB/trees/kernel-core
mkdir -p "$KC/lib/modules/$KVER"
# the real kernel image of that release (the boot fixture), where EL's
# kernel-core has it: the ISO boots it
dpkg-deb --fsys-tarfile "$FIX"/boot/linux-image-"$KVER"_*.deb |
	tar -xOf - "./boot/vmlinuz-$KVER" >"$KC/lib/modules/$KVER/vmlinuz" || made=0
standin baseos kernel-core "$KV" "$KR" "$KC" "Provides: kernel-uname-r = $KVER" \
	"Provides: kernel-core-uname-r = $KVER" "Requires: /bin/sh" -- "/lib/modules/$KVER" || made=0
for r in baseos appstream; do
	createrepo_c -q "$WWW/$r" >>"$T/rpmbuild.log" 2>&1 &&
		gpg --batch --yes --armor --detach-sign -o "$WWW/$r/repodata/repomd.xml.asc" \
			"$WWW/$r/repodata/repomd.xml" 2>>"$T/rpmbuild.log" || made=0
done
if [ $made = 1 ]; then
	ok "signed rpm-md stand-ins for BaseOS and AppStream (rpmbuild, rpmsign, createrepo_c)"
else
	fail "making the rpm-md stand-ins"
	diag_file "$T/rpmbuild.log"
	finish
fi
rpm --dbpath "$T/rpmkeys" --import "$P/keys/archive.asc" >/dev/null 2>&1
run rpm --dbpath "$T/rpmkeys" -qp --provides "$WWW/appstream/kernel-devel-$KV-$KR.x86_64.rpm"
out_has "... kernel-devel provides kernel-devel-uname-r = $KVER, verbatim" "kernel-devel-uname-r = $KVER"
run rpm --dbpath "$T/rpmkeys" -K "$WWW/baseos/kernel-core-$KV-$KR.x86_64.rpm"
out_has "... the stand-ins are signed (rpm -K)" "digests signatures OK"
diag "stand-ins made in $((SECONDS - start))s ($(du -sm "$WWW" | cut -f1) MB)"

# the OpenZFS sources' stand-in: the test module in zfs-dkms's shape, with
# a configure that takes what the template passes and writes module/Makefile
ZD=$T/zfs-dkms
Z=$ZD/usr/src/zfs-$ZFS
mkdir -p "$ZD/DEBIAN" "$Z/module"
cp "$(dirname "$0")"/fixtures/hello-module/* "$Z/module/"
cat >"$Z/configure" <<'EOF'
#!/bin/sh
# a stand-in for OpenZFS's configure (kbuild tests): the arguments the
# zfs-modules template passes, checked; module/Makefile written
set -eu
config= linux= obj=
for a in "$@"; do
	case $a in
	--with-config=*) config=${a#*=} ;;
	--with-linux=*) linux=${a#*=} ;;
	--with-linux-obj=*) obj=${a#*=} ;;
	*) echo "configure: unknown argument '$a'" | tee -a config.log >&2; exit 1 ;;
	esac
done
die() { echo "configure: $*" | tee -a config.log >&2; exit 1; }
[ "$config" = kernel ] || die "--with-config=kernel is missing (got '$config')"
[ -f "$linux/Makefile" ] || die "--with-linux='$linux' holds no kernel Makefile"
[ -f "$obj/include/generated/utsrelease.h" ] || die "--with-linux-obj='$obj' is not a configured kernel tree"
printf 'modules:\n\t$(MAKE) -C %s M=$(CURDIR) modules\n' "$obj" >module/Makefile
echo "configure: building against $linux ($obj)"
EOF
chmod +x "$Z/configure"
printf 'Package: zfs-dkms\nVersion: %s-1\nArchitecture: all\nMaintainer: kbuild tests <tests@kbuild.test>\nDescription: stand-in for OpenZFS sources (kbuild tests)\n' "$ZFS" >"$ZD/DEBIAN/control"
mkdir -p "$T/debs"
dpkg-deb -Zxz --root-owner-group --build "$ZD" "$T/debs/zfs-dkms_$ZFS-1_all.deb" >/dev/null
# GRUB and busybox for the ISO come from Debian, with the sources
repo debian bookworm "$T/debs/zfs-dkms_$ZFS-1_all.deb" "$FIX"/debs/*.deb "$FIX"/boot/*.deb
nginx_start "$WWW" || finish

# ---- the recipe: rocky9-zfs's definition, unchanged, with local upstreams ----
cp "$ROOT/recipes/el9-kmod.inc" "$ROOT/recipes/zfs-module.inc" "$P/recipes/"
truth "rocky9-zfs uses the template el9-zfs" grep -q '^use "el9-zfs"' "$ROOT/recipes/rocky9-zfs.recipe"
{
	echo 'include "el9-kmod.inc"'
	echo "let kver = \"$KVER\""
	echo "let zfs = \"$ZFS\""
	echo 'let epoch = "1700000000"'
	echo 'key "archive" { path = "../keys/archive.asc" }'
	for r in baseos appstream; do
		echo "upstream \"$r\" { type = \"rpm-md\" url = \"$NGX_URL/$r\" architectures = [\"x86_64\", \"noarch\"] keyring = \"archive\" }"
	done
	upstream debian debian bookworm
	echo 'package "zfs-dkms" { upstream = "debian" name = "zfs-dkms" version = "${zfs}-1" }'
	echo 'use "el9-zfs" { kver = "${kver}" zfs = "${zfs}" epoch = "${epoch}" load = "hello" }'
} >"$P/recipes/el9.recipe"
cd "$P" || finish

check "kbuild lock: the template's build root from both stand-ins" kb lock el9
# the upstream a package of the lock comes from
locked_from() { awk -v e="input package $1" '$0 == e { f = 1; next } /^input / { f = 0 } f && $1 == "upstream" { print $2 }' recipes/el9.lock; }
same "... kernel-devel from appstream, by kernel-devel-uname-r = $KVER" "$(locked_from build/kernel-devel)" appstream
same "... the toolchain (gcc, make, ...) from appstream" "$(locked_from build/toolchain)" appstream
same "... bash from baseos" "$(locked_from build/bash)" baseos
# the hash the lock records for an included file
locked_source() { awk -v e="source recipes/$1" '$0 == e { f = 1; next } f { print $2; exit }' recipes/el9.lock; }
same "... with rocky9-zfs's own el9-kmod.inc, byte for byte" "$(locked_source el9-kmod.inc)" "$(sha "$ROOT/recipes/el9-kmod.inc")"
same "... and zfs-module.inc" "$(locked_source zfs-module.inc)" "$(sha "$ROOT/recipes/zfs-module.inc")"
truth "... the darksite's kernel-core and its /bin/sh, not the toolchain" \
	grep -q '^input package site-packages/kernel-core$' recipes/el9.lock &&
	grep -q '^input package site-packages/bash$' recipes/el9.lock &&
	! grep -q '^input package site-packages/toolchain$' recipes/el9.lock
start=$SECONDS
check "kbuild recipe: modules built, signed, packaged, published" kb recipe el9
diag "kbuild recipe took $((SECONDS - start))s"
err_has "... the module checked against the kernel" "1 module, each for kernel $KVER"
err_has "... the keys made on first use" "made the module signing key 'mok'" "made the OpenPGP key 'darksite'"
RES=$(tail -n1 "$OUT")
rm -rf "$T/r"
kb store checkout "$RES" "$T/r" >/dev/null 2>&1
RPM=$(ls "$T"/r/kmod-zfs/*.rpm 2>/dev/null | head -n1)
SITE=$T/r/site
truth "the kmod RPM is kmod-zfs-$ZFS (the template's zfs parameter)" \
	test "$(basename "$RPM")" = "kmod-zfs-$ZFS-1.kbuild1.el9.x86_64.rpm"
# a database holding only the key the darksite exports
rpm --dbpath "$T/sitekeys" --import "$SITE/darksite.asc" >/dev/null 2>&1
run rpm --dbpath "$T/sitekeys" -K "$RPM"
out_has "it is signed with the darksite key (rpm -K with the exported key)" "digests signatures OK"
run rpm --dbpath "$T/sitekeys" -qp --requires "$RPM"
out_has "it requires exactly this kernel (rpm -qp --requires)" "kernel-uname-r = $KVER"
run rpm --dbpath "$T/sitekeys" -qlp "$RPM"
out_has "it ships the module under /lib/modules/$KVER/extra (rpm -qlp)" "/lib/modules/$KVER/extra/zfs/hello.ko"
out_has "... and the MOK certificate" "/usr/share/kbuild/mok.der"
rm -rf "$T/x" && mkdir -p "$T/x"
(cd "$T/x" && rpm2cpio "$RPM" | cpio -idm --quiet) 2>/dev/null
run modinfo "$T/x/lib/modules/$KVER/extra/zfs/hello.ko"
out_has "modinfo: built for $KVER" "vermagic:       $KVER "
out_has "... signed by kbuild's MOK" "signer:         kbuild module signing key mok" "sig_hashalgo:   sha256"
same_file "... the certificate in the RPM is the MOK's" "$T/x/usr/share/kbuild/mok.der" "$T/keys/mok.der"
check "repomd.xml.asc verifies with the darksite's exported key (gpgv)" \
	gpgv --keyring "$SITE/darksite.gpg" "$SITE/repodata/repomd.xml.asc" "$SITE/repodata/repomd.xml"
truth "the darksite holds kmod-zfs, kernel-core and bash, not the toolchain" \
	sh -c "zcat '$SITE'/repodata/*-primary.xml.gz | grep -o '<name>[^<]*</name>' | sort | tr '\n' ' ' | grep -qx '<name>bash</name> <name>kernel-core</name> <name>kmod-zfs</name> '"

# dnf, as a machine without network would: only the darksite, both
# signature checks on
dnf_install() { # REPO-DIR INSTALLROOT
	mkdir -p "$2" "$T/dnfcache-${2##*/}" "$T/dnflog"
	run dnf -y --installroot="$2" --releasever=9 --setopt=reposdir=/dev/null \
		--setopt=cachedir="$T/dnfcache-${2##*/}" --setopt=logdir="$T/dnflog" \
		--repofrompath=site,"file://$1" --setopt=site.gpgcheck=1 --setopt=site.repo_gpgcheck=1 \
		--setopt=site.gpgkey="file://$1/darksite.asc,file://$P/keys/archive.asc" \
		--setopt=skip_if_unavailable=False install kmod-zfs
}
dnf_install "$SITE" "$T/dnf-ok"
same "dnf installs kmod-zfs from the darksite (gpgcheck, repo_gpgcheck)" "$RC" 0 || diag_file "$ERR"
truth "... the module in place" test -f "$T/dnf-ok/lib/modules/$KVER/extra/zfs/hello.ko"
truth "... with the kernel it requires (kernel-core's /lib/modules/$KVER/vmlinuz)" \
	test -f "$T/dnf-ok/lib/modules/$KVER/vmlinuz"
run rpm --root "$T/dnf-ok" -q kmod-zfs kernel-core bash
same "... rpm's database has kmod-zfs, kernel-core and bash" "$RC" 0

cp -a "$SITE" "$T/tampered"
chmod -R u+w "$T/tampered"
sed -i 's|<revision>|<revision>1|' "$T/tampered/repodata/repomd.xml"
differ "a tampered copy of the darksite" "$(sha "$T/tampered/repodata/repomd.xml")" "$(sha "$SITE/repodata/repomd.xml")"
dnf_install "$T/tampered" "$T/dnf-bad"
truth "... is refused by dnf (repo_gpgcheck)" test "$RC" -ne 0
err_has "... for its signature" "repomd.xml GPG signature verification error"
truth "... nothing installed" test ! -e "$T/dnf-bad/lib/modules/$KVER/extra/zfs/hello.ko"

# the ISO: EL's kernel-core, GRUB and busybox from Debian, the darksite on it
ISO=$T/r/iso/image.iso
run xorriso -indev "$ISO" -report_el_torito plain
out_has "the ISO boots by BIOS and UEFI" "El Torito boot img :   1  BIOS" "El Torito boot img :   2  UEFI"
check "... carries the dnf darksite" sh -c "xorriso -indev '$ISO' -find /darksite/repodata -name repomd.xml.asc 2>/dev/null | grep -q repomd.xml.asc"
same "... and kernel-core's vmlinuz as its kernel" "$(xorriso -indev "$ISO" -osirrox on -extract /boot/vmlinuz "$T/iso-vmlinuz" >/dev/null 2>&1; sha "$T/iso-vmlinuz")" \
	"$(sha "$KC/lib/modules/$KVER/vmlinuz")"
boot_iso "$ISO"

check "again: nothing to do, writing the bundle a verifier needs" kb recipe --bundle "$T/el9.bundle" el9
err_has "... says so" "nothing to do"
# a third party, without the keys, elsewhere: the same bytes, signatures
# (MOK and OpenPGP) replayed from what was published
mkdir -p "$T/other/home"
run env -u KBUILD_STORE -u KBUILD_KEYS HOME="$T/other/home" XDG_DATA_HOME="$T/other/home/d" \
	XDG_CONFIG_HOME="$T/other/home/c" TZ=Pacific/Auckland "$KBUILD" verify --bundle "$T/el9.bundle" \
	"$KBUILD_STORE/manifests/el9.json"
same "kbuild verify of the run: identical" "$RC" 0 || diag_file "$ERR"
out_has "... the modules, the kmod RPM, the darksite and the ISO" "verified: recipe el9 reproduces: 5 steps" \
	"1 signed module and 2 OpenPGP signatures identical"
finish
