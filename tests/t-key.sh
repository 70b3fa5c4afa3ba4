#!/usr/bin/env bash
# kbuild key: the key directory. Modes exact from creation (0700, 0600),
# never an overwrite, the X.509 extensions of a module signing key, only
# public parts exported, names checked, the directory's resolution
# (--keys, KBUILD_KEYS, XDG_CONFIG_HOME, HOME), and no key material in
# the store or on the terminal.
. "$(dirname "$0")/lib.sh"

export KBUILD_KEYS=$T/keys
K=$KBUILD_KEYS
ALL=$T/all-output # everything any kbuild command printed
: >"$ALL"
kbk() { run kb "$@"; cat "$OUT" "$ERR" >>"$ALL"; }
mode() { stat -c %a "$1"; }
# the line after the first one matching PATTERN in FILE, without leading blanks
after() { grep -A1 -m1 -- "$2" "$1" | sed -n 2p | sed 's/^ *//'; }

# ---- an X.509 key ----
kbk key new mok
if [ "$RC" = 0 ]; then ok "key new makes an X.509 key"; else fail "key new makes an X.509 key (exit $RC)"; diag_file "$ERR"; fi
same "... printing the public files" "$(cat "$OUT")" "$(printf '%s\n%s' "$K/mok.crt" "$K/mok.der")"
same "the key directory is 0700" "$(mode "$K")" 700
same "the private key is 0600" "$(mode "$K/mok.key")" 600
same "the certificate is 0644" "$(mode "$K/mok.crt")" 644
same "the DER certificate is 0644" "$(mode "$K/mok.der")" 644
same "the private key is PEM" "$(head -n1 "$K/mok.key")" "-----BEGIN PRIVATE KEY-----"
run openssl x509 -in "$K/mok.crt" -noout -text
cp "$OUT" "$T/mok.txt"
out_has "openssl: RSA 4096, self-signed with SHA-256" "Public-Key: (4096 bit)" \
	"Signature Algorithm: sha256WithRSAEncryption" "Subject: CN = kbuild module signing key mok" \
	"Issuer: CN = kbuild module signing key mok"
same "openssl: basicConstraints critical, CA:FALSE" "$(after "$T/mok.txt" 'Basic Constraints: critical')" "CA:FALSE"
same "openssl: keyUsage digitalSignature (only)" "$(after "$T/mok.txt" 'X509v3 Key Usage')" "Digital Signature"
same "openssl: extendedKeyUsage codeSigning (only)" "$(after "$T/mok.txt" 'Extended Key Usage')" "Code Signing"
SKID=$(grep -A1 'Subject Key Identifier' "$T/mok.txt" | tail -n1 | tr -d ' ')
AKID=$(grep -A1 'Authority Key Identifier' "$T/mok.txt" | tail -n1 | tr -d ' ' | sed 's/^keyid://')
truth "openssl: a subject key identifier" grep -qE '^([0-9A-F]{2}:){19}[0-9A-F]{2}$' <<<"$SKID"
same "openssl: the authority key identifier is the subject's own" "$AKID" "$SKID"
check "openssl checks the certificate as self-signed" openssl verify -CAfile "$K/mok.crt" -partial_chain -purpose any "$K/mok.crt"
end=$(date -d "$(openssl x509 -in "$K/mok.crt" -noout -enddate | cut -d= -f2)" +%s)
truth "valid for more than 90 years" [ "$end" -gt $(($(date +%s) + 90 * 365 * 86400)) ]
run openssl x509 -in "$K/mok.der" -inform DER -outform PEM
same_file "the .der is the same certificate as the .crt" "$OUT" "$K/mok.crt"
check "openssl takes the private key" openssl pkey -in "$K/mok.key" -noout
same "... and it belongs to the certificate" "$(openssl pkey -in "$K/mok.key" -pubout | sha256sum)" \
	"$(openssl x509 -in "$K/mok.crt" -noout -pubkey | sha256sum)"
BODY=$(sed -n 2p "$K/mok.key") # a line of the secret, to look for elsewhere

# never overwrite
before=$(cat "$K"/mok.* | sha256sum)
kbk key new mok
same "an existing key is refused (exit 1)" "$RC" 1
err_has "... naming it and saying why" "'mok' exists already" "$K/mok.crt" "never overwrites"
same "... and its files are untouched" "$(cat "$K"/mok.* | sha256sum)" "$before"
kbk key new --openpgp mok
same "... also as another kind" "$RC" 1
mv "$K/mok.crt" "$T/mok.crt.away"
mv "$K/mok.der" "$T/mok.der.away"
kbk key new mok
same "a key is refused even when only its private part is left" "$RC" 1
err_has "... naming the file" "$K/mok.key"
mv "$T/mok.crt.away" "$K/mok.crt"
mv "$T/mok.der.away" "$K/mok.der"

# --subject; a failure leaves nothing
kbk key new --subject "Example Corp Secure Boot module key" corp
same "--subject" "$RC" 0
check "... is the certificate's common name" openssl x509 -in "$K/corp.crt" -noout -subject
out_has "... as given" "CN = Example Corp Secure Boot module key"
kbk key new --subject "$(printf 'x%.0s' $(seq 80))" long
same "a subject longer than 64 characters is refused" "$RC" 1
err_has "... saying what is allowed" "1 to 64 characters"
truth "... and no file of the key is left" [ -z "$(ls "$K" | grep '^long')" ]

# ---- an OpenPGP key ----
kbk key new --openpgp --subject "Example Repo <repo@example.org>" repo
same "key new --openpgp" "$RC" 0
same "... prints the public key's file" "$(cat "$OUT")" "$K/repo.pgp.pub"
same "the secret key is 0600" "$(mode "$K/repo.pgp.sec")" 600
same "the public key is 0644" "$(mode "$K/repo.pgp.pub")" 644
run gpg --batch --with-colons --show-keys "$K/repo.pgp.pub"
out_has "gpg reads the public key with its user id" "Example Repo <repo@example.org>"
PFPR=$(grep '^fpr:' "$OUT" | head -n1 | cut -d: -f10)
PBODY=$(sed -n 3p "$K/repo.pgp.sec")

# ---- list ----
kbk key list
same "key list" "$RC" 0
same "... one line per key, sorted, with kind, fingerprint and subject" "$(cat "$OUT")" \
	"$(printf '%s\n%s\n%s' \
		"corp x509 $(sha "$K/corp.der") CN=Example Corp Secure Boot module key" \
		"mok x509 $(sha "$K/mok.der") CN=kbuild module signing key mok" \
		"repo openpgp $PFPR Example Repo <repo@example.org>")"
mv "$K/corp.key" "$T/corp.key.away"
kbk key list
out_has "a certificate without its private key is listed as public" "corp x509(public) "
mv "$T/corp.key.away" "$K/corp.key"

# ---- export ----
kbk key export mok
same "key export: the certificate as PEM" "$RC" 0
same_file "... exactly the .crt" "$OUT" "$K/mok.crt"
kbk key export --der mok
same_file "key export --der: exactly the .der" "$OUT" "$K/mok.der"
kbk key export --pem --out "$T/exp.pem" mok
same_file "key export --out FILE" "$T/exp.pem" "$K/mok.crt"
kbk key export repo
same_file "key export of an OpenPGP key: its public key" "$OUT" "$K/repo.pgp.pub"
kbk key export --der repo
same "key export --der of an OpenPGP key is a usage error" "$RC" 2
kbk key export nosuch
same "exporting a missing key fails" "$RC" 1
err_has "... saying where it looked and what to do" "no key 'nosuch' in $K" "kbuild key list"
# a private key put where the certificate should be does not come out
cp "$K/mok.key" "$T/k.pem"
mkdir -p "$T/evil" && chmod 700 "$T/evil"
cat "$K/mok.key" "$K/mok.crt" >"$T/evil/bad.crt"
chmod 644 "$T/evil/bad.crt"
kbk --keys "$T/evil" key export bad
same "a .crt that also holds a private key exports" "$RC" 0
truth "... the certificate alone" [ -z "$(grep 'PRIVATE KEY' "$OUT")" ]
rm -rf "$T/evil"
truth "no export printed anything private" [ -z "$(grep 'PRIVATE' "$ALL")" ]

# ---- names and usage ----
for bad in .hidden a/b "a b" "ü" "$(printf 'n%.0s' $(seq 65))"; do
	kbk key new -- "$bad"
	same "the name '${bad:0:20}' is a usage error" "$RC" 2
	same "... in one line" "$(wc -l <"$ERR")" 1
done
kbk key new -- -dash
same "a name starting with '-' is a usage error" "$RC" 2
err_has "... saying what names are" "not starting with '.' or '-'"
kbk key new
same "key new without a name: exit 2" "$RC" 2
kbk key new a b
same "key new with two names: exit 2" "$RC" 2
kbk key
same "key without a command: exit 2" "$RC" 2
kbk key frobnicate
same "an unknown key command: exit 2" "$RC" 2
kbk key new --bogus x
same "an unknown option: exit 2" "$RC" 2
check "kbuild help key" kb help key
out_has "... describes new, list and export" "kbuild key new" "kbuild key list" "kbuild key export" "0600"
check "kbuild help key new" kb help key new
out_has "... describes --openpgp and --subject" "--openpgp" "--subject"
check "kbuild key new --help" kb key new --help

# ---- where the directory is ----
kbk --keys "$T/other" key new --openpgp viaflag
same "--keys DIR" "$RC" 0
truth "... puts the key there" [ -f "$T/other/viaflag.pgp.sec" ]
same "... made 0700" "$(mode "$T/other")" 700
run env -u KBUILD_KEYS XDG_CONFIG_HOME="$T/xdgc" "$KBUILD" key list
err_has "without KBUILD_KEYS: XDG_CONFIG_HOME/kbuild/keys" "$T/xdgc/kbuild/keys"
run env -u KBUILD_KEYS -u XDG_CONFIG_HOME "$KBUILD" key list
err_has "without either: ~/.config/kbuild/keys" "$HOME/.config/kbuild/keys"
run env XDG_CONFIG_HOME="$T/xdgc" "$KBUILD" --keys "$T/other" key list
out_has "--keys wins over KBUILD_KEYS and XDG" "viaflag openpgp"
mkdir -m 755 "$T/open"
kbk --keys "$T/open" key new x
same "a key directory others may enter is refused for new keys" "$RC" 1
err_has "... with the chmod to run" "chmod 700 $T/open"
truth "... and nothing is written" [ -z "$(ls "$T/open")" ]

# ---- loading a private key (by signing with it) ----
cp /usr/bin/true "$T/elf.ko"
kbk sign module --key mok "$T/elf.ko" "$T/elf.signed"
same "the private key is used when it is 0600" "$RC" 0
for m in 644 640 604 660; do
	chmod "$m" "$K/mok.key"
	kbk sign module --key mok "$T/elf.ko" "$T/elf.signed2"
	same "a private key of mode 0$m is refused" "$RC" 1
	err_has "... naming the file, its mode and the chmod to run" "$K/mok.key" "0$m" "chmod 600 $K/mok.key"
done
chmod 600 "$K/mok.key"
truth "... and nothing was signed" [ ! -e "$T/elf.signed2" ]
ln -s mok.key "$K/link.key"
cp "$K/mok.crt" "$K/link.crt"
kbk sign module --key link "$T/elf.ko" "$T/elf.signed3"
same "a private key that is a symlink is refused" "$RC" 1
rm -f "$K/link.key" "$K/link.crt"
cp "$K/corp.key" "$T/corp.key.keep"
cp "$K/mok.key" "$K/swap.key"
cp "$K/corp.crt" "$K/swap.crt"
kbk sign module --key swap "$T/elf.ko" "$T/elf.signed4"
same "a private key that does not belong to the certificate is refused" "$RC" 1
err_has "... saying so" "is not the private key of $K/swap.crt"
rm -f "$K/swap.key" "$K/swap.crt"

# ---- secrets stay secret ----
truth "no command printed the X.509 private key" [ -z "$(grep -F -- "$BODY" "$ALL")" ]
truth "no command printed the OpenPGP secret key" [ -z "$(grep -F -- "$PBODY" "$ALL")" ]
if [ -d "$KBUILD_STORE" ]; then
	truth "nothing in the store holds key material" [ -z "$(grep -rlF -e "$BODY" -e "$PBODY" "$KBUILD_STORE")" ]
else
	ok "the key commands did not even make a store"
fi
finish
