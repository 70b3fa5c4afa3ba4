#!/usr/bin/env bash
# kbuild package deb|rpm: packages in the vendor's format from a store
# tree, checked with the vendor's own tools (dpkg-deb, dpkg, rpm,
# rpm2cpio, rpmsign): metadata, owners, modes, times, order, digests,
# installation (maintainer scripts run for the .deb), bit-reproducibility
# across cwd/TZ/umask/locale/store path, and bad input.
. "$(dirname "$0")/lib.sh"

EPOCH=1700000000
KVER=6.1.0-56-amd64
export SOURCE_DATE_EPOCH=$EPOCH

# as root, or as root of a user namespace (dpkg chroots for scripts)
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else unshare -r "$@"; fi; }

# ---- the payload ----
P=$T/payload
mkdir -p "$P/lib/modules/$KVER/updates" "$P/usr/bin" "$P/usr/share/doc/hello" "$P/etc/a/b" "$P/etc/a-b"
printf 'not really a module\n' >"$P/lib/modules/$KVER/updates/hello.ko"
printf '#!/bin/sh\necho hello\n' >"$P/usr/bin/hello"
chmod 755 "$P/usr/bin/hello"
ln -s hello "$P/usr/bin/hi"
ln -s /usr/bin/hello "$P/usr/bin/abs"
ln -s ../../../usr/bin/hello "$P/usr/share/doc/hello/up"
printf 'read me\n' >"$P/usr/share/doc/hello/README"
printf 'spaces\n' >"$P/usr/share/doc/hello/with space"
: >"$P/usr/share/doc/hello/empty"
printf 'x\n' >"$P/etc/a/b/f"
printf 'y\n' >"$P/etc/a-b/g"
head -c 200000 /dev/urandom >"$P/usr/share/doc/hello/big"
check "store add the payload" kb store add "$P"
TREE=$(cat "$OUT")

DESC=$'First paragraph line.\n\n  an indented line\nlast line'
deb_args=(--name hello --version 1.0 --release 2 --arch amd64
	--maintainer 'Kay Build <kb@example.org>' --summary 'hello modules for testing'
	--description "$DESC" --depends 'libc6 (>= 2.36)' --conflicts 'hello-old'
	--kmod "$KVER")

# ======================= .deb =======================
D=$T/deb
mkdir -p "$D"
check "package deb" kb package deb "${deb_args[@]}" -o "$D/h.deb" "$TREE"
DEBHASH=$(cat "$OUT")
truth "package deb prints the blob's hash" is_hash "$DEBHASH"
same "the file is the blob" "$(sha "$D/h.deb")" "$DEBHASH"
truth "the blob is in the store" test -e "$(objpath "$DEBHASH")"
same "file mode 0644 whatever the umask" "$(stat -c %a "$D/h.deb")" 644

same "ar members in dpkg's order" "$(ar t "$D/h.deb" | tr '\n' ' ')" \
	"debian-binary control.tar.xz data.tar.xz "
ar_hdr=$(head -c 68 "$D/h.deb" | tail -c 60)
same "ar header: mtime epoch, 0/0, 100644" "$ar_hdr" \
	"$(printf '%-16s%-12s%-6s%-6s%-8s%-10s`\n' debian-binary $EPOCH 0 0 100644 4)"
check "dpkg-deb --info" dpkg-deb --info "$D/h.deb"
field() { dpkg-deb --field "$D/h.deb" "$1"; }
same "Package (kmod name)" "$(field Package)" "hello-modules-$KVER"
same "Version" "$(field Version)" "1.0-2"
same "Architecture" "$(field Architecture)" amd64
same "Maintainer" "$(field Maintainer)" 'Kay Build <kb@example.org>'
same "Depends (given + kernel)" "$(field Depends)" "libc6 (>= 2.36), linux-image-$KVER"
same "Provides" "$(field Provides)" "hello-modules"
same "Conflicts" "$(field Conflicts)" "hello-old"
same "Section (kmod default)" "$(field Section)" kernel
same "Priority" "$(field Priority)" optional
same "Description (multi-line formatting)" "$(field Description)" \
	"$(printf 'hello modules for testing\n First paragraph line.\n .\n   an indented line\n last line')"
same "Installed-Size (dpkg-gencontrol's estimate)" "$(field Installed-Size)" \
	"$(python3 - "$P" <<'EOF'
import os, sys
n = 0
for dp, dns, fns in os.walk(sys.argv[1]):
    n += 1
    for f in fns:
        p = os.path.join(dp, f)
        n += 1 if os.path.islink(p) else (os.path.getsize(p) + 1023) // 1024
print(n)
EOF
)"
ar p "$D/h.deb" control.tar.xz | xz -d | tar tv --full-time --utc >"$D/control.lst"
same "control.tar: entries, modes, owners" "$(awk '{print $1, $2, $NF}' "$D/control.lst" | tr '\n' ';')" \
	"drwxr-xr-x root/root ./;-rw-r--r-- root/root ./control;-rw-r--r-- root/root ./md5sums;-rwxr-xr-x root/root ./postinst;-rwxr-xr-x root/root ./postrm;"
ar p "$D/h.deb" control.tar.xz | xz -d | tar xO ./postinst >"$D/postinst"
truth "postinst runs depmod for the kernel, guarded" grep -q "depmod -a -F /boot/System.map-$KVER $KVER" "$D/postinst"
ar p "$D/h.deb" data.tar.xz | xz -d | tar tv --full-time --utc >"$D/data.lst"
same "data.tar: every entry root/root" "$(awk '{print $2}' "$D/data.lst" | sort -u)" root/root
same "data.tar: every time is the epoch" "$(awk '{print $4 " " $5}' "$D/data.lst" | sort -u)" \
	"$(date -u -d @$EPOCH '+%Y-%m-%d %H:%M:%S')"
same "data.tar: modes" "$(grep -E ' ./usr/bin/(hello|hi -> hello)$| ./etc/a/b/f$| ./usr/$' "$D/data.lst" | awk '{print $1}' | tr '\n' ' ')" \
	"-rw-r--r-- drwxr-xr-x -rwxr-xr-x lrwxrwxrwx "
# dpkg-deb's order: depth-first, names in each directory sorted bytewise
want_order=$(cd "$P" && python3 -c '
import os
def walk(d, pre):
    for n in sorted(os.listdir(d or "."), key=os.fsencode):
        p = os.path.join(d, n) if d else n
        full = pre + n
        if os.path.isdir(p) and not os.path.islink(p):
            print("./" + full + "/"); walk(p, full + "/")
        elif os.path.islink(p):
            links.append("./" + full)
        else:
            print("./" + full)
links = []
print("./"); walk("", "")
print("\n".join(links))')
same "data.tar: order (depth-first, sorted, symlinks last)" "$(ar p "$D/h.deb" data.tar.xz | xz -d | tar t)" "$want_order"
truth "xz stream is whole (no padding after it)" sh -c "ar p '$D/h.deb' data.tar.xz | xz -t"

check "dpkg-deb -x" dpkg-deb -x "$D/h.deb" "$D/x"
same_tree "dpkg-deb -x gives the payload back" "$D/x" "$P"

# the same payload and control through dpkg-deb itself: same listing
mkdir -p "$D/ref"
check "checkout for dpkg-deb" kb store checkout --copy "$TREE" "$D/ref/root"
mkdir -p "$D/ref/root/DEBIAN"
ar p "$D/h.deb" control.tar.xz | xz -d | tar x -C "$D/ref/root/DEBIAN" ./control ./postinst ./postrm
check "dpkg-deb -b of the same tree" dpkg-deb --root-owner-group -Zxz -b "$D/ref/root" "$D/ref.deb"
same "data.tar listing equals dpkg-deb's" "$(ar p "$D/h.deb" data.tar.xz | xz -d | tar tv --full-time --utc)" \
	"$(ar p "$D/ref.deb" data.tar.xz | xz -d | tar tv --full-time --utc)"
same "control equals what dpkg-deb packs" "$(dpkg-deb -f "$D/h.deb")" "$(dpkg-deb -f "$D/ref.deb")"
diag "sizes: kbuild $(stat -c %s "$D/h.deb") bytes, dpkg-deb $(stat -c %s "$D/ref.deb") bytes"

# install into a throwaway root: scripts run chrooted; depmod is a fake
R=$T/droot
mkdir -p "$R/bin" "$R/usr/sbin" "$R/boot" "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" \
	"$R/var/lib/dpkg/triggers" "$R/lib/modules/$KVER"
: >"$R/var/lib/dpkg/status"
: >"$R/boot/System.map-$KVER"
cp "$(command -v busybox)" "$R/bin/sh"
printf '#!/bin/sh\necho "$@" >>/depmod.log\n' >"$R/usr/sbin/depmod"
chmod 755 "$R/usr/sbin/depmod"
check "dpkg -i into a throwaway root" as_root env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	dpkg --root="$R" --force-not-root --force-depends --force-bad-path -i "$D/h.deb"
same "postinst ran depmod for the kernel" "$(cat "$R/depmod.log" 2>/dev/null)" "-a -F /boot/System.map-$KVER $KVER"
same "dpkg records it installed" "$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Status} ${Version}' "hello-modules-$KVER")" \
	"install ok installed 1.0-2"
truth "installed files match md5sums" sh -c "cd '$R' && md5sum --quiet -c var/lib/dpkg/info/hello-modules-$KVER.md5sums"
same "installed module content" "$(cat "$R/lib/modules/$KVER/updates/hello.ko")" "not really a module"
same "installed symlink" "$(readlink "$R/usr/bin/hi")" hello
check "dpkg -r runs postrm" as_root env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	dpkg --root="$R" --force-not-root --force-bad-path -r "hello-modules-$KVER"
same "postrm ran depmod too" "$(wc -l <"$R/depmod.log")" 2
truth "removal took the module away" test ! -e "$R/lib/modules/$KVER/updates/hello.ko"

# a plain (non-kmod) package with its own scripts
printf '#!/bin/sh\necho custom\n' >"$D/post"
check "plain deb with a postinst file" kb package deb --name plain-tool --version 2.3~rc1 --epoch 1 \
	--arch all --maintainer 'M <m@example.org>' --summary 'a tool' --postinst "$D/post" \
	--section utils --provides virtual-tool -o "$D/plain.deb" "$TREE"
same "epoch in Version" "$(dpkg-deb -f "$D/plain.deb" Version)" "1:2.3~rc1"
same "no Depends when none given" "$(dpkg-deb -f "$D/plain.deb" Depends)" ""
same "postinst is the given file" "$(ar p "$D/plain.deb" control.tar.xz | xz -d | tar xO ./postinst)" \
	"$(cat "$D/post")"
same "no postrm when none given" "$(ar p "$D/plain.deb" control.tar.xz | xz -d | tar t | grep -c postrm)" 0

# ======================= .rpm =======================
M=$T/rpm
mkdir -p "$M"
rpm_args=(--name hello --version 1.0 --release 1 --arch x86_64 --license MIT
	--packager 'Kay Build <kb@example.org>' --summary 'hello modules for testing'
	--description "$DESC" --depends 'glibc >= 2.34' --conflicts 'hello-old < 2'
	--provides 'hello-api = 3' --kmod "$KVER")
check "package rpm" kb package rpm "${rpm_args[@]}" -o "$M/h.rpm" "$TREE"
RPMHASH=$(cat "$OUT")
same "the file is the blob" "$(sha "$M/h.rpm")" "$RPMHASH"
check "rpm -qpi" rpm -qpi "$M/h.rpm"
out_has "rpm -qpi: name, version, license, summary" "Name        : kmod-hello" "Version     : 1.0" \
	"Release     : 1" "License     : MIT" "Build Host  : kbuild" "Summary     : hello modules for testing" \
	"Source RPM  : kmod-hello-1.0-1.src.rpm" "Signature   : (none)"
q() { rpm -qp --qf "$1" "$M/h.rpm"; }
same "BUILDTIME is the epoch" "$(q '%{BUILDTIME}')" $EPOCH
same "ARCH, OS" "$(q '%{ARCH} %{OS}')" "x86_64 linux"
same "DESCRIPTION" "$(q '%{DESCRIPTION}')" "$DESC"
same "requires (given, kernel, scriptlets, rpmlib; sorted)" "$(rpm -qp --requires "$M/h.rpm" | tr '\n' ';')" \
	"/bin/sh;/bin/sh;glibc >= 2.34;kernel-uname-r = $KVER;rpmlib(CompressedFileNames) <= 3.0.4-1;rpmlib(FileDigests) <= 4.6.0-1;rpmlib(PayloadFilesHavePrefix) <= 4.0-1;rpmlib(PayloadIsZstd) <= 5.4.18-1;"
same "requires' sense flags (interp+post, interp+postun, rpmlib)" \
	"$(q '[%{REQUIRENAME} %{REQUIREFLAGS}\n]' | grep -E '^(/bin/sh|rpmlib\(FileDigests\))' | tr '\n' ';')" \
	"/bin/sh 1280;/bin/sh 4352;rpmlib(FileDigests) 16777226;"
same "provides (EVR, ISA, kmod(), given)" "$(rpm -qp --provides "$M/h.rpm" | tr '\n' ';')" \
	"hello-api = 3;kmod(hello.ko);kmod-hello = 1.0-1;kmod-hello(x86-64) = 1.0-1;"
same "conflicts" "$(rpm -qp --conflicts "$M/h.rpm")" "hello-old < 2"
check "rpm -qp --scripts" rpm -qp --scripts "$M/h.rpm"
out_has "scriptlets run depmod with /bin/sh" "postinstall scriptlet (using /bin/sh)" \
	"postuninstall scriptlet (using /bin/sh)" "depmod -a -F /boot/System.map-$KVER $KVER"
same "every file root/root at the epoch" "$(q '[%{FILEUSERNAME}:%{FILEGROUPNAME}:%{FILEMTIMES}\n]' | sort -u)" \
	"root:root:$EPOCH"
same "modes" "$(q '[%{FILEMODES:octal} %{FILENAMES}\n]' | grep -E ' /usr/bin/(hello|hi)$| /etc/a/b/f$| /etc/a$' | tr '\n' ';')" \
	"40755 /etc/a;100644 /etc/a/b/f;100755 /usr/bin/hello;120777 /usr/bin/hi;"
same "symlink target" "$(q '[%{FILELINKTOS} %{FILENAMES}\n]' | grep ' /usr/share/doc/hello/up$')" \
	"../../../usr/bin/hello /usr/share/doc/hello/up"
same "file digest is the content's sha256" "$(q '[%{FILEDIGESTS} %{FILENAMES}\n]' | grep hello.ko)" \
	"$(sha "$P/lib/modules/$KVER/updates/hello.ko") /lib/modules/$KVER/updates/hello.ko"
same "FILEDIGESTALGO sha256" "$(q '%{FILEDIGESTALGO}')" 8
rpm -qpl "$M/h.rpm" >"$M/files"
truth "owns its own directories" grep -qx "/lib/modules/$KVER/updates" "$M/files"
truth "leaves the system's directories alone" sh -c "! grep -qxE '/|/lib|/usr|/usr/bin|/lib/modules|/etc' '$M/files'"
same "file list sorted by path" "$(cat "$M/files")" "$(LC_ALL=C sort "$M/files")"
same "rpm2cpio | cpio -t lists the file list with ./" "$(rpm2cpio "$M/h.rpm" | cpio -t --quiet)" \
	"$(sed 's|^/|./|' "$M/files")"
check "rpm -K" rpm -K "$M/h.rpm"
out_has "rpm -K: digests OK" "digests OK"
truth "rpm -K: no signature claimed when unsigned" sh -c "! grep -q signatures '$OUT'"
check "rpm -Kv" rpm -Kv "$M/h.rpm"
out_has "rpm -Kv: every digest checked" "Header SHA256 digest: OK" "Header SHA1 digest: OK" \
	"Payload SHA256 digest: OK" "MD5 digest: OK"
same "PAYLOADCOMPRESSOR/FLAGS/FORMAT" "$(q '%{PAYLOADCOMPRESSOR} %{PAYLOADFLAGS} %{PAYLOADFORMAT}')" "zstd 19 cpio"
same "payload digest is sha256 of the compressed payload" "$(q '%{PAYLOADDIGEST}')" \
	"$(python3 - "$M/h.rpm" <<'PY'
import hashlib, struct, sys
d = open(sys.argv[1], 'rb').read()
def end(off):
    il, dl = struct.unpack('>II', d[off+8:off+16]); return off + 16 + 16*il + dl
o = end(96); o = (o + 7) & ~7; o = end(o)
print(hashlib.sha256(d[o:]).hexdigest())
PY
)"
cp "$M/h.rpm" "$M/bad.rpm"
flip_byte "$M/bad.rpm" $(($(stat -c %s "$M/bad.rpm") - 20))
expect_fail nz "rpm -K catches a flipped payload byte" rpm -K "$M/bad.rpm"

RR=$T/rroot
mkdir -p "$RR"
check "rpm -i into a throwaway root" rpm --root "$RR" --dbpath /var/lib/rpm -i --nodeps --noscripts "$M/h.rpm"
for d in etc lib usr; do
	same_tree "installed /$d equals the payload" "$RR/$d" "$P/$d"
done
same "installed file time is the epoch" "$(stat -c %Y "$RR/lib/modules/$KVER/updates/hello.ko")" $EPOCH
if [ "$(id -u)" = 0 ]; then
	check "rpm -V of the installed package (digests, modes, owners, times)" \
		rpm --root "$RR" --dbpath /var/lib/rpm -V --nodeps kmod-hello
else
	ok "skipped: rpm -V needs root to own the files"
fi

# rpmsign accepts the layout, and rpm -K then reports the signature OK
export GNUPGHOME=$T/gnupg
mkdir -p "$GNUPGHOME" && chmod 700 "$GNUPGHOME"
check "throwaway gpg key (made in 2020: a signature may not predate its key)" gpg --batch --passphrase '' --faked-system-time 20200101T000000 --quick-gen-key 'kbuild test <t@example.org>' rsa2048 sign never
gpg --batch --armor --export t@example.org >"$T/pub.asc"
gpg --batch --armor --export-secret-keys t@example.org >"$T/sec.asc"
cp "$M/h.rpm" "$M/signed.rpm"
check "rpmsign --addsign" rpmsign --define '__gpg /usr/bin/gpg' --define '_gpg_name t@example.org' \
	--define "_gpg_path $GNUPGHOME" --addsign "$M/signed.rpm"
check "import the public key" rpm --dbpath "$T/keydb" --import "$T/pub.asc"
check "rpm -K of the rpmsign-ed package" rpm --dbpath "$T/keydb" -K "$M/signed.rpm"
out_has "rpmsign-ed: digests signatures OK" "digests signatures OK"

# kbuild's own header signature (kb_pgp_sign, from the keys part)
run kb package rpm "${rpm_args[@]}" --sign-key "$T/sec.asc" -o "$M/ksigned.rpm" "$TREE"
if [ "$RC" -ne 0 ] && grep -q "not implemented yet" "$ERR"; then
	ok "skipped: kb_pgp_sign is a stub in this branch ($(head -n1 "$ERR"))"
	truth "a failed signing writes no file" test ! -e "$M/ksigned.rpm"
else
	same "--sign-key: packaged" "$RC" 0 || diag_file "$ERR"
	check "rpm -K of kbuild's signature" rpm --dbpath "$T/keydb" -K "$M/ksigned.rpm"
	out_has "--sign-key: digests signatures OK" "digests signatures OK"
	check "--sign-key again" kb package rpm "${rpm_args[@]}" --sign-key "$T/sec.asc" -o "$M/ksigned2.rpm" "$TREE"
	same_file "signed twice: identical bytes" "$M/ksigned.rpm" "$M/ksigned2.rpm"
fi

# ================= reproducibility =================
cp -a "$KBUILD_STORE" "$T/store-moved"
mkdir -p "$T/cwd1" "$T/cwd2/deeper"
for fmt in deb rpm; do
	if [ $fmt = deb ]; then args=("${deb_args[@]}"); first=$D/h.deb; else args=("${rpm_args[@]}"); first=$M/h.rpm; fi
	(cd "$T/cwd1" && umask 022 && TZ=UTC LC_ALL=C "$KBUILD" package $fmt "${args[@]}" -o "$T/r1.$fmt" "$TREE") >/dev/null 2>&1
	(cd "$T/cwd2/deeper" && umask 077 && TZ=Pacific/Chatham LC_ALL=C.UTF-8 \
		"$KBUILD" --store "$T/store-moved" package $fmt "${args[@]}" -o "$T/r2.$fmt" "$TREE") >/dev/null 2>&1
	truth "$fmt: both builds wrote a package" test -s "$T/r1.$fmt" -a -s "$T/r2.$fmt"
	same_file "$fmt: identical bytes across cwd, TZ, umask, locale, store path" "$T/r1.$fmt" "$T/r2.$fmt"
	same_file "$fmt: identical to the first build" "$T/r1.$fmt" "$first"
	SOURCE_DATE_EPOCH=$((EPOCH + 1)) "$KBUILD" package $fmt "${args[@]}" -o "$T/r3.$fmt" "$TREE" >/dev/null 2>&1
	differ "$fmt: another epoch gives other bytes" "$(sha "$T/r1.$fmt")" "$(sha "$T/r3.$fmt")"
done

# ================= bad input =================
BAD=$T/bad.out
mkdir -p "$T/esc/usr"
ln -s ../../../etc/passwd "$T/esc/usr/x"
ESC=$(kb store add "$T/esc")
mkdir -p "$T/ctl/usr/share"
: >"$T/ctl/usr/share/tab"$'\t'"name"
CTL=$(kb store add "$T/ctl")
BLOB=$(kb store add "$P/usr/bin/hello")
for fmt in deb rpm; do
	if [ $fmt = deb ]; then args=("${deb_args[@]}"); else args=("${rpm_args[@]}"); fi
	expect_fail 1 "$fmt: unknown tree hash" kb package $fmt "${args[@]}" -o "$BAD" "$(sha_str nothing)"
	err_has "$fmt: unknown tree named" "$(sha_str nothing)" "not in the store"
	expect_fail 1 "$fmt: a blob is not a payload tree" kb package $fmt "${args[@]}" -o "$BAD" "$BLOB"
	err_has "$fmt: blob refused, saying what to give" "is a blob, not a tree"
	noname=()
	skip=0
	for a in "${args[@]}"; do
		if [ $skip = 1 ]; then skip=0; continue; fi
		case "$a" in --name|--kmod) skip=1; continue ;; esac
		noname+=("$a")
	done
	expect_fail 2 "$fmt: missing --name" kb package $fmt "${noname[@]}" -o "$BAD" "$TREE"
	err_has "$fmt: missing name named" "--name is required"
	expect_fail 2 "$fmt: missing --version" kb package $fmt --name hello --arch x86_64 --summary s \
		--license MIT --maintainer m -o "$BAD" "$TREE"
	err_has "$fmt: missing version named" "--version is required"
	expect_fail 2 "$fmt: a name with spaces" kb package $fmt "${noname[@]}" --name 'hello world' -o "$BAD" "$TREE"
	err_has "$fmt: bad name named" "name 'hello world' is not"
	expect_fail 1 "$fmt: a symlink climbing above /" kb package $fmt "${noname[@]}" --name hello -o "$BAD" "$ESC"
	err_has "$fmt: escaping link named" "/usr/x" "climbs above '/'"
	expect_fail 1 "$fmt: a name with a tab" kb package $fmt "${noname[@]}" --name hello -o "$BAD" "$CTL"
	err_has "$fmt: ...named, as a control character" "/usr/share/tab" "control character"
	expect_fail 1 "$fmt: --kmod for a kernel the tree has no module for" kb package $fmt "${args[@]}" \
		--kmod 9.9.9-other -o "$BAD" "$TREE"
	err_has "$fmt: missing modules named" "no module (.ko file) below /lib/modules/9.9.9-other/"
	expect_fail 2 "$fmt: no SOURCE_DATE_EPOCH" env -u SOURCE_DATE_EPOCH "$KBUILD" package $fmt "${args[@]}" -o "$BAD" "$TREE"
	err_has "$fmt: says to set SOURCE_DATE_EPOCH" "SOURCE_DATE_EPOCH"
	truth "$fmt: nothing written to OUT on any failure" test ! -e "$BAD"
done
same "no temporary output left behind" "$(ls "$T" | grep -c 'bad.out.tmp')" 0
check "help package" kb help package
out_has "help names both formats and --kmod" "deb|rpm" "--kmod KVER" "--sign-key FILE"

finish
