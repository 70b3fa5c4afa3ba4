#!/usr/bin/env bash
# kbuild initramfs / kbuild iso: a test module built against the fixture
# kernel headers in the sandbox and signed with sign-file and a throwaway
# key; an initramfs with busybox and that module (cpio order, owners,
# times, reproducible); an ISO with Debian 12's kernel (El Torito BIOS and
# UEFI entries, the files, byte-identical from another store, cwd, TZ and
# umask); bad input refused with nothing written; and boots under qemu
# (normal variant only: -kernel/-initrd, the ISO with SeaBIOS, with OVMF,
# with OVMF and Secure Boot, the key enrolled as a MOK or not)
# that must print the init's line naming the module and its signer.
. "$(dirname "$0")/lib.sh"

FIX=${KBUILD_FIXTURES:-/var/cache/kbuild-fixtures}
SRC=$KBUILD_TEST_ROOT/tests/fixtures/iso-module
W=$T/w
mkdir -p "$W"
export SOURCE_DATE_EPOCH=1700000000

check "help names the commands" kb initramfs --help
out_has "... initramfs" "kbuild initramfs assemble"
check "iso --help" kb iso --help
out_has "... iso" "--grub-root TREE"
expect_fail 2 "iso without a kernel is a usage error" kb iso --initramfs x --grub-root y
err_has "... saying what to give" "no kernel"

if [ ! -e "$FIX/boot/.complete" ] || [ ! -e "$FIX/debs/.complete" ]; then
	ok "skipped: no boot/ or debs/ fixture in $FIX (run .ci/fixtures)"
	finish
fi
KVER=$(cat "$FIX/boot/KVER")

# ---- the test module, built and signed in the sandbox ----
mapfile -t DEBS < <(ls "$FIX"/debs/*.deb)
kb -q store add "${DEBS[@]}" >"$W/debs.h"
check "the build root" kb -q buildroot --checkout "$W/root" $(cat "$W/debs.h")
mkdir -p "$W/out" "$W/key" "$W/mods"
cp "$SRC"/* "$W/out/"
check "the module builds against the fixture headers" kb sandbox --root "$W/root" \
	--bind "$SRC:/src" --bind "$W/out:/build:rw" --cwd /build -- \
	make -C "/usr/src/linux-headers-$KVER" M=/build modules
openssl req -new -x509 -newkey rsa:2048 -nodes -keyout "$W/key/key.pem" -out "$W/key/cert.pem" \
	-subj "/CN=kbuild iso test key/" -days 36500 >/dev/null 2>&1
check "sign-file signs it" kb sandbox --root "$W/root" --bind "$W/key:/key" \
	--bind "$W/out:/build:rw" --cwd /build -- \
	"/usr/lib/linux-kbuild-${KVER%.*-*}/scripts/sign-file" sha256 /key/key.pem /key/cert.pem /build/iso_test.ko
if ! [ -e "$W/out/iso_test.ko" ]; then
	fail "no module; nothing else can be tested"
	finish
fi
cp "$W/out/iso_test.ko" "$W/mods/"

# ---- initramfs ----
BB=$(ls "$FIX"/boot/busybox-static_*.deb)
check "initramfs assemble" kb initramfs assemble --busybox "$BB" --modules "$W/mods"
IT=$(cat "$OUT")
truth "... prints a tree hash" is_hash "$IT"
check "its init names the module and its signer" kb store cat "$(kb store ls "$IT" | awk '$3 == "init" { print $2 }')"
out_has "... " "insmod /lib/modules/$KVER/extra/iso_test.ko" 'kbuild iso test key' "poweroff -f"
mkdir -p "$W/laid/lib/modules/$KVER/extra/sub" "$W/laid/usr/share/doc"
cp "$W/mods/iso_test.ko" "$W/laid/lib/modules/$KVER/extra/sub/"
check "a module tree laid out as installed (lib/modules/KVER/...)" \
	kb initramfs assemble --busybox "$BB" --modules "$W/laid"
check "... keeps the module's place" kb store cat "$(kb store ls "$(cat "$OUT")" | awk '$3 == "init" { print $2 }')"
out_has "... " "insmod /lib/modules/$KVER/extra/sub/iso_test.ko"
check "initramfs write" kb initramfs write -o "$W/initrd.img" "$IT"
IH=$(cat "$OUT")
same "the file is the blob" "$(sha "$W/initrd.img")" "$IH"
zstd -dcq "$W/initrd.img" >"$W/initrd.cpio"
(cd "$W" && cpio -it --quiet <initrd.cpio >list) 2>/dev/null
truth "cpio -t lists bin/busybox, init and the module" grep -qx "lib/modules/$KVER/extra/iso_test.ko" "$W/list"
same "cpio -t is sorted" "$(cat "$W/list")" "$(LC_ALL=C sort "$W/list")"
python3 - "$W/initrd.cpio" "$SOURCE_DATE_EPOCH" >"$W/hdrs" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
o = 0
bad = []
inos = []
ents = {}
while True:
    h = d[o:o + 110]
    assert h[:6] == b"070701", h[:6]
    f = [int(h[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
    ino, mode, uid, gid, nlink, mtime, size = f[:7]
    nsz = f[11]
    name = d[o + 110:o + 110 + nsz - 1].decode()
    o = (o + 110 + nsz + 3) & ~3
    o = (o + size + 3) & ~3
    if name == "TRAILER!!!":
        break
    inos.append(ino)
    if uid or gid or mtime != int(sys.argv[2]):
        bad.append(name)
    ents[name] = (mode, nlink)
# a directory's link count is 2 plus its subdirectories, as on a disk
isdir = lambda m: m & 0o170000 == 0o040000
for n, (mode, nlink) in ents.items():
    if isdir(mode):
        sub = sum(1 for k, (m, _) in ents.items() if isdir(m) and k.rpartition("/")[0] == n)
        if nlink != 2 + sub:
            bad.append(n)
print("bad", len(bad), "inos", inos == list(range(1, len(inos) + 1)))
EOF
same "every entry has owner 0, the epoch and its link count, inodes count from 1" "$(cat "$W/hdrs")" "bad 0 inos True"
(cd / && umask 077 && TZ=Asia/Kolkata kb initramfs write "$IT" >"$W/again")
same "written again (other cwd, TZ, umask): the same blob" "$(cat "$W/again")" "$IH"
mkdir -p "$W/nl/dir"$'\n'"x"
check "a tree with a newline in a name" kb store add "$W/nl"
expect_fail 1 "...is refused by initramfs write" kb initramfs write "$(cat "$OUT")"
err_has "...naming the entry" "has a newline in its name"
python3 -c 'import os, sys; os.makedirs(os.path.join(sys.argv[1], *["d"] * 300))' "$W/deep"
check "a tree 300 directories deep" kb store add "$W/deep"
expect_fail 1 "...is refused by initramfs write" kb initramfs write "$(cat "$OUT")"
err_has "...saying how deep it may be" "nested more than 256 levels deep"
echo hi >"$W/hi"
for p in ../etc/x /etc/x a/../b ./x a//b; do
	expect_fail 1 "an entry at '$p' is refused" kb initramfs assemble --busybox "$BB" --add "$p=$W/hi"
	err_has "... as outside the root" "outside the root"
done

# ---- ISO ----
KD=$(ls "$FIX"/boot/linux-image-*.deb)
mapfile -t GDEBS < <(ls "$FIX"/boot/*.deb | grep -v -e linux-image -e busybox)
check "the GRUB build root" kb -q buildroot "${GDEBS[@]}"
GR=$(cat "$OUT")
start=$EPOCHREALTIME
check "kbuild iso" kb iso --kernel "$KD" --initramfs "$IT" --grub-root "$GR" --module iso_test \
	--darksite "$SRC" -o "$W/a.iso"
diag "ISO build: $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s, $(stat -c %s "$W/a.iso") bytes"
ISO=$(cat "$OUT")
same "the file is the blob" "$(sha "$W/a.iso")" "$ISO"
run xorriso -indev "$W/a.iso" -report_el_torito plain
out_has "El Torito: a BIOS and a UEFI boot image" "El Torito boot img :   1  BIOS" "El Torito boot img :   2  UEFI" \
	"/boot/grub/i386-pc/eltorito.img" "/boot/grub/efi.img" "boot-info-table"
run bsdtar tf "$W/a.iso"
out_has "the files" "boot/vmlinuz" "boot/initrd.img" "boot/grub/grub.cfg" "darksite/iso_test.c" "darksite/Kbuild"
mkdir -p "$W/x"
bsdtar xf "$W/a.iso" -C "$W/x" boot/initrd.img boot/grub/grub.cfg boot/grub/efi.img 2>/dev/null
same "the initrd on the ISO is the written initramfs" "$(sha "$W/x/boot/initrd.img")" "$IH"
truth "grub.cfg puts the console on ttyS0" grep -q "console=ttyS0" "$W/x/boot/grub/grub.cfg"
same "the EFI image is FAT12 with the epoch as serial" \
	"$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(64); print(d[54:62].decode(), int.from_bytes(d[39:43],"little"))' "$W/x/boot/grub/efi.img")" \
	"FAT12    $SOURCE_DATE_EPOCH"
# the same inputs in a fresh store, from elsewhere
S2=$T/store2
(cd / && umask 077 && TZ=America/Los_Angeles KBUILD_STORE=$S2 "$KBUILD" -q iso --kernel "$KD" \
	--initramfs "$(KBUILD_STORE=$S2 "$KBUILD" -q initramfs assemble --busybox "$BB" --modules "$W/mods")" \
	--grub-root "$(KBUILD_STORE=$S2 "$KBUILD" -q buildroot "${GDEBS[@]}")" --module iso_test \
	--darksite "$SRC" -o "$W/b.iso") >"$W/b.out" 2>"$W/b.err"
same "another store, cwd, TZ and umask: byte-identical" "$(sha "$W/b.iso" 2>/dev/null)" "$ISO"
diag_file "$W/b.err"
# the same kernel as an EL kernel-core ships it (lib/modules/KVER/vmlinuz, in an .rpm)
KVER_KD=$(dpkg-deb -c "$KD" | sed -n 's|.*\./boot/vmlinuz-||p')
mkdir -p "$W/kcore/lib/modules/$KVER_KD" "$W/kdeb"
dpkg-deb -x "$KD" "$W/kdeb"
cp "$W/kdeb/boot/vmlinuz-$KVER_KD" "$W/kcore/lib/modules/$KVER_KD/vmlinuz"
KT=$(kb -q store add "$W/kcore")
check "an rpm of the kernel, laid out as kernel-core" kb -q package rpm --name kernel-core --version 6.1.0 --arch x86_64 \
	--release 1 --license GPL --summary "kernel-core stand-in" -o "$W/kernel-core.rpm" "$KT"
check "kbuild iso takes the kernel from an .rpm" kb iso --kernel "$W/kernel-core.rpm" --initramfs "$IT" \
	--grub-root "$GR" --module iso_test --darksite "$SRC" -o "$W/c.iso"
same "... the same ISO, byte for byte, as from the .deb" "$(sha "$W/c.iso" 2>/dev/null)" "$ISO"

# Secure Boot: the grub root's signed shim and GRUB boot the ISO under UEFI
check "kbuild iso --secure-boot" kb iso --secure-boot --kernel "$KD" --initramfs "$IT" \
	--grub-root "$GR" --module iso_test -o "$W/sb.iso"
SBISO=$(cat "$OUT")
differ "... another image than without" "$SBISO" "$ISO"
mkdir -p "$W/sbx" "$W/shim"
bsdtar xf "$W/sb.iso" -C "$W/sbx" boot/grub/efi.img 2>/dev/null
for d in "$FIX"/boot/shim-signed_*.deb "$FIX"/boot/shim-helpers-amd64-signed_*.deb \
	"$FIX"/boot/grub-efi-amd64-signed_*.deb; do
	dpkg-deb -x "$d" "$W/shim"
done
run mdir -b -i "$W/sbx/boot/grub/efi.img" ::/EFI/BOOT
same "the EFI image holds shim, GRUB, MokManager and GRUB's config" "$(sort "$OUT")" \
	"$(printf '::/EFI/BOOT/BOOTX64.EFI\n::/EFI/BOOT/GRUB.CFG\n::/EFI/BOOT/GRUBX64.EFI\n::/EFI/BOOT/MMX64.EFI')"
for f in BOOTX64.EFI:usr/lib/shim/shimx64.efi.signed MMX64.EFI:usr/lib/shim/mmx64.efi.signed \
	GRUBX64.EFI:usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed; do
	mcopy -n -i "$W/sbx/boot/grub/efi.img" "::/EFI/BOOT/${f%%:*}" "$W/sbx/${f%%:*}"
	same "... ${f%%:*} is Debian's signed ${f##*/}" "$(sha "$W/sbx/${f%%:*}")" "$(sha "$W/shim/${f#*:}")"
done
mcopy -n -i "$W/sbx/boot/grub/efi.img" ::/EFI/BOOT/GRUB.CFG "$W/sbx/grub.cfg"
truth "... GRUB.CFG finds the ISO by its label" grep -q -- "--label KBUILD" "$W/sbx/grub.cfg"
mapfile -t NOSHIM < <(printf '%s\n' "${GDEBS[@]}" | grep -v -e shim -e grub-efi-amd64-signed)
GR0=$(kb -q buildroot "${NOSHIM[@]}")
rm -f "$W/bad.iso"
expect_fail 1 "--secure-boot with a GRUB root that has no shim is refused" kb iso --secure-boot \
	--kernel "$KD" --initramfs "$IT" --grub-root "$GR0" -o "$W/bad.iso"
err_has "... saying what to add" "usr/lib/shim/shimx64.efi.signed" "add shim-signed and grub-efi-amd64-signed"
truth "... and no ISO written" [ ! -e "$W/bad.iso" ]

# ---- bad input: refused, nothing written ----
refuse() { # DESC MESSAGE ISO-ARGS...
	local desc=$1 msg=$2
	shift 2
	rm -f "$W/bad.iso"
	expect_fail 1 "$desc: refused" kb iso --grub-root "$GR" -o "$W/bad.iso" "$@"
	err_has "... saying why" "$msg"
	truth "... and no ISO written" [ ! -e "$W/bad.iso" ]
}
refuse "a kernel not in the store" "not in the store" --kernel "$(sha_str nothing)" --initramfs "$IT"
refuse "a file that is no package as kernel" "not a .deb" --kernel "$W/hi" --initramfs "$IT"
# a fake arm64 kernel package
P=$W/arm
mkdir -p "$P/DEBIAN" "$P/boot"
printf 'Package: linux-image-6.1.0-56-arm64\nVersion: 1\nArchitecture: arm64\nMaintainer: t <t@example.org>\nDescription: t\n' >"$P/DEBIAN/control"
head -c 4096 /dev/urandom >"$P/boot/vmlinuz-6.1.0-56-arm64"
dpkg-deb --root-owner-group -b "$P" "$W/arm.deb" >/dev/null
refuse "a kernel for another architecture" "architecture arm64" --kernel "$W/arm.deb" --initramfs "$IT"
# an amd64 package whose vmlinuz is not an x86 kernel
sed -i 's/arm64/amd64/g' "$P/DEBIAN/control"
mv "$P/boot/vmlinuz-6.1.0-56-arm64" "$P/boot/vmlinuz-6.1.0-56-amd64"
dpkg-deb --root-owner-group -b "$P" "$W/fake.deb" >/dev/null
refuse "a non-x86 file as the kernel" "not an x86 kernel" --kernel "$W/fake.deb" --initramfs "$IT"
refuse "a missing module" "module zfs is missing" --kernel "$KD" --initramfs "$IT" --module zfs
# a module whose vermagic names another release (the same length)
mkdir -p "$W/badmods"
python3 - "$W/mods/iso_test.ko" "$W/badmods/iso_test.ko" "$KVER" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
k = sys.argv[3].encode()
other = k.replace(b"-56-", b"-99-")
assert len(other) == len(k) and b"vermagic=" + k in d
open(sys.argv[2], "wb").write(d.replace(b"vermagic=" + k, b"vermagic=" + other))
EOF
expect_fail 1 "assembling with --kver and a module for another release is refused" \
	kb initramfs assemble --busybox "$BB" --modules "$W/badmods" --kver "$KVER"
err_has "... naming both releases" "${KVER/-56-/-99-}" "not $KVER"
mkdir -p "$W/badrd/lib/modules/$KVER/extra"
cp "$W/badmods/iso_test.ko" "$W/badrd/lib/modules/$KVER/extra/"
refuse "an initramfs module whose vermagic differs" "was built for kernel ${KVER/-56-/-99-}" --kernel "$KD" --initramfs "$W/badrd"
mkdir -p "$W/missrd/etc"
echo extra/gone.ko >"$W/missrd/etc/kbuild-modules"
refuse "an init that loads a module that is not there" "extra/gone.ko, which is" --kernel "$KD" --initramfs "$W/missrd"

# ---- boots ----
if [ "${KBUILD_VARIANT:-normal}" = asan ]; then
	ok "skipped: the qemu boots run in the normal variant only (they do not run kbuild)"
	finish
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
	ok "skipped: no qemu-system-x86_64"
	finish
fi
boot() { # DESC LOG QEMU-ARGS...
	local desc=$1 log=$2 start=$EPOCHREALTIME
	shift 2
	timeout 180 qemu-system-x86_64 -nographic -serial mon:stdio -no-reboot "$@" </dev/null >"$log" 2>&1
	local rc=$? line
	line=$(grep -a -o 'kbuild-init: modules:.*' "$log" | tr -d '\r')
	diag "$desc: exit $rc after $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s: $line"
	case "$line" in
	*'iso_test(state=live,signer="kbuild iso test key",hash=sha256,'*) ok "$desc: the module is live, signed by the test key" ;;
	*)
		fail "$desc: no init line with the module and its signer (exit $rc)"
		tail -c 2000 "$log" | tr -d '\033' | tail -n 15 | sed 's/^/#   /'
		;;
	esac
}
dpkg-deb --fsys-tarfile "$KD" | tar -x -C "$W" "./boot/vmlinuz-$KVER"
boot "-kernel/-initrd" "$W/boot-k.log" -m 256 -kernel "$W/boot/vmlinuz-$KVER" -initrd "$W/initrd.img" \
	-append "console=ttyS0 panic=-1"
boot "the ISO with SeaBIOS" "$W/boot-bios.log" -m 256 -cdrom "$W/a.iso"
# Debian's GRUB 2.06 reports "out of memory" loading the kernel under
# OVMF with 256 MiB; 512 MiB boots
if [ -r /usr/share/ovmf/OVMF.fd ]; then
	boot "the ISO with OVMF (UEFI)" "$W/boot-efi.log" -m 512 -bios /usr/share/ovmf/OVMF.fd -cdrom "$W/a.iso"
else
	ok "skipped: no /usr/share/ovmf/OVMF.fd"
fi
# Secure Boot on (OVMF with Microsoft's keys): the test key enrolled as a
# MOK makes the module load; without it the kernel refuses the module
if [ -r "$SB_CODE" ] && [ -r "$SB_VARS" ]; then
	openssl x509 -in "$W/key/cert.pem" -outform DER -out "$W/key/cert.der"
	check "an OVMF variable store with the test key as a MOK" ovmf_vars_mok "$W/key/cert.der" "$W/vars-mok.fd"
	cp "$SB_VARS" "$W/vars-none.fd"
	sb_qemu "$W/vars-mok.fd" "$W/sb.iso" "$W/boot-sb.log"
	diag "Secure Boot, the key enrolled: $(grep -a -o 'kbuild-init: modules:.*' "$W/boot-sb.log" | tr -d '\r')"
	truth "Secure Boot on, the key enrolled as a MOK: it boots" grep -aq "secureboot: Secure boot enabled" "$W/boot-sb.log"
	truth "... the kernel took the MOK from shim" grep -aq "Loaded X.509 cert 'kbuild iso test key" "$W/boot-sb.log"
	truth "... and the module's signature verified: live, taint O (not OE)" \
		grep -aq 'iso_test(state=live,signer="kbuild iso test key",hash=sha256,taint=O)' "$W/boot-sb.log"
	sb_qemu "$W/vars-none.fd" "$W/sb.iso" "$W/boot-sb0.log"
	truth "Secure Boot, no key enrolled: the kernel refuses the module" \
		grep -aq "iso_test.ko': Key was rejected by service" "$W/boot-sb0.log"
	truth "... and it is not live" sh -c "! grep -aq 'iso_test(state=live' '$W/boot-sb0.log'"
else
	ok "skipped: no $SB_CODE"
fi
finish
