#!/usr/bin/env bash
# mirror publish: darksites that the vendors' own clients accept. Small
# .debs (dpkg-deb) and signed .rpms (rpmbuild, rpmsign) are published
# from the store; apt-get and dnf install from them, over file: and over
# http://127.0.0.1 (nginx), each into a throwaway root, with signature
# checking on; a tampered index or signed file is refused by the client
# (a test that would pass with verification off proves nothing). Two
# publishes give the same bytes; a republish after one package changed
# touches only what depends on it; bad input writes nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nginx.sh"

for tool in dpkg-deb dpkg apt-get gpg; do
	if ! command -v "$tool" >/dev/null; then
		diag "$tool is missing (.ci/setup installs it): nothing tested"
		ok "skipped: no $tool"
		finish
	fi
done

export SOURCE_DATE_EPOCH=1700000000
KF=$T/keys
mkdir -p "$KF" "$T/deb" "$T/in"

# ---- keys: the repository's, and another (made in 2020: a signature
# must not predate its key) ----
export GNUPGHOME=$T/gnupg
G2=$T/gnupg2
mkdir -m 700 "$GNUPGHOME" "$G2"
gpg --batch --passphrase '' --faked-system-time 20200101T000000 \
	--quick-gen-key 'kbuild darksite test <darksite@kbuild.test>' rsa3072 sign never >"$T/gpg.log" 2>&1 &&
	GNUPGHOME=$G2 gpg --batch --passphrase '' --faked-system-time 20200101T000000 \
		--quick-gen-key 'someone else <else@kbuild.test>' rsa3072 sign never >>"$T/gpg.log" 2>&1 || {
	fail "making test keys with gpg"
	diag_file "$T/gpg.log"
	finish
}
gpg --armor --export-secret-keys >"$KF/ds.sec.asc" 2>>"$T/gpg.log"
gpg --armor --export >"$KF/ds.pub.asc"
GNUPGHOME=$G2 gpg --armor --export-secret-keys >"$KF/other.sec.asc" 2>>"$T/gpg.log"
FPR=$(gpg --list-keys --with-colons 2>/dev/null | awk -F: '/^fpr/ { print $10; exit }')

# ---- .debs: dshello depends on libds; ds-doc is architecture all ----
# mkdeb NAME VERSION ARCH [DEPENDS]: $T/deb/NAME_VERSION_ARCH.deb, with
# the file /usr/share/NAME/VERSION
mkdeb() {
	local d=$T/deb/src/$1_$2_$3
	mkdir -p "$d/DEBIAN" "$d/usr/share/$1"
	{
		printf 'Package: %s\nVersion: %s\nArchitecture: %s\n' "$1" "$2" "$3"
		printf 'Maintainer: kbuild tests <tests@kbuild.test>\n'
		[ -n "${4:-}" ] && printf 'Depends: %s\n' "$4"
		printf 'Description: %s for the darksite tests\n made by t-darksite.sh\n' "$1"
	} >"$d/DEBIAN/control"
	echo "$1 $2" >"$d/usr/share/$1/$2"
	SOURCE_DATE_EPOCH=1600000000 dpkg-deb -Zxz --root-owner-group --build "$d" \
		"$T/deb/$1_$2_$3.deb" >/dev/null
}
mkdeb libds 1.0 amd64
mkdeb dshello 1.0 amd64 'libds (>= 1.0)'
mkdeb ds-doc 1.0 all
DEBS=("$T/deb/libds_1.0_amd64.deb" "$T/deb/dshello_1.0_amd64.deb" "$T/deb/ds-doc_1.0_all.deb")

A=$T/www/apt
check "publish three .debs" kb mirror publish -o "$A" --key-file "$KF/ds.sec.asc" --suite dsuite "${DEBS[@]}"
out_has "it says what it did" "published 3 packages (apt)" "3 read"
D=$A/dists/dsuite
for f in dists/dsuite/InRelease dists/dsuite/Release dists/dsuite/Release.gpg \
	dists/dsuite/main/binary-amd64/Packages dists/dsuite/main/binary-amd64/Packages.xz \
	pool/main/libd/libds/libds_1.0_amd64.deb pool/main/d/dshello/dshello_1.0_amd64.deb \
	pool/main/d/ds-doc/ds-doc_1.0_all.deb archive-key.asc archive-key.gpg; do
	truth "the repository has $f" test -f "$A/$f"
done
truth "Packages.xz is Packages, compressed" cmp -s <(xz -dc "$D/main/binary-amd64/Packages.xz") "$D/main/binary-amd64/Packages"
for f in Packages Packages.xz; do
	truth "$f has its by-hash copy" cmp -s "$D/main/binary-amd64/$f" \
		"$D/main/binary-amd64/by-hash/SHA256/$(sha "$D/main/binary-amd64/$f")"
done
same "Packages lists them sorted by name" \
	"$(awk '/^Package:/ { print $2 }' "$D/main/binary-amd64/Packages" | tr '\n' ' ')" "ds-doc dshello libds "
truth "Packages has Filename, Size, MD5sum and SHA256 from the .deb" \
	grep -qx "SHA256: $(sha "$T/deb/dshello_1.0_amd64.deb")" "$D/main/binary-amd64/Packages"
truth "... MD5sum too" grep -qx "MD5sum: $(md5sum <"$T/deb/dshello_1.0_amd64.deb" | cut -c1-32)" \
	"$D/main/binary-amd64/Packages"
truth "Release has the fields apt wants, Date from SOURCE_DATE_EPOCH" \
	grep -qx 'Date: Tue, 14 Nov 2023 22:13:20 UTC' "$D/Release"
truth "... Acquire-By-Hash, no Valid-Until" \
	bash -c "grep -qx 'Acquire-By-Hash: yes' '$D/Release' && ! grep -q Valid-Until '$D/Release'"
truth "... and the SHA256 of each index" grep -q "^ $(sha "$D/main/binary-amd64/Packages") [0-9]* main/binary-amd64/Packages$" "$D/Release"
truth "pool files are hardlinks to the store" \
	test "$(stat -c %i "$A/pool/main/d/dshello/dshello_1.0_amd64.deb")" = \
	"$(stat -c %i "$(objpath "$(sha "$T/deb/dshello_1.0_amd64.deb")")")"
truth "InRelease verifies with gpgv against the exported binary key" \
	gpgv -q --keyring "$A/archive-key.gpg" "$D/InRelease" 2>/dev/null
truth "Release.gpg verifies too" gpgv -q --keyring "$A/archive-key.gpg" "$D/Release.gpg" "$D/Release" 2>/dev/null
truth "the signature was made at SOURCE_DATE_EPOCH" \
	bash -c "gpg --list-packets '$D/Release.gpg' 2>/dev/null | grep -q 'created 1700000000'"

# ---- apt-get into a throwaway root ----
# apt_root NAME SOURCE-URI: $AR, a root with an empty dpkg status and an
# apt configuration of its own (APT_CONFIG) that trusts only the exported key
apt_root() {
	AR=$T/aroot-$1
	rm -rf "$AR"
	mkdir -p "$AR"/etc/apt/{apt.conf.d,preferences.d,sources.list.d,trusted.gpg.d} \
		"$AR"/var/lib/apt/lists/partial "$AR"/var/cache/apt/archives/partial \
		"$AR"/var/lib/dpkg/{info,updates,triggers} "$AR"/var/log
	: >"$AR/var/lib/dpkg/status"
	echo "deb [signed-by=$A/archive-key.asc] $2 dsuite main" >"$AR/etc/apt/sources.list"
	cat >"$AR/apt.conf" <<EOF
Dir "$AR/";
Dir::State::status "$AR/var/lib/dpkg/status";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Debug::NoLocking "true";
Acquire::Languages "none";
Acquire::Retries "0";
DPkg::Options { "--root=$AR"; "--admindir=$AR/var/lib/dpkg"; "--force-not-root"; "--force-script-chrootless"; };
EOF
}
apt_() { APT_CONFIG=$AR/apt.conf apt-get -q -y "$@"; }
installed() { # PKG VERSION in $AR
	[ -f "$AR/usr/share/$1/$2" ] &&
		[ "$(dpkg-query --admindir="$AR/var/lib/dpkg" -W -f='${Status} ${Version}' "$1" 2>/dev/null)" = "install ok installed $2" ]
}

apt_root file "file:$A"
check "apt-get update from the darksite over file:" apt_ update
check "apt-get install dshello (pulls libds)" apt_ install dshello
truth "dshello 1.0 is installed in the root" installed dshello 1.0
truth "... and libds 1.0, its dependency" installed libds 1.0

nginx_start "$T/www" || finish
apt_root http "$NGX_URL/apt"
check "apt-get update over http://127.0.0.1" apt_ update
truth "... fetched the index by hash" grep -q "GET /apt/dists/dsuite/main/binary-amd64/by-hash/SHA256/" "$NGX_DIR/access.log"
check "apt-get install ds-doc over http" apt_ install ds-doc
truth "ds-doc is installed" installed ds-doc 1.0

# ---- tampering: apt must refuse ----
# tampered NAME: a copy of the repository to spoil
tampered() {
	rm -rf "$T/www/$1"
	cp -a "$A" "$T/www/$1"
	TD=$T/www/$1/dists/dsuite
}
tampered bad-index
# apt fetches Packages.xz when it is there: spoil each variant, and its by-hash copy
for f in Packages Packages.xz; do
	p=$TD/main/binary-amd64/$f
	flip_byte "$TD/main/binary-amd64/by-hash/SHA256/$(sha "$p")" 40
	flip_byte "$p" 40
done
apt_root bad-index "$NGX_URL/bad-index"
expect_fail nz "apt refuses an index whose hash is not the one Release names" apt_ update
err_has "... saying so" "Hash Sum mismatch"
tampered bad-inrelease
sed -i 's/^Suite: dsuite$/Suite: dsuitf/' "$TD/InRelease"
rm "$TD/Release.gpg" # no second chance through Release + Release.gpg
apt_root bad-inrelease "$NGX_URL/bad-inrelease"
expect_fail nz "apt refuses an edited InRelease" apt_ update
err_has "... a bad signature" "BADSIG"
tampered other-key
kb mirror publish -o "$T/www/other-key" --key-file "$KF/other.sec.asc" --suite dsuite --key-name other "${DEBS[@]}" >/dev/null 2>&1
apt_root other-key "$NGX_URL/other-key"
expect_fail nz "apt refuses a darksite signed by another key than Signed-By's" apt_ update
err_has "... naming the missing key" "NO_PUBKEY"

# ---- determinism ----
check "publish the same packages into a second directory" \
	kb mirror publish -o "$T/www/apt2" --key-file "$KF/ds.sec.asc" --suite dsuite "${DEBS[@]}"
out_has "... from the cache: no package read" "0 read"
truth "the two are identical, signatures included (diff -r)" diff -r "$A" "$T/www/apt2"

# ---- republish unchanged: nothing touched ----
snap() { (cd "$1" && find . -type f -printf '%p %i\n' | LC_ALL=C sort); }
before=$(snap "$A")
check "republish, nothing changed" kb mirror publish -o "$A" --key-file "$KF/ds.sec.asc" --suite dsuite "${DEBS[@]}"
out_has "... reads no package, links and writes nothing" "0 read, 0 pool files linked, 0 metadata files written, 0 removed"
same "... every file is the same inode" "$(snap "$A")" "$before"

# ---- republish after one package changed ----
mkdeb libds 1.1 amd64
DEBS2=("$T/deb/libds_1.1_amd64.deb" "$T/deb/dshello_1.0_amd64.deb" "$T/deb/ds-doc_1.0_all.deb")
oldpkgs=$(sha "$D/main/binary-amd64/Packages")
check "republish with libds 1.1 instead of 1.0" \
	kb mirror publish -o "$A" --key-file "$KF/ds.sec.asc" --suite dsuite "${DEBS2[@]}"
out_has "... reads only the new package" "1 read, 1 pool files linked"
after=$(snap "$A")
changed=$(diff <(echo "$before") <(echo "$after") | awk '/^[<>]/ { print $1, $2 }' | sort -k2 | uniq -f1 -c |
	awk '{ print $3 }' | tr '\n' ' ')
same "only the new pool file, the old one, the indexes, their by-hash copies and Release changed" \
	"$changed" "$(printf '%s ' ./dists/dsuite/InRelease ./dists/dsuite/Release ./dists/dsuite/Release.gpg \
		./dists/dsuite/main/binary-amd64/Packages ./dists/dsuite/main/binary-amd64/Packages.xz \
		"$(for f in Packages Packages.xz; do echo "./dists/dsuite/main/binary-amd64/by-hash/SHA256/$(sha "$D/main/binary-amd64/$f")"; done | sort | tr '\n' ' ')" \
		./pool/main/libd/libds/libds_1.0_amd64.deb ./pool/main/libd/libds/libds_1.1_amd64.deb | tr -s ' ')"
truth "the stale pool file is gone" test ! -e "$A/pool/main/libd/libds/libds_1.0_amd64.deb"
truth "the previous Packages stays reachable by hash (a client mid-update)" \
	test -f "$D/main/binary-amd64/by-hash/SHA256/$oldpkgs"
apt_root file "file:$A"
check "apt-get update after the change" apt_ update
check "apt-get install dshello" apt_ install dshello
truth "libds 1.1 is what got installed" installed libds 1.1

# ---- bad input: a clear error, nothing written ----
bad() { # DESC PATTERN ARGS...
	local desc=$1 pat=$2
	shift 2
	rm -rf "$T/bad"
	expect_fail "${RC_WANT:-1}" "$desc" kb mirror publish -o "$T/bad" "$@"
	err_has "... saying why" "$pat"
	truth "... and nothing written" test ! -e "$T/bad"
}
echo "not a package" >"$T/in/junk.deb"
bad "a file that is not a package" "is neither a .deb nor an .rpm" --key-file "$KF/ds.sec.asc" "$T/in/junk.deb" "${DEBS[@]}"
bad "a hash that is not in the store" "is not in the store" --key-file "$KF/ds.sec.asc" \
	"$(sha_str nothing-like-this)"
bad "a missing key file" "--key-file $T/nokey" --key-file "$T/nokey" "${DEBS[@]}"
bad "a public key instead of a secret one" "holds no secret key" --key-file "$KF/ds.pub.asc" "${DEBS[@]}"
echo "garbage" >"$T/in/garbage.key"
bad "a key file that is not a key" "not an OpenPGP key" --key-file "$T/in/garbage.key" "${DEBS[@]}"
RC_WANT=2 bad "no SOURCE_DATE_EPOCH" "SOURCE_DATE_EPOCH" --key-file "$KF/ds.sec.asc" "${DEBS[@]}" \
	--epoch ''
mkdir -p "$T/tree"
cp "$T/deb/"*.deb "$T/tree/"
check "packages as a tree in the store (a ref)" kb store add --ref ds/debs "$T/tree"
check "publish from the ref ds/debs: every .deb in it" \
	kb mirror publish -o "$T/www/fromref" --key-file "$KF/ds.sec.asc" --suite dsuite ds/debs
same "... both versions of libds and the others" \
	"$(awk '/^Package:/ { p = $2 } /^Version:/ { print p "=" $2 }' "$T/www/fromref/dists/dsuite/main/binary-amd64/Packages" | tr '\n' ' ')" \
	"ds-doc=1.0 dshello=1.0 libds=1.0 libds=1.1 "
sed -i 's/^Description: libds/Description: another libds/' "$T/deb/src/libds_1.0_amd64/DEBIAN/control"
dpkg-deb -Zxz --root-owner-group --build "$T/deb/src/libds_1.0_amd64" "$T/in/libds-other.deb" >/dev/null
bad "two different packages that are both libds 1.0 amd64" "are both libds 1.0 amd64" \
	--key-file "$KF/ds.sec.asc" "$T/deb/libds_1.0_amd64.deb" "$T/in/libds-other.deb"

# ---- a key from the key directory (kbuild key new: made now, so the
# signatures are made now too: never before their key) ----
export KBUILD_KEYS=$T/keydir
if check "kbuild key new --openpgp darksite" kb key new --openpgp darksite; then
	now=$(date +%s)
	check "publish with --key darksite" kb mirror publish -o "$T/www/keydir" --key darksite \
		--epoch "$now" --suite dsuite "${DEBS[@]}"
	truth "InRelease verifies against the exported key" \
		gpgv -q --keyring "$T/www/keydir/archive-key.gpg" "$T/www/keydir/dists/dsuite/InRelease" 2>/dev/null
	RC_WANT=1 bad "a key name the key directory does not have" "nokey" --key nokey "${DEBS[@]}"
fi

# ---- rpm-md and dnf ----
if ! command -v dnf >/dev/null || ! command -v rpmbuild >/dev/null || ! command -v rpmsign >/dev/null; then
	diag "dnf, rpmbuild or rpmsign missing (.ci/setup installs them): rpm-md not tested"
	finish
fi
# Debian's rpm: no gpg2, the database under ~/.rpmdb unless told
cat >"$HOME/.rpmmacros" <<EOF
%_topdir $T/rpmbuild
%_dbpath /var/lib/rpm
%__gpg /usr/bin/gpg
%_gpg_name darksite@kbuild.test
%_buildhost kbuild.test
%use_source_date_epoch_as_buildtime 1
%clamp_mtime_to_source_date_epoch 1
EOF
# mkrpm NAME VERSION [REQUIRES]: $T/rpm/NAME-VERSION-1.noarch.rpm, signed
mkrpm() {
	mkdir -p "$T/rpm"
	cat >"$T/$1.spec" <<EOF
Name: $1
Version: $2
Release: 1
Summary: $1 for the darksite tests
License: MIT
BuildArch: noarch
${3:+Requires: $3}
%description
$1, made by t-darksite.sh
%install
mkdir -p %{buildroot}/usr/share/$1
echo "$1 $2" > %{buildroot}/usr/share/$1/$2
%files
/usr/share/$1/$2
EOF
	SOURCE_DATE_EPOCH=1600000000 rpmbuild -bb --quiet "$T/$1.spec" >"$T/rpmbuild.log" 2>&1 &&
		cp "$T/rpmbuild/RPMS/noarch/$1-$2-1.noarch.rpm" "$T/rpm/" &&
		rpmsign --addsign "$T/rpm/$1-$2-1.noarch.rpm" >>"$T/rpmbuild.log" 2>&1 </dev/null &&
		rpm -Kv "$T/rpm/$1-$2-1.noarch.rpm" 2>&1 | grep -q 'Header V4 RSA/SHA[0-9]* Signature, key ID'
}
if ! { mkrpm rdslib 1.0 && mkrpm rdshello 1.0 rdslib; }; then
	fail "making signed .rpms with rpmbuild and rpmsign"
	diag_file "$T/rpmbuild.log"
	finish
fi
RPMS=("$T/rpm/rdslib-1.0-1.noarch.rpm" "$T/rpm/rdshello-1.0-1.noarch.rpm")
R=$T/www/rpm
check "publish two signed .rpms" kb mirror publish -o "$R" --key-file "$KF/ds.sec.asc" "${RPMS[@]}"
out_has "... as rpm-md" "published 2 packages (rpm-md)"
for f in repodata/repomd.xml repodata/repomd.xml.asc Packages/r/rdshello-1.0-1.noarch.rpm archive-key.asc; do
	truth "the repository has $f" test -f "$R/$f"
done
truth "primary, filelists and other are named by their checksums" \
	test "$(ls "$R/repodata" | grep -cE '^[0-9a-f]{64}-(primary|filelists|other)\.xml\.gz$')" = 3
truth "repomd.xml's revision is SOURCE_DATE_EPOCH" grep -q '<revision>1700000000</revision>' "$R/repodata/repomd.xml"
truth "repomd.xml.asc verifies with gpgv" gpgv -q --keyring "$R/archive-key.gpg" "$R/repodata/repomd.xml.asc" "$R/repodata/repomd.xml" 2>/dev/null

# dnf_ NAME URL ARGS...: dnf into the throwaway root $T/dnf-NAME, with
# both signature checks on and no silent skipping of a failing repository
dnf_() {
	local name=$1 url=$2
	shift 2
	DR=$T/dnf-$name
	mkdir -p "$DR" "$T/dnflog-$name" "$T/dnfcache-$name"
	dnf -y --refresh --installroot="$DR" --releasever=1 --setopt=reposdir=/dev/null \
		--setopt=cachedir="$T/dnfcache-$name" --setopt=logdir="$T/dnflog-$name" \
		--repofrompath=ds,"$url" --setopt=ds.gpgcheck=1 --setopt=ds.repo_gpgcheck=1 \
		--setopt=ds.gpgkey="file://$R/archive-key.asc" --setopt=skip_if_unavailable=False "$@"
}
rpm_installed() { rpm --root="$DR" --dbpath=/var/lib/rpm -q "$1" >/dev/null 2>&1 && [ -f "$DR/usr/share/${1%%-[0-9]*}/${1##*-}" ]; }

check "dnf install rdshello over file:// (pulls rdslib)" dnf_ file "file://$R" install rdshello
truth "rdshello 1.0 is installed in the root" rpm_installed rdshello-1.0
truth "... and rdslib 1.0" rpm_installed rdslib-1.0
check "dnf install rdshello over http://127.0.0.1" dnf_ http "$NGX_URL/rpm" install rdshello
truth "rdshello 1.0 is installed" rpm_installed rdshello-1.0

cp -a "$R" "$T/www/rpm-badmd"
sed -i 's|<revision>|<revision>1|' "$T/www/rpm-badmd/repodata/repomd.xml"
expect_fail nz "dnf refuses an edited repomd.xml" dnf_ badmd "$NGX_URL/rpm-badmd" install rdshello
err_has "... with a bad signature" "Bad GPG signature"
cp -a "$R" "$T/www/rpm-badprim"
# a well-formed primary that says something else: only its checksum tells
prim=$(ls "$T/www/rpm-badprim/repodata/"*-primary.xml.gz)
zcat "$prim" | sed 's|<summary>rdshello|<summary>evil rdshello|' | gzip -n >"$T/prim" && mv "$T/prim" "$prim"
expect_fail nz "dnf refuses an edited primary over file://" dnf_ badprim "file://$T/www/rpm-badprim" install rdshello
err_has "... whose checksum does not match" "checksum doesn't match"
expect_fail nz "... and over http" dnf_ badprim2 "$NGX_URL/rpm-badprim" install rdshello
err_has "... where it cannot be downloaded right" "primary.xml.gz" "Failed to download metadata"

check "publish the .rpms into a second directory" \
	kb mirror publish -o "$T/www/rpm2" --key-file "$KF/ds.sec.asc" "${RPMS[@]}"
out_has "... from the cache" "0 read"
truth "the two are identical (diff -r)" diff -r "$R" "$T/www/rpm2"
rbefore=$(snap "$R")
check "republish unchanged" kb mirror publish -o "$R" --key-file "$KF/ds.sec.asc" "${RPMS[@]}"
same "... touches nothing" "$(snap "$R")" "$rbefore"
mkrpm rdslib 1.1
check "republish with rdslib 1.1" kb mirror publish -o "$R" --key-file "$KF/ds.sec.asc" \
	"$T/rpm/rdslib-1.1-1.noarch.rpm" "$T/rpm/rdshello-1.0-1.noarch.rpm"
out_has "... reading only it" "1 read, 1 pool files linked"
truth "rdshello's pool file is untouched (same inode)" \
	test "$(snap "$R" | grep rdshello)" = "$(echo "$rbefore" | grep rdshello)"
truth "rdslib 1.0 is gone" test ! -e "$R/Packages/r/rdslib-1.0-1.noarch.rpm"
check "dnf upgrade from it" dnf_ file "file://$R" upgrade
truth "rdslib 1.1 is installed" rpm_installed rdslib-1.1
bad "a .deb and an .rpm in one repository" "a repository holds either .deb or .rpm" \
	--key-file "$KF/ds.sec.asc" "${RPMS[@]}" "${DEBS[0]}"

finish
