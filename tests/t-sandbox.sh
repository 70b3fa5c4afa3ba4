#!/usr/bin/env bash
# kbuild sandbox: a step in namespaces with a busybox build root. What it
# sees (exactly the fixed environment, uid 0, umask 022, its host name, its
# /proc, the working directory), and the escapes that must fail or find
# nothing: the host's 127.0.0.1, host files outside the binds, writes
# outside the output bind, processes left running, the host's environment
# through /proc/1; the time and output limits; a missing command. The host
# (its mounts, host name, the root and the input directory) is unchanged.
# Then the same sandbox without root, through unprivileged user namespaces.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nginx.sh"

BB=$(command -v busybox || true)
[ -n "$BB" ] || { [ -x /bin/busybox ] && BB=/bin/busybox; }
# static: an ELF without a PT_INTERP program header
static_elf() {
	python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:4] == b"\x7fELF" and d[4] == 2
phoff, = struct.unpack_from("<Q", d, 32)
phentsize, phnum = struct.unpack_from("<HH", d, 54)
sys.exit(any(struct.unpack_from("<I", d, phoff + i * phentsize)[0] == 3 for i in range(phnum)))
PY
}
if [ -z "$BB" ] || ! static_elf "$BB" 2>/dev/null; then
	ok "skipped: no static busybox (install busybox-static)"
	finish
fi

# the build root: busybox and its applets, an /etc, an empty /usr
R=$T/root
mkdir -p "$R/bin" "$R/etc" "$R/usr/lib"
cp "$BB" "$R/bin/busybox"
for a in sh cat ls wget sleep echo id hostname env touch mkdir dd head rm mount \
	umount httpd date pwd kill test stat wc; do
	ln -s busybox "$R/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
IN=$T/in OUTD=$T/out
mkdir -p "$IN" "$OUTD"
echo input >"$IN/file"
echo "host secret" >"$T/secret"
export KB_SANDBOX_TEST_SECRET=s3cr3t-from-the-host

mounts_before=$(wc -l </proc/self/mountinfo)
host_before=$(hostname)
root_before=$(listing "$R")
in_before=$(listing "$IN")

sb() { kb sandbox --root "$R" --bind "$IN:/in" --bind "$OUTD:/out:rw" "$@"; }

# ---- what the step sees ----
check "env runs" sb --epoch 1234567890 --env FOO=bar -- env
same "the environment is exactly the fixed one, sorted" "$(cat "$OUT")" \
	"FOO=bar
HOME=/nonexistent
LC_ALL=C.UTF-8
PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
SOURCE_DATE_EPOCH=1234567890
TZ=UTC"
check "--env replaces a default" sb --env TZ=Europe/Paris --env HOME=/build -- env
same "TZ and HOME replaced" "$(grep -E '^(TZ|HOME)=' "$OUT" | tr '\n' ' ')" \
	"HOME=/build TZ=Europe/Paris "

check "the step's identity" sb -- sh -c 'umask; hostname; id -u; id -g; pwd; date +%Z'
same "umask 022, host name kbuild, uid and gid 0, cwd /build, UTC" \
	"$(tr '\n' ' ' <"$OUT")" "0022 kbuild 0 0 /build UTC "
check "--cwd and --hostname" sb --cwd /out --hostname other -- sh -c 'pwd; hostname'
same "cwd /out, host name other" "$(tr '\n' ' ' <"$OUT")" "/out other "

check "/proc lists" sb -- sh -c 'echo /proc/[0-9]*'
same "/proc shows only the step's processes (its init and the shell)" "$(cat "$OUT")" \
	"/proc/1 /proc/2"

check "stdin" sb -- cat <<<"data from the host's stdin"
same "stdin is /dev/null" "$(cat "$OUT")" ""
exec 7>"$T/fd7"
check "descriptors" sb -- ls /proc/self/fd
exec 7>&-
same "only 0, 1, 2 are open (and ls's own directory)" "$(tr '\n' ' ' <"$OUT")" "0 1 2 3 "

run sb -- sh -c 'exit 7'
same "the command's exit status is kbuild's" "$RC" 7
run sb -- sh -c 'kill -TERM $$'
same "a command killed by signal 15 gives 143" "$RC" 143

# ---- network: only its own loopback ----
mkdir -p "$T/www"
echo "from the host" >"$T/www/x"
if nginx_start "$T/www"; then
	truth "the host's server answers on the host" port_up "$NGX_PORT"
	expect_fail nz "a step cannot reach a server on the host's 127.0.0.1" \
		sb -- wget -q -O- "http://127.0.0.1:$NGX_PORT/x"
	truth "... and got nothing of it" test ! -s "$OUT"
	truth "... nor did the request reach it" test ! -s "$NGX_DIR/access.log"
	check "a step's own server on the same port" sb -- sh -c "
		mkdir /tmp/www && echo from the sandbox >/tmp/www/x &&
		httpd -p 127.0.0.1:$NGX_PORT -h /tmp/www && sleep 0.2 &&
		wget -q -O- http://127.0.0.1:$NGX_PORT/x"
	same "127.0.0.1 inside is the sandbox's own loopback" "$(cat "$OUT")" "from the sandbox"
	nginx_stop
fi
expect_fail nz "no route out of the sandbox" sb -- wget -q -O- http://192.0.2.1/

# ---- reading the host ----
expect_fail nz "/etc/shadow of the host is not there" sb -- cat /etc/shadow
expect_fail nz "a host file outside the binds, by its host path, is not there" \
	sb -- cat "$T/secret"
err_has "... not found" "No such file"
expect_fail nz "the host's root is detached" sb -- ls /oldroot
run sb -- sh -c 'cat /proc/1/environ; cat /proc/1/mem; env'
truth "the host's environment is not visible, not even through /proc/1" \
	test "$(grep -c s3cr3t "$OUT" "$ERR" | grep -vc ':0$')" = 0
check "the input is readable" sb -- cat /in/file
same "... with its content" "$(cat "$OUT")" input

# ---- writing ----
expect_fail nz "the root is read-only" sb -- touch /bin/x
err_has "... read-only file system" "Read-only file system"
expect_fail nz "the top level of the root is read-only" sb -- touch /newfile
expect_fail nz "an input is read-only" sb -- touch /in/x
expect_fail nz "an input's file cannot be removed" sb -- rm /in/file
expect_fail nz "an input cannot be remounted writable" \
	sb -- sh -c 'mount -o remount,rw /in; mount -o remount,rw,bind /in; touch /in/x'
expect_fail nz "nor unmounted to reach what is below" sb -- sh -c 'umount /in || umount -l /in'
expect_fail nz "/proc/sys is read-only" sb -- sh -c 'echo x >/proc/sys/kernel/hostname'
expect_fail nz "a step cannot mount a proc of its own" sb -- sh -c 'mkdir /tmp/p && mount -t proc proc /tmp/p'
check "the output is writable" sb -- sh -c 'echo result >/out/r && mkdir /out/d && echo x >/out/d/y'
same "... and the result is on the host" "$(cat "$OUTD/r" "$OUTD/d/y" 2>&1)" "result
x"
probe=kbuild-sandbox-probe-$$-$RANDOM
check "/tmp is writable" sb -- sh -c "echo t >/tmp/$probe && cat /tmp/$probe"
same "... for the step" "$(cat "$OUT")" t
truth "... and leaves nothing on the host" test ! -e "/tmp/$probe" -a ! -e "$T/tmp/$probe"

# ---- nothing survives the step ----
rm -f "$OUTD/marker"
check "a step leaving a daemon and a sleeper behind" sb -- sh -c '
	(while :; do echo x >>/out/marker; sleep 0.2; done) &
	sleep 987654 &
	sleep 0.5; echo started'
sleep 0.5
s1=$(stat -c %s "$OUTD/marker" 2>/dev/null || echo none)
sleep 1
s2=$(stat -c %s "$OUTD/marker" 2>/dev/null || echo none)
differ "the daemon did run" "$s1" none
same "... and is gone: its marker stopped growing" "$s2" "$s1"
truth "no process of the step is left on the host" test -z "$(pgrep -f 'sleep 987654')"

# ---- limits ----
start=$SECONDS
expect_fail 124 "a step past its time limit is killed" sb --timeout 1 -- sleep 31415
err_has "... with an error naming the limit" "time limit of 1 s"
truth "... within a couple of seconds" test $((SECONDS - start)) -le 4
truth "... and so is all it started" test -z "$(pgrep -f 'sleep 31415')"

expect_fail 125 "one file past the output limit stops the step" \
	sb --max-output 1M -- dd if=/dev/zero of=/out/big bs=1024 count=4000
err_has "... with an error naming the limit" "output passed its limit of 1048576 bytes"
truth "... and the file stopped there" test "$(stat -c %s "$OUTD/big")" -le 1048577
rm -f "$OUTD"/big "$OUTD"/f*
start=$SECONDS
expect_fail 125 "many files past the output limit stop the step" \
	sb --max-output 1M --timeout 30 -- sh -c \
	'i=0; while :; do i=$((i+1)); head -c 100000 /dev/zero >/out/f$i; done'
err_has "... with an error naming the limit" "output passed its limit of 1048576 bytes"
truth "... soon (not the time limit)" test $((SECONDS - start)) -le 10
rm -f "$OUTD"/f*
check "output under the limit is fine" sb --max-output 1M -- \
	dd if=/dev/zero of=/out/small bs=1024 count=500
rm -f "$OUTD/small"
run sb --max-output 1M -- sh -c 'head -c 3000000 /dev/zero >/tmp/big 2>/dev/null; echo $?'
differ "/tmp is bounded by the output limit too" "$(cat "$OUT")" 0

# ---- failures to start ----
expect_fail 127 "a missing command" sb -- nosuchcmd arg
err_has "... says it is missing in the build root" "'nosuchcmd' is missing in the build root"
err_lines "... in one line" 1
expect_fail 127 "a missing command by path" sb -- /usr/bin/nosuch
expect_fail 126 "a command that is not executable" sb -- /in/file
err_has "... says it cannot run" "cannot run"
expect_fail 1 "a root that does not exist" kb sandbox --root "$T/nope" -- sh
expect_fail 125 "a mount point the read-only root lacks" \
	kb sandbox --root "$R" --bind "$IN:/usr/src/in" -- true
err_has "... is named" "/usr/src" "the build root lacks it"
expect_fail 2 "a relative bind target" kb sandbox --root "$R" --bind "$IN:in" -- true
expect_fail 2 "no command" kb sandbox --root "$R"
check "help" kb help sandbox
out_has "... shows the usage" "usage: kbuild sandbox --root DIR"

# ---- the host is unchanged ----
same "the host's mounts are unchanged" "$(wc -l </proc/self/mountinfo)" "$mounts_before"
same "the host name is unchanged" "$(hostname)" "$host_before"
same "the root is unchanged" "$(listing "$R")" "$root_before"
same "the input is unchanged" "$(listing "$IN")" "$in_before"

# ---- without root: unprivileged user namespaces ----
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if [ "$(id -u)" != 0 ]; then
	check "unprivileged: a step runs" sb -- id -u
	same "... as uid 0 inside" "$(cat "$OUT")" 0
elif ! command -v setpriv >/dev/null || ! nobody unshare -U true 2>/dev/null; then
	ok "skipped: unprivileged user namespaces are not available here"
else
	# nobody needs to reach the root, the binary and the directories
	chmod 711 "$T"
	chmod -R a+rX "$R" "$IN"
	U=$T/uout
	mkdir -p "$U"
	chown 65534:65534 "$U"
	nsb() { nobody "$KBUILD" sandbox --root "$R" --bind "$IN:/in" --bind "$U:/out:rw" "$@"; }
	check "unprivileged: a step runs" nsb -- sh -c \
		'id -u; echo /proc/[0-9]*; hostname; cat /in/file; echo r >/out/r'
	same "... as uid 0, alone in /proc, with its host name, reading its input" \
		"$(tr '\n' ' ' <"$OUT")" "0 /proc/1 /proc/2 kbuild input "
	same "... its output belongs to the caller on the host" \
		"$(stat -c %u "$U/r" 2>&1)" 65534
	expect_fail nz "unprivileged: an input is read-only" nsb -- touch /in/x
	expect_fail nz "unprivileged: nor can it be remounted writable" \
		nsb -- sh -c 'mount -o remount,rw,bind /in; touch /in/x'
	expect_fail nz "unprivileged: a host file is not there" nsb -- cat "$T/secret"
	expect_fail 124 "unprivileged: the time limit" nsb --timeout 1 -- sleep 27182
	truth "... leaves no process" test -z "$(pgrep -f 'sleep 27182')"
	chmod 700 "$T"
fi

finish
