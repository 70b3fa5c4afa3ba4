#!/usr/bin/env bash
# kbuild sign module: kernel module signatures. (a) on any ELF file: the
# layout (CMS, struct module_signature, marker), openssl cms accepting
# the signature and refusing a changed module, detached + attach, the
# refusals, no key material anywhere; (b) on tests/fixtures/hello-module
# built against the real Debian 12 kernel headers of the fixture cache:
# byte-identical to the kernel's own sign-file (signed, detached, attached),
# what modinfo shows, and a rebuilt module taking the published signature.
. "$(dirname "$0")/lib.sh"

ROOT=${KBUILD_TEST_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
FIX=${KBUILD_FIXTURES:-/var/cache/kbuild-fixtures}
KVER=6.1.0-56-amd64
export KBUILD_KEYS=$T/keys
K=$KBUILD_KEYS
W=$T/w
mkdir -p "$W"
ALL=$T/all-output # everything kbuild printed
: >"$ALL"
kbs() { run kb "$@"; cat "$OUT" "$ERR" >>"$ALL"; }
# the line after the first one matching PATTERN in FILE, without leading blanks
after() { grep -A1 -m1 -- "$2" "$1" | sed -n 2p | sed 's/^ *//'; }

# split SIGNED UNSIGNED SIG: the module and its CMS, by the trailer's sig_len;
# prints "id_type signer_len key_id_len algo hash" of struct module_signature
split() {
	python3 - "$@" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
assert d.endswith(b"~Module signature appended~\n"), "no marker"
info = d[-40:-28]
n = int.from_bytes(info[8:12], "big")
assert info[5:8] == b"\0\0\0", "padding"
open(sys.argv[2], "wb").write(d[:-40 - n])
open(sys.argv[3], "wb").write(d[-40 - n:-40])
print(info[2], info[3], info[4], info[0], info[1])
EOF
}

# build_hello_module ROOT OUT: copies tests/fixtures/hello-module into OUT
# and builds it there with the kernel headers of the build root ROOT,
# inside the sandbox, with the variables that make the build reproducible;
# OUT/hello.ko is the result.
build_hello_module() {
	local root=$1 out=$2
	mkdir -p "$out" && cp "$ROOT"/tests/fixtures/hello-module/* "$out"/ || return 1
	kb sandbox --root "$root" --bind "$out:/build:rw" --cwd /build \
		--env KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 1970" \
		--env KBUILD_BUILD_USER=kbuild --env KBUILD_BUILD_HOST=kbuild \
		-- make -C /usr/src/linux-headers-$KVER M=/build modules
}

check "a module signing key" kb key new mok
BODY=$(sed -n 2p "$K/mok.key")
SERIAL=$(openssl x509 -in "$K/mok.crt" -noout -serial | cut -d= -f2)

# ---- (a) any ELF file ----
E=$W/elf.ko
cp /usr/bin/true "$E"
chmod 644 "$E"
kbs sign module --key mok "$E" "$W/elf.signed"
same "sign module" "$RC" 0
same "... prints nothing" "$(cat "$OUT")" ""
same "the output is 0644" "$(stat -c %a "$W/elf.signed")" 644
same "the trailer: PKCS#7 id_type 2, no signer or key id, algo and hash 0" \
	"$(split "$W/elf.signed" "$W/elf.u" "$W/elf.sig")" "2 0 0 0 0"
same_file "... after the module's own bytes" "$W/elf.u" "$E"
run openssl cms -cmsout -print -inform DER -in "$W/elf.sig"
cp "$OUT" "$W/elf.cms.txt"
out_has "the CMS: SignedData, detached, SHA-256, signer by issuer and serial" \
	"contentType: pkcs7-signedData" "eContent: <ABSENT>" "algorithm: sha256" \
	"issuerAndSerialNumber" "CN=kbuild module signing key mok"
same "... without certificates" "$(after "$W/elf.cms.txt" 'certificates:')" "<ABSENT>"
same "... without signed attributes" "$(after "$W/elf.cms.txt" 'signedAttrs:')" "<ABSENT>"
same "... an RSA PKCS#1 v1.5 signature" "$(after "$W/elf.cms.txt" 'signatureAlgorithm:')" "algorithm: rsaEncryption (1.2.840.113549.1.1.1)"
check "openssl cms -verify accepts the signature over the module" \
	openssl cms -verify -binary -inform DER -in "$W/elf.sig" -content "$E" \
	-certfile "$K/mok.crt" -noverify -out /dev/null
cp "$E" "$W/elf.bad"
flip_byte "$W/elf.bad" 1000
expect_fail nz "... and refuses it over a changed module" \
	openssl cms -verify -binary -inform DER -in "$W/elf.sig" -content "$W/elf.bad" \
	-certfile "$K/mok.crt" -noverify -out /dev/null
kbs sign module --key mok "$E" "$W/elf.signed2"
same_file "signing again gives the same bytes" "$W/elf.signed2" "$W/elf.signed"
kbs sign module --key mok --detached "$E" "$W/elf.p7s"
same_file "--detached writes exactly the CMS" "$W/elf.p7s" "$W/elf.sig"
kbs sign module --attach "$W/elf.p7s" "$E" "$W/elf.attached"
same "--attach without a key" "$RC" 0
same_file "... gives the signed module byte for byte" "$W/elf.attached" "$W/elf.signed"
kbs sign module --key mok --hash sha512 "$E" "$W/elf.512"
split "$W/elf.512" "$W/x.u" "$W/x.sig" >/dev/null
run openssl cms -cmsout -print -inform DER -in "$W/x.sig"
out_has "--hash sha512" "algorithm: sha512"
kbs sign module --key mok --replace "$W/elf.512" "$W/elf.re"
same_file "--replace drops the old signature and signs anew" "$W/elf.re" "$W/elf.signed"
kbs sign module --attach "$W/elf.p7s" --replace "$W/elf.512" "$W/elf.re2"
same_file "--attach --replace too" "$W/elf.re2" "$W/elf.signed"
cp "$W/elf.signed" "$W/inplace.ko"
kbs sign module --key mok --replace "$W/inplace.ko" "$W/inplace.ko"
same_file "IN and OUT may be one file" "$W/inplace.ko" "$W/elf.signed"

# refusals: nothing is written
kbs sign module --key mok "$W/elf.signed" "$W/r1"
same "a signed module is refused" "$RC" 1
err_has "... saying so and what to do" "$W/elf.signed is signed already" "--replace"
printf 'not elf\n' >"$W/text.ko"
kbs sign module --key mok "$W/text.ko" "$W/r2"
same "a file that is not ELF is refused" "$RC" 1
err_has "... saying so" "$W/text.ko is not an ELF file"
kbs sign module --attach "$W/text.ko" "$E" "$W/r3"
same "a signature that is not CMS is refused" "$RC" 1
err_has "... saying so" "is not a CMS signature"
kbs sign module --key mok --hash md5 "$E" "$W/r4"
same "--hash md5 is a usage error" "$RC" 2
err_has "... naming the ones taken" "sha256, sha384 or sha512"
same "... in one line" "$(wc -l <"$ERR")" 1
kbs sign module --key mok --hash sha1 "$E" "$W/r4"
same "--hash sha1 too" "$RC" 2
kbs sign module --key nosuch "$E" "$W/r5"
same "a missing key is refused" "$RC" 1
err_has "... naming it, the directory and what to do" "no key 'nosuch' in $K" "kbuild key new nosuch"
chmod 644 "$K/mok.key"
kbs sign module --key mok "$E" "$W/r6"
same "a private key readable by others is refused" "$RC" 1
err_has "... naming the file, its mode and the chmod to run" "$K/mok.key" "0644" "chmod 600 $K/mok.key"
chmod 640 "$K/mok.key"
kbs sign module --key mok "$E" "$W/r6"
same "... and by the group" "$RC" 1
chmod 600 "$K/mok.key"
kbs sign module --key mok "$W/none.ko" "$W/r7"
same "a missing module is refused" "$RC" 1
err_has "... naming it" "$W/none.ko"
kbs sign module "$E" "$W/r8"
same "neither --key nor --attach: exit 2" "$RC" 2
kbs sign module --key mok --attach "$W/elf.p7s" "$E" "$W/r8"
same "--key with --attach: exit 2" "$RC" 2
kbs sign module --key mok "$E"
same "no OUT: exit 2" "$RC" 2
kbs sign frob
same "an unknown sign command: exit 2" "$RC" 2
truth "no refused command left an output or a temporary file" \
	[ -z "$(ls "$W" | grep -E '^r[0-9]|tmp-')" ]
check "kbuild help sign" kb help sign
out_has "... describes the options" "--key NAME" "--detached" "--attach SIG" "--replace" "sign-file"

# a large module streams: memory does not follow its size
head -c 4 "$E" >"$W/big.ko"
head -c $((200 << 20)) /dev/zero >>"$W/big.ko"
if [ -x /usr/bin/time ] && [ "${KBUILD_VARIANT:-normal}" = normal ]; then
	run /usr/bin/time -f '%M %e' "$KBUILD" sign module --key mok "$W/big.ko" "$W/big.signed"
	read -r kib secs < <(tail -n1 "$ERR")
	diag "signing 200 MiB: ${secs} s, ${kib} KiB max RSS"
	truth "signing 200 MiB takes less than 40 MiB of memory" [ "$kib" -lt 40960 ]
else
	check "a 200 MiB module is signed" kb sign module --key mok "$W/big.ko" "$W/big.signed"
fi
same "... with the whole module before the signature" \
	"$(head -c $(stat -c %s "$W/big.ko") "$W/big.signed" | sha256sum)" "$(sha256sum <"$W/big.ko")"
rm -f "$W/big.ko" "$W/big.signed"

# ---- (b) the hello module against the real kernel headers ----
if [ ! -e "$FIX/debs/.complete" ]; then
	ok "skipped: no fixture packages in $FIX/debs (run .ci/fixtures)"
	finish
fi
mapfile -t DEBS < <(ls "$FIX"/debs/*.deb)
check "the fixture .debs go into the store" kb store add "${DEBS[@]}"
mapfile -t H <"$OUT"
check "the build root with the kernel headers checks out" kb buildroot --checkout "$W/root" "${H[@]}"
SF=$W/root/usr/lib/linux-kbuild-6.1/scripts/sign-file
if [ ! -d "$W/root/usr/src/linux-headers-$KVER" ]; then
	ok "skipped: no linux-headers-$KVER in the fixture packages"
	finish
fi
if build_hello_module "$W/root" "$W/b1" >"$W/b1.log" 2>&1; then
	ok "the hello module builds against linux-headers-$KVER in the sandbox"
else
	fail "the hello module builds against linux-headers-$KVER in the sandbox"
	diag_file "$W/b1.log"
	finish
fi
M=$W/b1/hello.ko
cp "$M" "$W/unsigned.ko"
run modinfo -F vermagic "$M"
same "modinfo: vermagic" "$(cat "$OUT")" "6.1.0-56-amd64 SMP preempt mod_unload modversions "
run modinfo -F license "$M"
same "modinfo: license GPL" "$(cat "$OUT")" GPL

kbs sign module --key mok "$M" "$W/kb.ko"
same "kbuild signs hello.ko" "$RC" 0
if [ -x "$SF" ] && "$SF" 2>&1 | grep -q -i usage; then
	for h in sha256 sha384 sha512; do
		cp "$M" "$W/sf-$h.ko"
		check "sign-file $h signs a copy" "$SF" "$h" "$K/mok.key" "$K/mok.crt" "$W/sf-$h.ko"
		kbs sign module --key mok --hash "$h" "$M" "$W/kb-$h.ko"
		same_file "kbuild --hash $h and sign-file $h: byte-identical" "$W/kb-$h.ko" "$W/sf-$h.ko"
	done
	cp "$M" "$W/d.ko"
	check "sign-file -d writes a detached signature" "$SF" -d sha256 "$K/mok.key" "$K/mok.crt" "$W/d.ko"
	kbs sign module --key mok --detached "$M" "$W/kb.p7s"
	same_file "kbuild --detached and sign-file -d: byte-identical" "$W/kb.p7s" "$W/d.ko.p7s"
	check "sign-file -s attaches it" "$SF" -s "$W/kb.p7s" sha256 "$K/mok.crt" "$M" "$W/sf-attached.ko"
	kbs sign module --attach "$W/kb.p7s" "$M" "$W/kb-attached.ko"
	same_file "kbuild --attach and sign-file -s: byte-identical" "$W/kb-attached.ko" "$W/sf-attached.ko"
	same_file "... and both equal the module signed directly" "$W/kb-attached.ko" "$W/kb.ko"
	start=$EPOCHREALTIME
	for i in 1 2 3 4 5; do kb sign module --key mok "$M" "$W/t.ko"; done
	mid=$EPOCHREALTIME
	for i in 1 2 3 4 5; do cp "$M" "$W/t.ko" && "$SF" sha256 "$K/mok.key" "$K/mok.crt" "$W/t.ko"; done
	diag "signing hello.ko 5 times: kbuild $(awk -v a="$start" -v b="$mid" 'BEGIN { printf "%.3f", b - a }') s, sign-file $(awk -v a="$mid" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }') s"
else
	ok "skipped: no runnable sign-file in linux-kbuild-6.1"
fi
run modinfo "$W/kb.ko"
cp "$OUT" "$W/modinfo.txt"
out_has "modinfo: signer, PKCS#7, sha256" "signer:         kbuild module signing key mok" \
	"sig_id:         PKCS#7" "sig_hashalgo:   sha256"
same "modinfo: sig_key is the certificate's serial" \
	"$(grep '^sig_key:' "$W/modinfo.txt" | awk '{ print $2 }' | tr -d :)" "$SERIAL"
run modinfo -F vermagic "$W/kb.ko"
same "modinfo: vermagic of the signed module" "$(cat "$OUT")" "6.1.0-56-amd64 SMP preempt mod_unload modversions "
same "the signed module's trailer" "$(split "$W/kb.ko" "$W/kb.u" "$W/kb.sig")" "2 0 0 0 0"
check "openssl cms -verify accepts hello.ko's signature" openssl cms -verify -binary -inform DER \
	-in "$W/kb.sig" -content "$W/unsigned.ko" -certfile "$K/mok.crt" -noverify -out /dev/null
cp "$W/unsigned.ko" "$W/tampered.ko"
flip_byte "$W/tampered.ko"
expect_fail nz "... and refuses it on a tampered hello.ko" openssl cms -verify -binary -inform DER \
	-in "$W/kb.sig" -content "$W/tampered.ko" -certfile "$K/mok.crt" -noverify -out /dev/null

# a third party: rebuilds from source, attaches the published signature
if build_hello_module "$W/root" "$W/b2" >"$W/b2.log" 2>&1; then
	same_file "a second build of hello.ko is byte-identical" "$W/b2/hello.ko" "$M"
	kbs sign module --attach "$W/kb.p7s" "$W/b2/hello.ko" "$W/rebuilt-signed.ko"
	same_file "... and with the published signature attached equals the signed module" \
		"$W/rebuilt-signed.ko" "$W/kb.ko"
else
	fail "the hello module builds a second time"
	diag_file "$W/b2.log"
fi

# ---- secrets ----
truth "the private key never appeared on stdout or stderr" [ -z "$(grep -F -- "$BODY" "$ALL")" ]
truth "... nor anything private" [ -z "$(grep PRIVATE "$ALL")" ]
truth "nothing in the store holds the private key" [ -z "$(grep -rlF -- "$BODY" "$KBUILD_STORE")" ]
finish
