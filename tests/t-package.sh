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

finish
