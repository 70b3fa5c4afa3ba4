# tests/recipe-env.sh, sourced by the recipe tests after lib.sh: a project
# directory $P (recipes/, keys/archive.asc: the public half of a test key
# made here with gpg, src/) and signed local apt repositories under $WWW,
# served by nginx.sh's nginx_start.
#   repo NAME SUITE DEB...   a repository at $WWW/NAME (apt-ftparchive),
#                            its InRelease signed with the test key
#   upstream NAME REPO SUITE an upstream block for such a repository
#   module_recipe KVER       the hello module (tests/fixtures/hello-module,
#                            copied to $P/mod) built against KVER's headers
#                            from upstream "fx", signed, packaged as a .deb
#   boot_iso ISO             boots it in qemu (SeaBIOS); the init must show
#                            the hello module live, signed by the MOK
#   boot_iso_sb ISO CERT     the same with Secure Boot on (OVMF) and CERT
#                            enrolled: the signature must verify
WWW=$T/www
P=$T/proj
mkdir -p "$WWW" "$P/recipes" "$P/keys" "$P/src"
export GNUPGHOME=$T/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --passphrase '' --quick-gen-key 'kbuild test archive <archive@kbuild.test>' \
	rsa3072 sign never >"$T/gpg.log" 2>&1 || {
	fail "making a test key with gpg"
	finish
}
gpg --armor --export >"$P/keys/archive.asc"

repo() {
	local name=$1 suite=$2 d
	shift 2
	d=$WWW/$name/dists/$suite
	rm -rf "${WWW:?}/$name"
	mkdir -p "$WWW/$name/pool/main" "$d/main/binary-amd64"
	ln -f "$@" "$WWW/$name/pool/main/" 2>/dev/null || cp "$@" "$WWW/$name/pool/main/"
	(cd "$WWW/$name" && apt-ftparchive --arch amd64 packages pool) >"$d/main/binary-amd64/Packages"
	apt-ftparchive -o APT::FTPArchive::Release::Suite="$suite" \
		-o APT::FTPArchive::Release::Codename="$suite" \
		-o APT::FTPArchive::Release::Architectures=amd64 \
		-o APT::FTPArchive::Release::Components=main release "$d" >"$T/Release"
	mv "$T/Release" "$d/Release"
	gpg --batch --yes --clearsign -o "$d/InRelease" "$d/Release" 2>>"$T/gpg.log"
}

upstream() { # NAME REPO SUITE
	printf 'upstream "%s" {\n    type = "apt"\n    url = "%s/%s"\n    suite = "%s"\n' "$1" "$NGX_URL" "$2" "$3"
	printf '    components = ["main"]\n    architectures = ["amd64"]\n    keyring = "archive"\n}\n'
}

module_recipe() { # KVER: the recipe on stdout
	local D='$'
	cp -r "$(dirname "${BASH_SOURCE[0]}")/fixtures/hello-module" "$P/mod"
	echo 'key "archive" { path = "../keys/archive.asc" }'
	upstream fx fx bookworm
	echo "let kver = \"$1\""
	echo "buildroot \"kbuild\" { upstreams = [\"fx\"] packages = [\"build-essential\", \"linux-headers-$D{kver}\", \"mawk\"] }"
	echo 'file "src" { path = "../mod" }'
	echo 'step "hello-ko" {'
	echo '    root = "kbuild"'
	echo '    inputs = ["src"]'
	echo "    kernel = \"$D{kver}\""
	echo '    script = "cp -r /inputs/src/. /build/ && make -C $KDIR M=/build modules && mkdir -p /out/lib/modules/$KVER/updates && cp /build/*.ko /out/lib/modules/$KVER/updates/"'
	echo '    source_date_epoch = 1700000000'
	echo '}'
	echo 'sign "hello-signed" { modules = "hello-ko" key = "mok" certificate = "usr/share/kbuild/mok.der" }'
	echo "deb \"hello-deb\" { tree = \"hello-signed\" name = \"hello\" version = \"1.0\" kmod = \"$D{kver}\" maintainer = \"t <t@example.org>\" summary = \"hello module\" source_date_epoch = 1700000000 }"
}

boot_iso() { # ISO
	if [ "${KBUILD_VARIANT:-normal}" != normal ] || ! command -v qemu-system-x86_64 >/dev/null; then
		ok "skipped: the boot runs in the normal variant only (qemu runs no kbuild code)"
		return
	fi
	timeout 180 qemu-system-x86_64 -nographic -serial mon:stdio -m 256 -no-reboot \
		-cdrom "$1" </dev/null >"$T/boot.log" 2>&1
	truth "it boots in qemu (SeaBIOS) with the module loaded, signed by the MOK" \
		grep -aq 'kbuild-init: modules: hello(state=live,signer="kbuild module signing key mok",hash=sha256' "$T/boot.log"
	grep -a 'kbuild-init' "$T/boot.log" | head -n1 | sed 's/^/# /'
}
boot_iso_sb() { # ISO CERT.der: boots it with Secure Boot on, CERT enrolled as a MOK
	if [ "${KBUILD_VARIANT:-normal}" != normal ] || [ ! -r "$SB_CODE" ]; then
		ok "skipped: the Secure Boot boot runs in the normal variant, with OVMF"
		return
	fi
	ovmf_vars_mok "$2" "$T/vars-mok.fd"
	sb_qemu "$T/vars-mok.fd" "$1" "$T/boot-sb.log"
	truth "it boots with Secure Boot on and the MOK enrolled, the module's signature verified" \
		grep -aq 'kbuild-init: modules: hello(state=live,signer="kbuild module signing key mok",hash=sha256,taint=O)' "$T/boot-sb.log"
	truth "... under Secure Boot" grep -aq "secureboot: Secure boot enabled" "$T/boot-sb.log"
}
