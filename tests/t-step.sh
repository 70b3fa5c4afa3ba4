#!/usr/bin/env bash
# Recipes with buildroots and steps, end to end: 'kbuild lock' pins a
# buildroot's closure package by package, 'kbuild recipe' makes the root,
# runs each step in the sandbox and stores its output.
# (a) a tiny root (busybox in a .deb, served by nginx from an apt
#     repository made with apt-ftparchive and signed with gpg): outputs,
#     the action cache, failures with their log, bad recipes named by
#     line, escapes, kill -9 during a step, --check;
# (b) the real build-essential closure from the fixture packages, served
#     the same way: a C program compiled under --check, byte-identical,
#     and the same bytes from another store in another directory.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nginx.sh"

FIX=${KBUILD_FIXTURES:-/var/cache/kbuild-fixtures}
need_tools dpkg-deb apt-ftparchive gpg busybox
need_sandbox

. "$(dirname "$0")/recipe-env.sh"

# mkdeb OUT NAME [DEPENDS] < FILES: a .deb of busybox and its applets
mkdeb() {
	local d=$T/debsrc/$2
	mkdir -p "$d/DEBIAN" "$d/usr/bin"
	{
		printf 'Package: %s\nVersion: 1.0\nArchitecture: amd64\n' "$2"
		printf 'Maintainer: kbuild tests <tests@kbuild.test>\n'
		[ -n "${3:-}" ] && printf 'Depends: %s\n' "$3"
		printf 'Description: %s for the step tests\n' "$2"
	} >"$d/DEBIAN/control"
	if [ "$2" = bb ]; then
		cp "$(command -v busybox)" "$d/usr/bin/busybox"
		for c in sh cat echo sleep date wget ls mkdir cp head tail rm true false env id \
			hostname touch seq dd wc sort printf grep sed umask pwd; do
			ln -s busybox "$d/usr/bin/$c"
		done
	fi
	dpkg-deb -Zgzip --root-owner-group --build "$d" "$1" >/dev/null
}
mkdir -p "$T/debs"
mkdeb "$T/debs/bb_1.0_amd64.deb" bb
mkdeb "$T/debs/broken_1.0_amd64.deb" broken 'no-such-library (>= 2)'
repo small t "$T/debs"/*.deb
nginx_start "$WWW" || finish

{
	echo 'key "archive" { path = "../keys/archive.asc" }'
	upstream t small t
	echo 'buildroot "bb" { upstreams = ["t"] packages = ["bb"] essential = false }'
	echo 'file "src" { path = "../src" }'
} >"$P/recipes/base.inc"
echo hello >"$P/src/msg.txt"
cd "$P" || finish

# ---- (a) outputs and the action cache ----
cat >recipes/s.recipe <<'EOF'
include "base.inc"
let epoch = "1700000000"
step "one" {
    root = "bb"
    inputs = ["src"]
    script = "cat /inputs/src/msg.txt > /out/copy; mkdir -p /out/d/e; ln -s ../copy /out/d/link; echo made it"
    source_date_epoch = "${epoch}"
}
step "two" {
    root = "bb"
    inputs = ["one"]
    command = ["sh", "-c", "cat /inputs/one/copy /inputs/one/copy > /out/twice"]
    source_date_epoch = 1700000000
}
step "env" {
    root = "bb"
    env = ["GREETING=hi there"]
    script = "env | grep -v ^JOBS= | sort > /out/env; umask > /out/umask; hostname > /out/hostname; id -u > /out/uid; pwd > /out/pwd"
    source_date_epoch = 1700000000
}
EOF
check "kbuild lock pins the buildroot's closure" kb lock s
truth "... the buildroot entry" grep -q '^input buildroot bb$' recipes/s.lock
truth "... and its package, by upstream, path, size and sha256" \
	grep -q '^input package bb/bb$' recipes/s.lock
check "kbuild recipe runs the steps" kb recipe s
err_has "... saying which" "step one: running" "step two: running" "step env: running"
RES=$(cat "$OUT")
check "the result checks out" kb store checkout "$RES" "$T/r1"
same "step one's output" "$(cat "$T/r1/one/copy")" hello
same "... its symlink" "$(readlink "$T/r1/one/d/link")" ../copy
truth "... its empty directory" [ -d "$T/r1/one/d/e" ]
same "step two read step one" "$(cat "$T/r1/two/twice")" "$(printf 'hello\nhello')"
same "the environment is exactly the fixed one plus the recipe's" "$(grep -v '^PWD=\|^SHLVL=' "$T/r1/env/env")" \
	"$(printf '%s\n' 'GREETING=hi there' HOME=/nonexistent LC_ALL=C.UTF-8 \
		PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin SOURCE_DATE_EPOCH=1700000000 TZ=UTC)"
same "umask 022 inside" "$(cat "$T/r1/env/umask")" 0022
same "hostname kbuild" "$(cat "$T/r1/env/hostname")" kbuild
same "uid 0" "$(cat "$T/r1/env/uid")" 0
same "cwd /build" "$(cat "$T/r1/env/pwd")" /build
truth "the log is kept" grep -q "made it" "$KBUILD_STORE/logs/s/one.log"
truth "no work directory is left behind" [ -z "$(ls "$KBUILD_STORE/work" 2>/dev/null)" ]
check "again" kb recipe s
err_has "... nothing to do" "nothing to do"
same "... the same result" "$(cat "$OUT")" "$RES"
sed -i 's/> \/out\/twice"/> \/out\/twice; echo x >> \/out\/twice"/' recipes/s.recipe
check "a changed step after a lock" kb lock s
check "... runs only that step" kb recipe s
err_has "... the others come from the cache" "step one: cached" "step env: cached" "step two: running"
check "fsck after all that" kb store fsck

# ---- failures: nothing stored, the log's tail and path ----
cat >recipes/f.recipe <<'EOF'
include "base.inc"
step "bad" {
    root = "bb"
    script = "echo failing-marker-1; echo out > /out/partial-output-marker; exit 3"
    source_date_epoch = 1
}
EOF
kb lock f >/dev/null 2>&1
before=$(nobjects)
expect_fail 1 "a failing step" kb recipe f
err_has "... names the step, its line and the status" "step 'bad' (recipes/f.recipe:2:1) failed: exit status 3"
err_has "... shows the log's last lines" "last lines of its log" "failing-marker-1"
err_has "... and the full log's path" "full log: $KBUILD_STORE/logs/f/bad.log"
same "... stores nothing" "$(nobjects)" "$before"
truth "... its output is not in the store" [ ! -e "$(objpath "$(sha_str "$(printf 'out\n')")")" ]
if refs_of | grep -q 'recipe/f$'; then fail "... and no ref names it"; else ok "... and no ref names it"; fi

cat >recipes/m.recipe <<'EOF'
include "base.inc"
step "nocmd" {
    root = "bb"
    command = ["gcc", "-o", "/out/x", "x.c"]
    source_date_epoch = 1
}
EOF
kb lock m >/dev/null 2>&1
expect_fail 1 "a command the root does not have" kb recipe m
err_has "... is named with the step and the buildroot" "step 'nocmd' (recipes/m.recipe:2:1)" \
	"'gcc' is not in build root 'bb' (recipes/base.inc:10:1)"

cat >recipes/t.recipe <<'EOF'
include "base.inc"
step "slow" {
    root = "bb"
    script = "sleep 30"
    source_date_epoch = 1
    timeout = 1
}
EOF
kb lock t >/dev/null 2>&1
expect_fail 1 "a step over its time limit" kb recipe t
err_has "... says so" "step 'slow'" "time limit"

cat >recipes/p.recipe <<'EOF'
include "base.inc"
step "talk" {
    root = "bb"
    script = "echo line-1; sleep 1; printf 'line-2 \\033[31mred\\n'; sleep 1.5; echo done > /out/x"
    source_date_epoch = 1
}
EOF
kb lock p >/dev/null 2>&1
KBUILD_PROGRESS_MS=400 check "a step that runs a while" kb recipe p
err_has "... says every interval how long it has run and its log's last line" \
	"step talk: running for 0 s; log: line-1" "step talk: running for 2 s; log: line-2 ?[31mred"

# ---- bad recipes: refused at load, naming the line ----
bad() { # DESC EXPECTED < RECIPE
	cat >recipes/bad.recipe
	expect_fail 1 "$1" kb lock bad
	err_has "... $2" "$2"
}
bad "an undeclared input" "recipes/bad.recipe:2:56: step 'x' reads input 'sr', which is not declared; did you mean 'src'?" <<'EOF'
include "base.inc"
step "x" { root = "bb" source_date_epoch = 1 inputs = ["sr"] script = "true" }
EOF
bad "a root that is not a buildroot" "step 'x': root 'src' is not a buildroot" <<'EOF'
include "base.inc"
step "x" { root = "src" source_date_epoch = 1 script = "true" }
EOF
bad "a buildroot as an input" "'bb' is a buildroot; name it as root" <<'EOF'
include "base.inc"
step "x" { root = "bb" inputs = ["bb"] source_date_epoch = 1 script = "true" }
EOF
bad "steps in a cycle" "steps read each other in a cycle: a -> b -> a" <<'EOF'
include "base.inc"
step "a" { root = "bb" inputs = ["b"] source_date_epoch = 1 script = "true" }
step "b" { root = "bb" inputs = ["a"] source_date_epoch = 1 script = "true" }
EOF
bad "neither command nor script" "needs either command" <<'EOF'
include "base.inc"
step "x" { root = "bb" source_date_epoch = 1 }
EOF
bad "no source_date_epoch" "step 'x' needs source_date_epoch = 1700000000" <<'EOF'
include "base.inc"
step "x" { root = "bb" script = "true" }
EOF
bad "a step named like an input" "'src' is already defined at recipes/base.inc" <<'EOF'
include "base.inc"
step "src" { root = "bb" source_date_epoch = 1 script = "true" }
EOF
bad "a closure that does not install" "buildroot 'br' (recipes/bad.recipe:2:1)" <<'EOF'
include "base.inc"
buildroot "br" { upstreams = ["t"] packages = ["broken"] essential = false }
EOF
err_has "... with libsolv's reason" "no-such-library"
bad "a package the upstream lacks" "no package named 'no-such-pkg'" <<'EOF'
include "base.inc"
buildroot "br" { upstreams = ["t"] packages = ["no-such-pkg"] essential = false }
EOF
truth "no lock was written for the bad recipes" [ ! -e recipes/bad.lock ]

# ---- escapes: the network, host files, writing outside /out, processes ----
echo "host secret" >"$T/secret"
cat >recipes/e.recipe <<EOF
include "base.inc"
step "escape" {
    root = "bb"
    inputs = ["src"]
    script = "wget -q -T 2 -O /out/got $NGX_URL/small/dists/t/Release 2>/dev/null || echo unreachable > /out/net; cat $T/secret > /out/secret 2>/dev/null || echo absent > /out/read; echo x > /inputs/src/new 2>/dev/null || echo refused > /out/write-input; echo x > /etc/new 2>/dev/null || echo refused > /out/write-root; (exec sleep 4242) & echo started"
    source_date_epoch = 1
}
EOF
kb lock e >/dev/null 2>&1
check "a step that tries to escape" kb recipe e
rm -rf "$T/r2"
kb store checkout "$(cat "$OUT")" "$T/r2" >/dev/null 2>&1
truth "... cannot reach the host's 127.0.0.1" [ -e "$T/r2/escape/net" ] && [ ! -s "$T/r2/escape/got" ]
truth "... cannot read a host file" [ -e "$T/r2/escape/read" ] && [ ! -s "$T/r2/escape/secret" ]
truth "... cannot write into its inputs" [ -e "$T/r2/escape/write-input" ] && [ ! -e "$P/src/new" ]
truth "... nor into its root" [ -e "$T/r2/escape/write-root" ]
truth "... leaves no process behind" sh -c '! pgrep -x -f "sleep 4242" >/dev/null'

# ---- kill -9 during a step ----
cat >recipes/k.recipe <<'EOF'
include "base.inc"
step "long" {
    root = "bb"
    script = "echo kill-marker-42 > /out/partial; echo started; sleep 6173"
    source_date_epoch = 1
}
EOF
kb lock k >/dev/null 2>&1
"$KBUILD" recipe k >"$T/k.out" 2>"$T/k.err" &
kpid=$!
bg_track $kpid
for _ in $(seq 100); do
	grep -q started "$KBUILD_STORE/logs/k/long.log" 2>/dev/null && break
	sleep 0.1
done
kill -9 $kpid
wait $kpid 2>/dev/null
for _ in $(seq 30); do pgrep -x -f "sleep 6173" >/dev/null || break; sleep 0.1; done
truth "kill -9 during a step: its processes die with kbuild" sh -c '! pgrep -x -f "sleep 6173" >/dev/null'
truth "... its partial output is not in the store" \
	[ ! -e "$(objpath "$(sha_str "$(printf 'kill-marker-42\n')")")" ]
check "... fsck is clean" kb store fsck
sed -i 's/sleep 6173/true/' recipes/k.recipe
kb lock k >/dev/null 2>&1
check "... the next run starts the step cleanly" kb recipe k
err_has "... running it" "step long: running"
truth "... and the killed run's work directory is gone" \
	[ -z "$(ls "$KBUILD_STORE/work" 2>/dev/null)" ]

# ---- --check ----
check "--check on reproducible steps" kb recipe --check s
err_has "... says so" "step one: reproducible" "step two: reproducible"
cat >recipes/nr.recipe <<'EOF'
include "base.inc"
step "jobs" {
    root = "bb"
    script = "mkdir -p /out/a; echo same > /out/a/same; echo $JOBS > /out/a/jobs"
    source_date_epoch = 1
}
step "clock" {
    root = "bb"
    script = "date +%s > /out/when"
    source_date_epoch = 1
}
EOF
kb lock nr >/dev/null 2>&1
expect_fail 1 "--check finds a step that depends on \$JOBS" kb recipe --check nr
err_has "... naming the first difference" "step 'jobs' (recipes/nr.recipe:2:1) is not reproducible: a/jobs differs from byte 0 on"
err_has "... and keeping both outputs" "check/nr/jobs/first" "check/nr/jobs/second"
sed -i 's/echo $JOBS > \/out\/a\/jobs/true/' recipes/nr.recipe
kb lock nr >/dev/null 2>&1
expect_fail 1 "--check finds a step that reads the clock" kb recipe --check nr
err_has "... naming it" "step 'clock' (recipes/nr.recipe:7:1) is not reproducible: when differs"

# ---- (b) the real build-essential closure ----
if [ ! -e "$FIX/debs/.complete" ]; then
	ok "skipped: no fixture packages in $FIX/debs (run .ci/fixtures)"
	finish
fi
# the boot fixture (a kernel image, busybox, GRUB) joins the repository when present
BOOT=()
[ -e "$FIX/boot/KVER" ] && BOOT=("$FIX"/boot/*.deb)
repo fx bookworm "$FIX"/debs/*.deb "${BOOT[@]}"
cat >"$P/src/hello.c" <<'EOF'
#include <stdio.h>
int main(void) { printf("hello from %s %s\n", __DATE__, __TIME__); return 0; }
EOF
{
	echo 'key "archive" { path = "../keys/archive.asc" }'
	upstream fx fx bookworm
	echo 'file "src" { path = "../src" }'
	cat <<'EOF'
buildroot "build-essential" { upstreams = ["fx"] packages = ["build-essential"] }
step "hello" {
    root = "build-essential"
    inputs = ["src"]
    script = "gcc -O2 -g -o /out/hello /inputs/src/hello.c && /out/hello > /out/said"
    source_date_epoch = 1700000000
}
EOF
} >recipes/c.recipe
check "the build-essential closure locks" kb lock c
diag "$(grep -c '^input package build-essential/' recipes/c.lock) packages locked"
truth "... with gcc-12, libc6-dev and the Essential set (bash, coreutils)" \
	grep -q '^input package build-essential/gcc-12$' recipes/c.lock &&
	grep -q '^input package build-essential/libc6-dev$' recipes/c.lock &&
	grep -q '^input package build-essential/coreutils$' recipes/c.lock
check "a C program compiles under --check" kb recipe --check c
err_has "... byte-identical both times" "step hello: reproducible"
rm -rf "$T/r3"
kb store checkout "$(cat "$OUT")" "$T/r3" >/dev/null 2>&1
same "... it ran in the root, with __DATE__ from SOURCE_DATE_EPOCH" "$(cat "$T/r3/hello/said")" \
	"hello from Nov 14 2023 22:13:20"
H1=$(sha "$T/r3/hello/hello")
# another store, in another directory, at another time, with -j1
mkdir -p "$T/elsewhere/deeper"
check "... and from another store in another directory" \
	kb --store "$T/elsewhere/deeper/store" recipe --jobs 1 c
rm -rf "$T/r4"
kb --store "$T/elsewhere/deeper/store" store checkout "$(cat "$OUT")" "$T/r4" >/dev/null 2>&1
same "... gives the same bytes" "$(sha "$T/r4/hello/hello")" "$H1"

# ---- (c) a kernel module: built for one exact kernel, signed, packaged ----
KVER=$(ls "$FIX"/debs/linux-headers-*-amd64_*.deb 2>/dev/null |
	sed -n 's|.*/linux-headers-\([0-9][^_]*-amd64\)_.*|\1|p' | head -n1)
if [ -z "$KVER" ] || ! command -v modinfo >/dev/null; then
	ok "skipped: no kernel headers in the fixtures, or no modinfo"
	finish
fi
export KBUILD_KEYS=$T/keys
{
	module_recipe "$KVER"
	echo "rpm \"hello-rpm\" { tree = \"hello-signed\" name = \"hello\" version = \"1.0\" release = \"1\" kmod = \"\${kver}\" license = \"GPL\" summary = \"hello module\" source_date_epoch = 1700000000 }"
} >recipes/m.recipe
check "a module recipe locks (build-essential plus the headers of $KVER)" kb lock m
check "it builds, signs and packages" kb recipe --check m
err_has "... making the signing key on first use, saying where and how to enroll it" \
	"made the module signing key 'mok' in $T/keys" "mokutil --import $T/keys/mok.der"
err_has "... checking the module's vermagic" "1 module, each for kernel $KVER"
err_has "... and the module build is reproducible" "step hello-ko: reproducible"
same "the private key is 0600" "$(stat -c %a "$T/keys/mok.key")" 600
keyline=$(sed -n 2p "$T/keys/mok.key")
truth "... and its bytes are nowhere in the store" sh -c "! grep -rqF -- '$keyline' '$KBUILD_STORE/objects'"
rm -rf "$T/m1"
kb store checkout "$(cat "$OUT")" "$T/m1" >/dev/null 2>&1
KO=$T/m1/hello-signed/lib/modules/$KVER/updates/hello.ko
run modinfo "$KO"
out_has "modinfo: vermagic is the kernel's" "vermagic:       $KVER "
out_has "... signed by the key, with sha256" "signer:         kbuild module signing key mok" "sig_hashalgo:   sha256"
same_file "the certificate ships in the tree, as DER" "$T/m1/hello-signed/usr/share/kbuild/mok.der" "$T/keys/mok.der"
DEB=$(ls "$T"/m1/hello-deb/*.deb)
same "the .deb follows Debian's conventions" "$(dpkg-deb -f "$DEB" Package Depends | tr '\n' ' ')" \
	"Package: hello-modules-$KVER Depends: linux-image-$KVER "
truth "... holds the signed module" sh -c "dpkg-deb -c '$DEB' | grep -q 'lib/modules/$KVER/updates/hello.ko'"
RPM=$(ls "$T"/m1/hello-rpm/*.rpm)
run rpm -qp --requires "$RPM"
out_has "the .rpm follows EL's kmod conventions" "kernel-uname-r = $KVER"
check "again: nothing to do" kb recipe m
err_has "... says so" "nothing to do"

# the packages, plus a locked closure, as signed darksites
cat >>recipes/m.recipe <<'EOF'
buildroot "closure" { upstreams = ["fx"] packages = ["make"] essential = false }
darksite "site" { packages = ["hello-deb", "closure"] key = "archive-key" source_date_epoch = 1700000000 }
darksite "site-rpm" { packages = ["hello-rpm"] key = "archive-key" source_date_epoch = 1700000000 }
EOF
check "darksites lock and build" sh -c "'$KBUILD' lock m && '$KBUILD' recipe m"
err_has "... making the OpenPGP key on first use" "made the OpenPGP key 'archive-key'"
err_has "... the module package and the closure of make" "apt darksite of"
rm -rf "$T/m2"
kb store checkout "$(tail -n1 "$OUT")" "$T/m2" >/dev/null 2>&1
check "InRelease verifies with the exported key (gpgv)" \
	gpgv --keyring "$T/m2/site/archive-key.gpg" "$T/m2/site/dists/stable/InRelease"
truth "Packages lists the module package and make's closure" \
	grep -q "^Package: hello-modules-$KVER\$" "$T/m2/site/dists/stable/main/binary-amd64/Packages"
truth "... make and libc6" sh -c "grep -q '^Package: make\$' '$T/m2/site/dists/stable/main/binary-amd64/Packages' && grep -q '^Package: libc6\$' '$T/m2/site/dists/stable/main/binary-amd64/Packages'"
check "repomd.xml.asc verifies (gpgv)" gpgv --keyring "$T/m2/site-rpm/archive-key.gpg" \
	"$T/m2/site-rpm/repodata/repomd.xml.asc" "$T/m2/site-rpm/repodata/repomd.xml"
truth "the secret key is nowhere in the darksite" sh -c "! grep -rq 'PRIVATE KEY' '$T/m2/site' '$T/m2/site-rpm'"

# the EL side with an rpm-md stand-in for Rocky's BaseOS (the rocky9-zfs
# shape): a signed kmod RPM and a dnf darksite with the kernel it needs,
# installed by dnf with both signature checks on (t-rocky.sh runs
# rocky9-zfs's own definition, build root and all)
if command -v dnf >/dev/null && command -v createrepo_c >/dev/null; then
	mkdir -p "$WWW/el/Packages" "$T/standin"
	gpg --batch --armor --export-secret-keys archive@kbuild.test >"$T/archive.sec.asc" 2>/dev/null
	# standin NAME PROVIDES FILE SOURCE: a signed stand-in package made by
	# kbuild's own rpm writer (rpmbuild refuses Debian's kernel release as
	# a version: it has two '-')
	standin() {
		mkdir -p "$T/standin/$1/$(dirname "$3")"
		cp "$4" "$T/standin/$1/$3"
		local tree
		tree=$("$KBUILD" -q store add "$T/standin/$1") &&
			SOURCE_DATE_EPOCH=$(date +%s) "$KBUILD" -q package rpm --name "$1" --version 1 \
				--release 1 --arch noarch --license MIT --summary "stand-in for Rocky's $1" \
				--provides "$2" --sign-key "$T/archive.sec.asc" \
				-o "$WWW/el/Packages/$1-1-1.noarch.rpm" "$tree" >>"$T/rpmbuild.log" 2>&1
	}
	echo vmlinuz >"$T/vmlinuz"
	if standin kernel-core "kernel-uname-r = $KVER" "boot/vmlinuz-$KVER" "$T/vmlinuz" &&
		standin bash "/bin/sh" bin/sh "$(command -v busybox)" &&
		createrepo_c -q "$WWW/el" >>"$T/rpmbuild.log" 2>&1 &&
		gpg --batch --yes --armor --detach-sign -o "$WWW/el/repodata/repomd.xml.asc" "$WWW/el/repodata/repomd.xml" 2>>"$T/rpmbuild.log"; then
		ok "a signed rpm-md stand-in repository (kbuild package rpm, createrepo_c, gpg)"
	else
		fail "making the rpm-md stand-in repository"
		diag_file "$T/rpmbuild.log"
	fi
	{
		echo "upstream \"el\" { type = \"rpm-md\" url = \"$NGX_URL/el\" architectures = [\"x86_64\", \"noarch\"] keyring = \"archive\" }"
		echo 'buildroot "el-kernel" { upstreams = ["el"] packages = ["kernel-core", "bash"] }'
		echo "rpm \"kmod-hello\" { tree = \"hello-signed\" name = \"hello\" version = \"1.0\" release = \"1\" kmod = \"\${kver}\" license = \"GPL\" summary = \"hello module\" key = \"archive-key\" source_date_epoch = 1700000000 }"
		echo 'darksite "el-site" { packages = ["kmod-hello", "el-kernel"] key = "archive-key" source_date_epoch = 1700000000 }'
	} >>recipes/m.recipe
	check "the EL shape locks and builds" sh -c "'$KBUILD' lock m && '$KBUILD' recipe m"
	rm -rf "$T/m4"
	kb store checkout "$(tail -n1 "$OUT")" "$T/m4" >/dev/null 2>&1
	ELS=$T/m4/el-site
	RPM=$(ls "$T"/m4/kmod-hello/*.rpm)
	rpm --dbpath "$T/rpmkeys" --import "$ELS/archive-key.asc" >/dev/null 2>&1
	run rpm --dbpath "$T/rpmkeys" -K "$RPM"
	out_has "the kmod RPM is signed (rpm -K with the darksite's key)" "digests signatures OK"
	DR=$T/dnf-el
	mkdir -p "$DR" "$T/dnfcache" "$T/dnflog"
	run dnf -y --installroot="$DR" --releasever=9 --setopt=reposdir=/dev/null \
		--setopt=cachedir="$T/dnfcache" --setopt=logdir="$T/dnflog" \
		--repofrompath=site,"file://$ELS" --setopt=site.gpgcheck=1 --setopt=site.repo_gpgcheck=1 \
		--setopt=site.gpgkey="file://$ELS/archive-key.asc,file://$P/keys/archive.asc" --setopt=skip_if_unavailable=False \
		install kmod-hello
	same "dnf installs kmod-hello from the darksite, signatures checked" "$RC" 0 || diag_file "$ERR"
	truth "... with its module in place" test -f "$DR/lib/modules/$KVER/extra/hello.ko" -o -n "$(find "$DR/lib/modules/$KVER" -name hello.ko 2>/dev/null)"
	truth "... and the kernel it requires" test -f "$DR/boot/vmlinuz-$KVER"
else
	ok "skipped: dnf or createrepo_c missing for the EL shape"
fi
sed -i 's/^    kernel = .*/    kernel = "6.1.0-1-amd64"/' recipes/m.recipe
kb lock m >/dev/null 2>&1
expect_fail 1 "headers for another kernel release are refused before compiling" kb recipe m
err_has "... naming the step and what the root has" "step 'hello-ko' (recipes/m.recipe:" \
	"has no headers for kernel 6.1.0-1-amd64 (it has $KVER)"
truth "... nothing ran" sh -c "! grep -q 'step hello-ko: running' '$ERR'"
# ---- (d) a bootable ISO of it all, booted ----
if [ ${#BOOT[@]} -eq 0 ]; then
	ok "skipped: no boot fixture in $FIX/boot (run .ci/fixtures)"
	finish
fi
sed -i 's/^    kernel = .*/    kernel = "${kver}"/' recipes/m.recipe
{
	echo 'package "kernel" { upstream = "fx" name = "linux-image-${kver}" }'
	echo 'package "busybox" { upstream = "fx" name = "busybox-static" }'
	echo 'buildroot "grub" { upstreams = ["fx"] packages = ["grub-common", "grub-pc-bin", "grub-efi-amd64-bin", "shim-signed", "grub-efi-amd64-signed"] essential = false }'
	echo 'iso "image" { kernel = "kernel" busybox = "busybox" grub = "grub" modules = "hello-signed" load = ["hello"] darksite = "site" secure_boot = true source_date_epoch = 1700000000 }'
} >>recipes/m.recipe
check "an ISO recipe locks and builds" sh -c "'$KBUILD' lock m && '$KBUILD' recipe m"
err_has "... writing the image" "step image: image.iso written"
rm -rf "$T/m3"
kb store checkout "$(tail -n1 "$OUT")" "$T/m3" >/dev/null 2>&1
ISO=$T/m3/image/image.iso
run xorriso -indev "$ISO" -report_el_torito plain
out_has "it boots by BIOS and UEFI" "El Torito boot img :   1  BIOS" "El Torito boot img :   2  UEFI"
check "the darksite is on it" sh -c "xorriso -indev '$ISO' -find /darksite/dists/stable -name InRelease 2>/dev/null | grep -q InRelease"
boot_iso "$ISO"
boot_iso_sb "$ISO" "$T/keys/mok.der"
finish
