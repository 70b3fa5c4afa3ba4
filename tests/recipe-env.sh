# tests/recipe-env.sh, sourced by the recipe tests after lib.sh: a project
# directory $P (recipes/, keys/archive.asc: the public half of a test key
# made here with gpg, src/) and signed local apt repositories under $WWW,
# served by nginx.sh's nginx_start.
#   repo NAME SUITE DEB...   a repository at $WWW/NAME (apt-ftparchive),
#                            its InRelease signed with the test key
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
