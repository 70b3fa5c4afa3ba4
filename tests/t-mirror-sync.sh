#!/usr/bin/env bash
# mirror sync: apt and rpm-md repositories made with the real tools
# (dpkg-deb, apt-ftparchive, rpmbuild, createrepo_c, gpg) and served by a
# real nginx on 127.0.0.1. A good sync stores the signed metadata and the
# indexes it names under mirror/NAME/TIME and mirror/NAME/latest; an
# unchanged upstream costs one InRelease; every refused sync (bad or
# missing signature, tampered or truncated index, HTML for metadata,
# expired metadata) says why, naming the upstream and the file, and
# leaves no new object and no new or moved ref.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nginx.sh"

export KBUILD_RETRY_DELAY_MS=50
unset KBUILD_CA_BUNDLE
S=$KBUILD_STORE

for tool in dpkg-deb apt-ftparchive gpg xz gzip; do
	if ! command -v "$tool" >/dev/null; then
		diag "$tool is missing (.ci/setup installs it): nothing tested"
		ok "skipped: no $tool"
		finish
	fi
done

WWW=$T/www
APT=$WWW/apt
SUITE=kbtest
D=$APT/dists/$SUITE
REPO=$T/repo
mkdir -p "$APT/pool/main" "$REPO/recipes" "$REPO/keys" "$T/deb"

# ---- keys: the archive's, another one, and one that expired ----
export GNUPGHOME=$T/gnupg
G2=$T/gnupg2
G3=$T/gnupg3
mkdir -m 700 "$GNUPGHOME" "$G2" "$G3"
gpg --batch --passphrase '' --quick-gen-key 'kbuild test archive <archive@kbuild.test>' \
	rsa3072 sign never >"$T/gpg.log" 2>&1 &&
	GNUPGHOME=$G2 gpg --batch --passphrase '' --quick-gen-key 'someone else <else@kbuild.test>' \
		ed25519 sign never >>"$T/gpg.log" 2>&1 &&
	GNUPGHOME=$G3 gpg --batch --passphrase '' --faked-system-time 20200101T000000 \
		--quick-gen-key 'old archive <old@kbuild.test>' ed25519 sign 1y >>"$T/gpg.log" 2>&1 || {
	fail "making test keys with gpg"
	diag_file "$T/gpg.log"
	finish
}
gpg --armor --export >"$REPO/keys/archive.asc"
gpg --export >"$REPO/keys/archive.gpg"
GNUPGHOME=$G3 gpg --armor --export >"$REPO/keys/old.asc"
FPR=$(gpg --list-keys --with-colons 2>/dev/null | awk -F: '/^fpr/ { print $10; exit }')

# ---- an apt archive ----
# mkdeb NAME VERSION ARCH [DEPENDS]
mkdeb() {
	local d=$T/deb/$1_$2_$3
	mkdir -p "$d/DEBIAN" "$d/usr/share/doc/$1"
	{
		printf 'Package: %s\nVersion: %s\nArchitecture: %s\n' "$1" "$2" "$3"
		printf 'Maintainer: kbuild tests <tests@kbuild.test>\n'
		[ -n "${4:-}" ] && printf 'Depends: %s\n' "$4"
		printf 'Description: %s for the mirror tests\n made by t-mirror-sync.sh\n' "$1"
	} >"$d/DEBIAN/control"
	echo "$1 $2" >"$d/usr/share/doc/$1/README"
	mkdir -p "$APT/pool/main/${1:0:1}/$1"
	dpkg-deb -Zgzip --root-owner-group --build "$d" \
		"$APT/pool/main/${1:0:1}/$1/$1_$2_$3.deb" >/dev/null
}
# indexes [RELEASE-OPTION...]: Packages (plain, .gz, .xz) for amd64 and
# all, by-hash copies, Release and a clearsigned InRelease
indexes() {
	rm -rf "$D"
	mkdir -p "$D/main/binary-amd64" "$D/main/binary-all"
	local a
	for a in amd64 all; do
		(cd "$APT" && apt-ftparchive --arch "$a" packages pool) >"$D/main/binary-$a/Packages"
		if [ "$a" = all ]; then # only the packages of architecture all
			awk -v RS= -v ORS='\n\n' '/\nArchitecture: all\n/' "$D/main/binary-$a/Packages" \
				>"$T/p" && mv "$T/p" "$D/main/binary-$a/Packages"
		fi
		xz -k "$D/main/binary-$a/Packages"
		gzip -kn "$D/main/binary-$a/Packages"
	done
	apt-ftparchive -o APT::FTPArchive::Release::Suite=$SUITE \
		-o APT::FTPArchive::Release::Codename=$SUITE \
		-o "APT::FTPArchive::Release::Architectures=amd64 all" \
		-o APT::FTPArchive::Release::Components=main \
		-o APT::FTPArchive::Release::Acquire-By-Hash=yes \
		-o APT::FTPArchive::Release::ValidTime=86400 \
		-o APT::FTPArchive::DoByHash=true "$@" release "$D" >"$T/Release"
	mv "$T/Release" "$D/Release"
	gpg --batch --yes --clearsign -o "$D/InRelease" "$D/Release" 2>>"$T/gpg.log"
}
mkdeb libhello 1.0 amd64
mkdeb hello 1.0 amd64 'libhello (>= 1.0)'
mkdeb hello-doc 1.0 all
indexes

nginx_start "$WWW" || finish
LOG=$NGX_DIR/access.log

cat >"$REPO/recipes/mirrors.recipe" <<REC
key "archive" { path = "../keys/archive.asc" }
key "archive-bin" { path = "../keys/archive.gpg" }
key "old" { path = "../keys/old.asc" }
upstream "deb" {
    type = "apt"
    url = "$NGX_URL/apt"
    suite = "$SUITE"
    components = ["main"]
    architectures = ["amd64"]
    keyring = "archive"
}
upstream "deb-cli" {     # the URL comes from --mirror
    type = "apt"
    suite = "$SUITE"
    components = ["main"]
    architectures = ["amd64"]
    keyring = "archive-bin"
}
upstream "deb-old" {
    type = "apt"
    url = "$NGX_URL/apt"
    suite = "$SUITE"
    components = ["main"]
    architectures = ["amd64"]
    keyring = "old"
}
upstream "deb-unsigned" {
    type = "apt"
    url = "$NGX_URL/apt"
    suite = "$SUITE"
    components = ["main"]
    architectures = ["amd64"]
    require_signature = false
}
upstream "rpm" {
    type = "rpm-md"
    url = "$NGX_URL/rpm"
    architectures = ["noarch"]
    keyring = "archive"
}
REC
cd "$REPO" || exit 1

nlog() { wc -l <"$LOG"; }
# the requests since line N of the access log: "METHOD PATH STATUS"
since() { tail -n +"$(($1 + 1))" "$LOG" | awk '{ print $6, $7, $9 }' | tr -d '"'; }
snapfiles() { kb store ls -r "$1" 2>&1 | awk '$1 != "d" { print $NF }' | sort; }

# ---- a good sync ----
n0=$(nlog)
check "sync an apt upstream" kb mirror sync deb
read -r ref1 snap1 <"$OUT"
truth "it prints the snapshot's ref and tree hash" \
	test "${ref1%/*}" = mirror/deb -a "$(is_hash "$snap1" && echo y)" = y
truth "the ref is named by the UTC time" \
	bash -c '[[ ${0##*/} =~ ^20[0-9]{6}T[0-9]{6}Z$ ]]' "$ref1"
err_has "it names the key that signed InRelease" "signed by $FPR"
same "mirror/deb/latest is the snapshot" "$(kb store ref get mirror/deb/latest 2>&1)" "tree $snap1"
same "the time ref is the snapshot" "$(kb store ref get "$ref1" 2>&1)" "tree $snap1"
run kb store ls -r mirror/deb/latest
out_has "the snapshot holds InRelease and the Packages indexes by their server paths" \
	"dists/$SUITE/InRelease" "dists/$SUITE/main/binary-amd64/Packages.xz" \
	"dists/$SUITE/main/binary-all/Packages.xz"
same "... and nothing else (.xz fetched, not .gz or plain; plain decompressed from it)" \
	"$(snapfiles mirror/deb/latest)" \
	"$(printf '%s\n' "dists/$SUITE/InRelease" "dists/$SUITE/main/binary-all/Packages.xz" \
		"dists/$SUITE/main/binary-amd64/Packages.xz" "dists/$SUITE/main/binary-all/Packages" \
		"dists/$SUITE/main/binary-amd64/Packages" | sort)"
run kb store ls -r mirror/deb/latest
out_has "the decompressed index is the server's plain Packages, byte for byte" \
	"f $(sha "$D/main/binary-amd64/Packages") dists/$SUITE/main/binary-amd64/Packages"
truth "... and was not downloaded" bash -c "! grep -q 'binary-amd64/Packages HTTP' '$LOG'"
for f in InRelease main/binary-amd64/Packages.xz main/binary-all/Packages.xz; do
	truth "the stored $f is the server's" cmp -s "$(objpath "$(sha "$D/$f")")" "$D/$f"
done
truth "Packages came by hash (Acquire-By-Hash)" \
	grep -q "GET /apt/dists/$SUITE/main/binary-amd64/by-hash/SHA256/$(sha "$D/main/binary-amd64/Packages.xz") " "$LOG"
truth "nothing but InRelease and two indexes was fetched" test "$(since "$n0" | wc -l)" -eq 3

# ---- unchanged: only InRelease again, the same snapshot ----
objs1=$(objects)
refs1=$(refs_of)
n0=$(nlog)
check "sync again, nothing changed" kb mirror sync deb
same "the same snapshot, under the same ref" "$(cat "$OUT")" "$ref1 $snap1"
same "only InRelease was fetched again" "$(since "$n0")" "GET /apt/dists/$SUITE/InRelease 200"
same "no new object" "$(objects)" "$objs1"
same "no new ref" "$(refs_of)" "$refs1"

# ---- the same archive through --mirror, a binary keyring ----
check "an upstream whose URL comes from --mirror" kb --mirror "deb-cli=$NGX_URL/apt" mirror sync deb-cli
same "... gives the same snapshot tree" "$(awk '{ print $2 }' "$OUT")" "$snap1"
expect_fail 1 "without --mirror (and no apt source for the suite) it has no URL" \
	env KBUILD_APT_DIR="$T/no-apt" "$KBUILD" mirror sync deb-cli
err_has "... and says so" "upstream 'deb-cli' has no mirror" "--mirror deb-cli=URL"

# refused DESC UPSTREAM PATTERN...: exit 1, every PATTERN in stderr, no
# new object, no ref created or moved
refused() {
	local desc=$1 up=$2 before_o before_r
	shift 2
	before_o=$(objects)
	before_r=$(refs_of)
	expect_fail 1 "refused: $desc" kb mirror sync "$up"
	err_has "... saying why, naming the upstream" "upstream '$up'" "$@"
	same "... no new object" "$(objects)" "$before_o"
	same "... no new or moved ref" "$(refs_of)" "$before_r"
}

# ---- bad metadata ----
cp "$D/InRelease" "$T/InRelease.good"
sed -i "s/$(sha "$D/main/binary-amd64/Packages.xz")/$(sha_str 'other bytes')/" "$D/InRelease"
truth "(the tampered InRelease differs from the signed one)" bash -c '! cmp -s "$0" "$1"' "$D/InRelease" "$T/InRelease.good"
refused "a tampered InRelease (one hash line edited)" deb "dists/$SUITE/InRelease" "BAD signature"

gpg --batch --yes --digest-algo SHA1 --clearsign -o "$D/InRelease" "$D/Release" 2>/dev/null
refused "an InRelease signed over SHA-1" deb "SHA1" "refused"

GNUPGHOME=$G2 gpg --batch --yes --clearsign -o "$D/InRelease" "$D/Release" 2>/dev/null
refused "an InRelease signed by another key" deb "dists/$SUITE/InRelease" "not in the keyring"

cp "$D/Release" "$D/InRelease"
refused "an InRelease that is not signed" deb "dists/$SUITE/InRelease" "not a PGP-signed message"

printf '<!DOCTYPE html>\n<html><body><h1>Welcome to our mirror</h1></body></html>\n' >"$D/InRelease"
refused "an HTML page answered for InRelease" deb "$NGX_URL/apt/dists/$SUITE/InRelease" \
	"not a PGP-signed message" "<!DOCTYPE html>"

rm "$D/InRelease"
refused "an unsigned archive (no InRelease, no Release.gpg)" deb "dists/$SUITE/InRelease" \
	"dists/$SUITE/Release is not signed"

gpg --batch --yes --detach-sign -o "$D/Release.gpg" "$D/Release" 2>>"$T/gpg.log"
check "no InRelease: Release with its detached signature Release.gpg" kb mirror sync deb
err_has "... verified" "dists/$SUITE/Release" "signed by $FPR"
same "... both in the snapshot, with the same indexes" "$(snapfiles mirror/deb/latest)" \
	"$(printf '%s\n' "dists/$SUITE/Release" "dists/$SUITE/Release.gpg" "dists/$SUITE/main/binary-all/Packages.xz" \
		"dists/$SUITE/main/binary-amd64/Packages.xz" "dists/$SUITE/main/binary-all/Packages" \
		"dists/$SUITE/main/binary-amd64/Packages" | sort)"
cp "$D/Release" "$T/Release.good"
sed -i 's/^Suite: .*/Suite: stable/' "$D/Release"
refused "a Release edited after its detached signature" deb "dists/$SUITE/Release.gpg" "BAD signature"
cp "$T/Release.good" "$D/Release"
rm "$D/Release.gpg"

sed 's/^Valid-Until: .*/Valid-Until: Sat, 01 Jan 2022 00:00:00 UTC/' "$D/Release" >"$T/Release" &&
	gpg --batch --yes --clearsign -o "$D/InRelease" "$T/Release"
refused "expired metadata (Valid-Until in the past)" deb "dists/$SUITE/InRelease" \
	"expired on 2022-01-01 00:00:00 UTC (Valid-Until)"

GNUPGHOME=$G3 gpg --batch --yes --faked-system-time 20200601T000000 --clearsign \
	-o "$D/InRelease" "$D/Release" 2>/dev/null
kb store add "$REPO/keys/old.asc" >/dev/null 2>&1 # the keyring itself is no news
refused "a signature by a key that has expired since" deb-old "expired on 2020-12-31"

# ---- bad indexes: each needs indexes the store does not have yet ----
# by_hash: the by-hash copy of the amd64 Packages.xz, as Release names it
by_hash() {
	echo "$D/main/binary-amd64/by-hash/SHA256/$(awk '/^SHA256:/ { s = 1 }
		s && / main\/binary-amd64\/Packages.xz$/ { print $1; exit }' "$D/Release")"
}
mkdeb extra 1.0 amd64
indexes
bh=$(by_hash)
cp "$D/main/binary-amd64/Packages.xz" "$T/Packages.xz"
flip_byte "$T/Packages.xz"
rm -f "$bh" "$D/main/binary-amd64/Packages.xz"
cp "$T/Packages.xz" "$bh"
cp "$T/Packages.xz" "$D/main/binary-amd64/Packages.xz"
refused "a Packages.xz whose hash disagrees with Release" deb \
	"dists/$SUITE/main/binary-amd64/Packages.xz" "sha256 mismatch"

mkdeb extra2 1.0 amd64
indexes
bh=$(by_hash)
size=$(stat -c %s "$D/main/binary-amd64/Packages.xz")
head -c $((size / 2)) "$D/main/binary-amd64/Packages.xz" >"$T/Packages.xz"
rm -f "$bh" "$D/main/binary-amd64/Packages.xz"
cp "$T/Packages.xz" "$bh"
cp "$T/Packages.xz" "$D/main/binary-amd64/Packages.xz"
refused "a truncated Packages.xz" deb "dists/$SUITE/main/binary-amd64/Packages.xz" \
	"expected $size"

# ---- changes: a new snapshot, by-hash or not ----
indexes
rm -rf "$D/main/binary-amd64/by-hash" "$D/main/binary-all/by-hash"
n0=$(nlog)
check "sync after the archive changed (by-hash gone)" kb mirror sync deb
read -r ref2 snap2 <"$OUT"
differ "a new snapshot" "$snap2" "$snap1"
differ "under a new time ref" "$ref2" "$ref1"
same "latest moved to it" "$(kb store ref get mirror/deb/latest 2>&1)" "tree $snap2"
same "the old time ref stays" "$(kb store ref get "$ref1" 2>&1)" "tree $snap1"
same "by-hash answered 404, the plain path was fetched instead" "$(since "$n0" | grep binary-amd64)" \
	"$(printf 'GET /apt/dists/%s/main/binary-amd64/by-hash/SHA256/%s 404\nGET /apt/dists/%s/main/binary-amd64/Packages.xz 200' \
		"$SUITE" "$(sha "$D/main/binary-amd64/Packages.xz")" "$SUITE")"
truth "the unchanged binary-all index was not fetched again" \
	bash -c '! grep -q binary-all <<<"$0"' "$(since "$n0")"
truth "the new Packages.xz is stored" test -e "$(objpath "$(sha "$D/main/binary-amd64/Packages.xz")")"

# a partial mirror without Packages.xz: the next variant Release lists
mkdeb extra3 1.0 amd64
indexes
rm "$(by_hash)" "$D/main/binary-amd64/Packages.xz"
n0=$(nlog)
check "sync a mirror that lacks Packages.xz" kb mirror sync deb
read -r ref3 snap3 <"$OUT"
run kb store ls -r "$snap3"
out_has "its snapshot holds Packages.gz instead" "dists/$SUITE/main/binary-amd64/Packages.gz"
same "... after .xz by hash and by name answered 404" "$(since "$n0" | grep binary-amd64 | awk '{ print $3 }' | tr '\n' ' ')" \
	"404 404 200 "
truth "the stored Packages.gz is the server's" \
	cmp -s "$(objpath "$(sha "$D/main/binary-amd64/Packages.gz")")" "$D/main/binary-amd64/Packages.gz"

# ---- unsigned, when the upstream says that is fine ----
check "an upstream without keyring (require_signature = false) takes Release unsigned" \
	kb mirror sync deb-unsigned
err_has "... with a warning" "no keyring" "taken unsigned"
run kb store ls -r mirror/deb-unsigned/latest
out_has "... and its snapshot holds Release" "dists/$SUITE/Release" \
	"dists/$SUITE/main/binary-amd64/Packages.gz"

# ---- names ----
expect_fail 1 "an upstream no recipe defines" kb mirror sync nosuch
err_has "... is named" "upstream 'nosuch'"
expect_fail 1 "a recipe without that upstream" kb mirror sync --recipe mirrors nosuch
err_has "... is named" "recipe 'mirrors' defines no upstream 'nosuch'"

# ---- packages: closure and download (when the closure is there) ----
run kb mirror closure deb hello
if [ "$RC" = 0 ]; then
	HELLO=$APT/pool/main/h/hello/hello_1.0_amd64.deb
	LIB=$APT/pool/main/l/libhello/libhello_1.0_amd64.deb
	out_has "the closure is hello and libhello" "hello 1.0 amd64 deb pool/main/h/hello/hello_1.0_amd64.deb" \
		"libhello 1.0 amd64 deb pool/main/l/libhello/libhello_1.0_amd64.deb"
	cp "$HELLO" "$T/hello.deb"
	good=$(sha "$HELLO")
	mkdeb hello 1.0 amd64 'libhello (>= 1.0), extra' # same name, other bytes
	bad=$(sha "$HELLO")
	expect_fail 1 "a package whose file differs from its index is refused" \
		kb mirror download deb hello
	err_has "... naming the package and the URL" "package hello 1.0 amd64 from deb" \
		"$NGX_URL/apt/pool/main/h/hello/hello_1.0_amd64.deb"
	truth "... and nothing of it lands" test ! -e "$(objpath "$bad")" -a ! -e "$(objpath "$good")"
	cp "$T/hello.deb" "$HELLO"
	check "download a package and what it depends on" kb mirror download deb hello
	truth "hello's .deb is stored by its sha256" cmp -s "$(objpath "$good")" "$HELLO"
	truth "libhello's .deb is stored by its sha256" cmp -s "$(objpath "$(sha "$LIB")")" "$LIB"
else
	diag "closure not available yet: download not tested"
	diag_file "$ERR"
fi

# ---- rpm-md ----
if command -v rpmbuild >/dev/null && command -v createrepo_c >/dev/null; then
	RPM=$WWW/rpm
	mkdir -p "$RPM/Packages" "$T/rpmbuild"
	printf '%%_topdir %s\n%%_dbpath %s\n' "$T/rpmbuild" "$T/rpmdb" >"$HOME/.rpmmacros"
	# mkrpm NAME [REQUIRES]
	mkrpm() {
		{
			printf 'Name: %s\nVersion: 1.0\nRelease: 1\nSummary: %s for the mirror tests\n' "$1" "$1"
			printf 'License: MIT\nBuildArch: noarch\n'
			[ -n "${2:-}" ] && printf 'Requires: %s\n' "$2"
			printf '\n%%description\nmade by t-mirror-sync.sh\n\n%%files\n'
		} >"$T/$1.spec"
		rpmbuild -bb --quiet "$T/$1.spec" >"$T/rpmbuild.log" 2>&1 &&
			cp "$T/rpmbuild/RPMS/noarch/$1-1.0-1.noarch.rpm" "$RPM/Packages/"
	}
	repodata() {
		rm -rf "$RPM/repodata"
		createrepo_c -q --no-database "$@" "$RPM" &&
			gpg --batch --yes --detach-sign --armor -o "$RPM/repodata/repomd.xml.asc" \
				"$RPM/repodata/repomd.xml"
	}
	primary() { sed -n 's/.*href="\(repodata\/[^"]*-primary.xml.gz\)".*/\1/p' "$RPM/repodata/repomd.xml"; }
	if mkrpm rlib && mkrpm rhello rlib && repodata; then
		check "sync an rpm-md upstream" kb mirror sync rpm
		read -r rref rsnap <"$OUT"
		same "mirror/rpm/latest is the snapshot" "$(kb store ref get mirror/rpm/latest 2>&1)" "tree $rsnap"
		same "the time ref is the snapshot" "$(kb store ref get "$rref" 2>&1)" "tree $rsnap"
		err_has "it names the key that signed repomd.xml" "signed by $FPR"
		same "the snapshot holds repomd.xml, its signature and the metadata it names" \
			"$(snapfiles mirror/rpm/latest)" \
			"$(cd "$RPM" && ls repodata/repomd.xml repodata/repomd.xml.asc repodata/*-primary.xml.gz \
				repodata/*-filelists.xml.gz repodata/*-other.xml.gz | sort)"
		truth "the stored primary is the server's" \
			cmp -s "$(objpath "$(sha "$RPM/$(primary)")")" "$RPM/$(primary)"
		n0=$(nlog)
		check "sync again, nothing changed" kb mirror sync rpm
		same "the same snapshot" "$(cat "$OUT")" "$rref $rsnap"
		same "only repomd.xml and its signature were fetched" "$(since "$n0" | sort)" \
			"$(printf 'GET /rpm/repodata/repomd.xml 200\nGET /rpm/repodata/repomd.xml.asc 200')"

		sed -i 's|</repomd>|<!-- edited --></repomd>|' "$RPM/repodata/repomd.xml"
		refused "a tampered repomd.xml" rpm "repodata/repomd.xml" "BAD signature"
		repodata
		rm "$RPM/repodata/repomd.xml.asc"
		refused "a repomd.xml without its signature" rpm "repodata/repomd.xml.asc" "not signed"

		mkrpm rextra
		repodata
		flip_byte "$RPM/$(primary)"
		refused "a primary.xml.gz whose checksum disagrees with repomd.xml" rpm "$(primary)" \
			"sha256 mismatch"

		repodata --checksum sha1
		refused "metadata with only sha1 checksums" rpm "only a sha1 checksum"

		printf '<html><body>not here</body></html>\n' >"$RPM/repodata/repomd.xml"
		gpg --batch --yes --detach-sign --armor -o "$RPM/repodata/repomd.xml.asc" \
			"$RPM/repodata/repomd.xml"
		refused "a signed HTML page for repomd.xml" rpm "repodata/repomd.xml" "names no primary"
	else
		fail "making an rpm-md repository with rpmbuild and createrepo_c"
		diag_file "$T/rpmbuild.log"
	fi
else
	diag "rpmbuild or createrepo_c missing: rpm-md not tested"
fi

# ---- metadata whose hash nobody knows (any_content), through the library ----
ROOT=${KBUILD_TEST_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LIBK=$(dirname "$KBUILD")/libkbuild.a
san=
if [ "${KBUILD_VARIANT:-}" = asan ] || ldd "$KBUILD" 2>/dev/null | grep -q libasan; then
	san="-fsanitize=address,undefined -fno-sanitize-recover=all"
fi
DRV=$T/fetch-drv
mkdir -p "$WWW/meta"
printf 'Origin: test\n' >"$WWW/meta/a"
head -c 5000 /dev/zero >"$WWW/meta/big"
# shellcheck disable=SC2086 # $san is a list of flags
if [ -f "$LIBK" ] && cc -std=c11 -D_GNU_SOURCE -O1 -g $san -o "$DRV" \
	"$ROOT/tests/t-mirror-fetch-drv.c" "$LIBK" -lcurl -lcrypto -lzstd -lpthread 2>"$T/cc.log"; then
	M=$T/store-meta
	check "metadata of unknown hash is fetched into the store" "$DRV" "$M" "$NGX_URL/meta/a" 1000 store
	same "... its hash and size reported" "$(cat "$OUT")" "$(sha "$WWW/meta/a") 13 200"
	truth "... and it landed" cmp -s "$(objpath "$(sha "$WWW/meta/a")" "$M")" "$WWW/meta/a"
	n0=$(nlog)
	check "... fetched again though stored" "$DRV" "$M" "$NGX_URL/meta/a" 1000 store
	same "... from the server" "$(since "$n0")" "GET /meta/a 200"
	printf 'Origin: changed\n' >"$WWW/meta/a"
	check "... so a change shows" "$DRV" "$M" "$NGX_URL/meta/a" 1000 store
	same "... as a new hash" "$(cut -d' ' -f1 "$OUT")" "$(sha "$WWW/meta/a")"
	before=$(objects "$M")
	expect_fail 1 "metadata beyond max_size is refused" "$DRV" "$M" "$NGX_URL/meta/big" 1000 store
	err_has "... saying so" "metadata 'test'" "$NGX_URL/meta/big" "5000 bytes, more than the 1000"
	same "... and nothing lands" "$(objects "$M")" "$before"
	check "into memory" "$DRV" "$M" "$NGX_URL/meta/big" 10000 memory
	same "... its hash and size reported" "$(cat "$OUT")" "$(sha "$WWW/meta/big") 5000 200"
	same "... and nothing lands" "$(objects "$M")" "$before"
	expect_fail 1 "a missing file" "$DRV" "$M" "$NGX_URL/meta/nothing" 1000 memory
	err_has "... is an error with its status" "HTTP 404"
else
	fail "the any_content driver compiles against $LIBK"
	diag_file "$T/cc.log"
fi

# ---- package inputs: resolved by 'kbuild lock', fetched as locked afterwards ----
rm -rf "$APT/pool"
mkdeb libhello 1.0 amd64
mkdeb hello 1.0 amd64 'libhello (>= 1.0)'
indexes
HELLO=$APT/pool/main/h/hello/hello_1.0_amd64.deb
cat >recipes/pkgs.recipe <<'REC'
include "mirrors.recipe"
package "hello" { upstream = "deb" name = "hello" }
package "libhello" { upstream = "deb" name = "libhello" version = "1.0" arch = "amd64" }
REC
check "kbuild lock resolves package inputs" kb lock pkgs
L=recipes/pkgs.lock
truth "the lock pins the package's version, arch, path, size and sha256" \
	grep -qzF "input package hello
  arch amd64
  metadata $(kb store ref get mirror/deb/latest | cut -c6-)
  name hello
  path pool/main/h/hello/hello_1.0_amd64.deb
  sha256 $(sha "$HELLO")
  size $(stat -c %s "$HELLO")
  upstream deb
  version 1.0" "$L"
cp "$L" "$T/pkgs.lock1"
check "kbuild lock again" kb lock pkgs
same_file "... gives the same lock" "$T/pkgs.lock1" "$L"
check "kbuild recipe fetches the packages as locked" kb recipe pkgs
res=$(cat "$OUT")
run kb store ls "$res"
out_has "the result holds the .deb by its hash" "f $(sha "$HELLO") hello"
check "again" kb recipe pkgs
err_has "... nothing to do" "nothing to do"
expect_fail 1 "--offline in an empty store" kb --store "$T/empty" recipe --offline pkgs
err_has "... names the package inputs" "input 'hello' (recipes/pkgs.recipe:2:1)" "offline"
cp recipes/pkgs.recipe "$T/pkgs.good"
sed -i 's/version = "1.0"/version = "2.0"/' recipes/pkgs.recipe
expect_fail 1 "a version the upstream does not have" kb lock pkgs
err_has "... is named with the version there is" "input 'libhello' (recipes/pkgs.recipe:3:1)" \
	"has libhello 1.0, not the version 2.0"
cp "$T/pkgs.good" recipes/pkgs.recipe
echo 'package "nope" { upstream = "deb" name = "no-such-package" }' >>recipes/pkgs.recipe
expect_fail 1 "an unknown package" kb lock pkgs
err_has "... is named" "no-such-package"
cp "$T/pkgs.good" recipes/pkgs.recipe
same_file "failed locks leave the lock as it was" "$T/pkgs.lock1" "$L"

check "the store is sound after all this" kb store fsck
finish
