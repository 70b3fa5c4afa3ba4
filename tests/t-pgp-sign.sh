#!/usr/bin/env bash
# OpenPGP keys and signatures made by kbuild (mirror/pgp_sign.c, through
# the library: tests/t-pgp-sign-drv.c): the same key, data and time give
# the same bytes; gpgv, apt and kbuild's own verifier accept detached and
# clearsigned output and refuse it once the data changed; clearsigned
# text comes back exactly; what cannot be signed faithfully is refused.
. "$(dirname "$0")/lib.sh"

ROOT=${KBUILD_TEST_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LIB=$(dirname "$KBUILD")/libkbuild.a
san=
if [ "${KBUILD_VARIANT:-}" = asan ] || ldd "$KBUILD" 2>/dev/null | grep -q libasan; then
	san="-fsanitize=address,undefined -fno-sanitize-recover=all"
fi
D=$T/drv
# shellcheck disable=SC2086 # $san is a list of flags
if ! cc -std=c11 -D_GNU_SOURCE -O1 -g $san -o "$D" "$ROOT/tests/t-pgp-sign-drv.c" "$LIB" \
	-lrnp -lcurl -lcrypto -lzstd -lpthread 2>"$T/cc.log"; then
	fail "the driver compiles against $LIB"
	diag_file "$T/cc.log"
	finish
fi
ok "the driver compiles against $LIB"

W=$T/w
mkdir -p "$W"
cd "$W" || exit 1
export GNUPGHOME=$W/gnupg
mkdir -m 700 "$GNUPGHOME"

start=$EPOCHREALTIME
check "a key is made" "$D" keygen "kbuild test <test@example.org>" sec.asc pub.asc
diag "keygen: $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
same "the secret key is armored" "$(head -n1 sec.asc)" "-----BEGIN PGP PRIVATE KEY BLOCK-----"
same "the public key is armored" "$(head -n1 pub.asc)" "-----BEGIN PGP PUBLIC KEY BLOCK-----"
truth "the public key holds nothing secret" [ -z "$(grep PRIVATE pub.asc)" ]
truth "armor lines end with LF alone" [ -z "$(grep -l $'\r' pub.asc sec.asc)" ]
run gpg --batch --with-colons --show-keys pub.asc
KEYLINE=$(grep '^pub:' "$OUT")
same "gpg sees one RSA 4096 key that signs and certifies, without expiry" \
	"$(echo "$KEYLINE" | cut -d: -f3,4,7,12)" "4096:1::scSC"
FPR=$(grep '^fpr:' "$OUT" | head -n1 | cut -d: -f10)
KC=$(echo "$KEYLINE" | cut -d: -f6)
truth "no subkey" [ -z "$(grep '^sub:' "$OUT")" ]
out_has "... with the user id" "kbuild test <test@example.org>"
run gpg --batch --with-colons --show-keys sec.asc
out_has "gpg sees the secret key without a passphrase" "sec:"
check "gpg imports the secret key unattended (no passphrase)" \
	gpg --batch --pinentry-mode error --import sec.asc
gpg --batch --dearmor <pub.asc >pub.gpg

printf 'Origin: kbuild\nLabel: test\n-a line with a dash\nFrom the start\n\tindented\n\nlast\n' >doc
cp doc bin
head -c 3000 /dev/urandom >>bin
# the key's own creation time: not in the future, which verifiers refuse
ST=$KC

for m in binary armor clear; do
	f=doc
	[ $m = clear ] || f=bin
	check "$m: signs" "$D" sign sec.asc $f $ST $m $m.1
	check "$m: signs again" "$D" sign sec.asc $f $ST $m $m.2
	same_file "$m: the same key, data and time give the same bytes" $m.1 $m.2
	check "$m: signs with another time" "$D" sign sec.asc $f $((ST + 1)) $m $m.3
	differ "$m: ... which gives other bytes" "$(sha $m.1)" "$(sha $m.3)"
done
truth "binary: an OpenPGP signature packet" [ "$(head -c1 binary.1 | od -An -tx1 | tr -d ' ')" = c2 ]
same "armor: an armored signature" "$(head -n1 armor.1)" "-----BEGIN PGP SIGNATURE-----"
truth "armor: LF line ends" [ -z "$(grep -l $'\r' armor.1)" ]
run gpg --batch --list-packets binary.1
out_has "the signature is SHA-256 (digest algo 8), v4, binary, made at the time given" \
	"digest algo 8" "version 4" "sigclass 0x00" "created $ST"

check "gpgv accepts the binary detached signature" gpgv --keyring ./pub.gpg binary.1 bin
err_has "... by the key" "$FPR"
check "gpgv accepts the armored detached signature" gpgv --keyring ./pub.gpg armor.1 bin
check "gpg --verify accepts the armored detached signature" gpg --batch --verify armor.1 bin
check "gpgv accepts the clearsigned document" gpgv --keyring ./pub.gpg --output clear.txt clear.1
same_file "... and gives back exactly the text" clear.txt doc
same "the clearsigned document says Hash: SHA256, LF line ends" \
	"$(head -n3 clear.1 | tr '\r' R)" "$(printf -- '-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n')"
truth "... a line starting with '-' is dash-escaped" grep -qx -- '- -a line with a dash' clear.1
same "... the text's last line is right before the signature" \
	"$(grep -A1 -x last clear.1 | sed -n 2p)" "-----BEGIN PGP SIGNATURE-----"
check "kbuild's verifier accepts the binary detached signature" \
	"$D" verify-detached pub.asc bin binary.1
err_has "... by the key" "signer $FPR"
check "kbuild's verifier accepts the armored detached signature" \
	"$D" verify-detached pub.asc bin armor.1
check "kbuild's verifier accepts the clearsigned document" "$D" verify-clear pub.asc clear.1
same_file "... and gives back exactly the text" "$OUT" doc

# tampering
cp bin bin.bad
flip_byte bin.bad 100
expect_fail 1 "gpgv refuses the binary signature over changed data" gpgv --keyring ./pub.gpg binary.1 bin.bad
err_has "... BAD signature" "BAD signature"
expect_fail 1 "gpgv refuses the armored signature over changed data" gpgv --keyring ./pub.gpg armor.1 bin.bad
expect_fail 1 "kbuild's verifier refuses it" "$D" verify-detached pub.asc bin.bad binary.1
err_has "... BAD signature" "BAD signature"
sed 's/^Label: test$/Label: evil/' clear.1 >clear.bad
differ "(the clearsigned text was changed)" "$(sha clear.1)" "$(sha clear.bad)"
expect_fail 1 "gpgv refuses a changed clearsigned document" gpgv --keyring ./pub.gpg clear.bad
expect_fail 1 "kbuild's verifier refuses it" "$D" verify-clear pub.asc clear.bad
err_has "... BAD signature" "BAD signature"

# apt: an InRelease signed by kbuild, through apt-get update and a key in signed-by
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
	R=$W/repo
	mkdir -p "$R/dists/t/main/binary-amd64" "$W/apt/lists/partial" "$W/apt/cache/archives/partial"
	P=$R/dists/t/main/binary-amd64/Packages
	: >"$P"
	printf 'Origin: kbuild\nSuite: t\nCodename: t\nDate: Sat, 01 Jan 2000 00:00:00 UTC\nArchitectures: amd64\nComponents: main\nSHA256:\n %s %s main/binary-amd64/Packages\n' \
		"$(sha "$P")" "$(stat -c %s "$P")" >"$R/dists/t/Release"
	check "an InRelease is signed" "$D" sign sec.asc "$R/dists/t/Release" $ST clear "$R/dists/t/InRelease"
	echo "deb [signed-by=$W/pub.asc] file://$R t main" >"$W/apt/sources.list"
	apt_update() {
		run apt-get update -o Dir::Etc::SourceList="$W/apt/sources.list" \
			-o Dir::Etc::SourceParts=/nonexistent -o Dir::State="$W/apt" \
			-o Dir::State::Lists="$W/apt/lists" -o Dir::Cache="$W/apt/cache" \
			-o Debug::NoLocking=1 -o APT::Sandbox::User=root \
			-o Dir::Etc::Trusted=/nonexistent -o Dir::Etc::TrustedParts=/nonexistent
	}
	apt_update
	if [ "$RC" = 0 ] && ! grep -qE '^(W|E):' "$ERR"; then
		ok "apt-get update accepts the InRelease with the armored key as signed-by"
	else
		fail "apt-get update accepts the InRelease with the armored key as signed-by"
		diag_file "$ERR"
	fi
	same_file "... and keeps exactly the signed Release text" \
		"$(ls "$W"/apt/lists/*_InRelease)" "$R/dists/t/InRelease"
	rm -f "$W"/apt/lists/*_InRelease
	sed -i 's/^Origin: kbuild$/Origin: evil/' "$R/dists/t/InRelease"
	apt_update
	truth "apt-get update refuses it once changed" grep -q 'is not signed\|BADSIG\|invalid' "$ERR"
	truth "... and keeps nothing of it" [ -z "$(ls "$W"/apt/lists/*_InRelease 2>/dev/null)" ]
else
	ok "skipped: the apt-get check needs root and apt"
fi

# rpm takes the public key
if command -v rpmkeys >/dev/null; then
	check "rpmkeys imports the public key" rpmkeys --root "$W/rpmroot" --import pub.asc
else
	ok "skipped: no rpmkeys"
fi

# refusals
printf 'a line with a trailing blank \nnext\n' >blank
expect_fail 1 "clearsigning text with a trailing blank is refused" "$D" sign sec.asc blank $ST clear x
err_has "... naming the line and why" "line 1 ends with a blank" "RFC 4880"
printf 'dos\r\nline\r\n' >crlf
expect_fail 1 "clearsigning text with carriage returns is refused" "$D" sign sec.asc crlf $ST clear x
err_has "... saying so" "line 1 holds a carriage return"
check "... a detached signature of it is fine" "$D" sign sec.asc crlf $ST armor crlf.sig
expect_fail 1 "a signature time before the key was made is refused" "$D" sign sec.asc bin $((KC - 1)) binary x
err_has "... saying why and what to do" "before the key was made" "SOURCE_DATE_EPOCH"
expect_fail 1 "a signature time of 0 is refused" "$D" sign sec.asc bin 0 binary x
err_has "... saying so" "between 1 and"
expect_fail 1 "a public key cannot sign" "$D" sign pub.asc bin $ST binary x
err_has "... saying so" "no secret signing key"
echo "not a key" >junk
expect_fail 1 "junk is no key" "$D" sign junk bin $ST binary x
err_has "... saying so" "not an OpenPGP key"
truth "nothing was written by refused signings" [ ! -e x ]
finish
