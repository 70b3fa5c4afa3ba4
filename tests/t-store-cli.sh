#!/usr/bin/env bash
# The command line: help, version, usage errors (exit 2, one line naming
# the problem), unreadable input, and where the store is.
. "$(dirname "$0")/lib.sh"

S=$KBUILD_STORE
mkdir -p "$T/src"
printf 'content\n' >"$T/src/f"
H=$(kb store add --ref main "$T/src")
F=$(sha "$T/src/f")

# ---- help and version ----
check "kbuild --help exits 0" kb --help
out_has "...and prints usage with the store commands" "usage: kbuild" "kbuild store add" "--store DIR"
check "kbuild -h exits 0" kb -h
check "kbuild --version exits 0" kb --version
truth "...and prints 'kbuild VERSION'" grep -qE '^kbuild [0-9]+\.[0-9]+\.[0-9]+$' "$OUT"
check "kbuild help exits 0" kb help
check "kbuild help store add" kb help store add
out_has "...prints its usage" "usage: kbuild store add [--ref NAME] PATH..."
for c in add cat ls checkout ref ac gc fsck export import; do
	check "kbuild help store $c" kb help store "$c"
	out_has "...prints 'usage: kbuild store $c'" "usage: kbuild store $c"
	check "kbuild store $c --help" kb store "$c" --help
	out_has "...prints the same usage" "usage: kbuild store $c"
done
check "kbuild help store" kb help store
out_has "...lists the commands" "kbuild store checkout" "kbuild store import"
check "kbuild store --help" kb store --help
expect_fail 2 "kbuild help frob exits 2" kb help frob
err_has "...naming it" "frob"
expect_fail 2 "kbuild help store frob exits 2" kb help store frob

# ---- usage errors: exit 2, one line, naming the culprit ----
usage_err() { # DESC NAMED CMD...
	local desc=$1 named=$2
	shift 2
	expect_fail 2 "$desc exits 2" "$@"
	err_lines "...with one line on stderr" 1
	[ -n "$named" ] && err_has "...naming '$named'" "$named"
	same "...and nothing on stdout" "$(wc -c <"$OUT")" 0
}
usage_err "kbuild --frob" --frob kb --frob
usage_err "kbuild -x" -x kb -x
usage_err "kbuild store add --frob x" --frob kb store add --frob x
usage_err "kbuild store add x --frob (option after the path)" --frob kb store add "$T/src" --frob
usage_err "kbuild store checkout --frob" --frob kb store checkout --frob main "$T/co"
usage_err "kbuild store ls -z" -z kb store ls -z main
usage_err "kbuild store cat --frob" --frob kb store cat --frob main
usage_err "kbuild store gc --frob" --frob kb store gc --frob
usage_err "kbuild store fsck --frob" --frob kb store fsck --frob
usage_err "kbuild store import --frob" --frob kb store import --frob x
usage_err "kbuild store export --frob" --frob kb store export --frob -o x main
usage_err "kbuild store ref set --frob" --frob kb store ref set --frob a "$H"
usage_err "kbuild store ac get --frob" --frob kb store ac get --frob "$H"
usage_err "kbuild store ls -zr (unknown option first in a cluster)" "'-z'" kb store ls -zr main
usage_err "kbuild store ls -rz (unknown option last in a cluster)" "'-z'" kb store ls -rz main
usage_err "kbuild store ls --recursive -zr" "'-z'" kb store ls --recursive -zr main
usage_err "kbuild store checkout --copy=yes (no value allowed)" "'--copy=yes'" kb store checkout --copy=yes main "$T/co"
usage_err "kbuild store add --ref (no value)" "option '--ref' needs a value" kb store add --ref
usage_err "kbuild store export -o (no value)" "option '-o' needs a value" kb store export main -o
usage_err "kbuild store add (no path)" "missing argument" kb store add
usage_err "kbuild store checkout HASH (no directory)" "missing argument" kb store checkout "$H"
usage_err "kbuild store checkout (nothing)" "missing argument" kb store checkout
usage_err "kbuild store cat (nothing)" "missing argument" kb store cat
usage_err "kbuild store cat A B" "too many" kb store cat "$H" "$H"
usage_err "kbuild store ls (nothing)" "missing argument" kb store ls
usage_err "kbuild store import (nothing)" "missing argument" kb store import
usage_err "kbuild store ac put KEY (no result)" "missing argument" kb store ac put "$H"
usage_err "kbuild store ac (nothing)" "" kb store ac
usage_err "kbuild store frob" frob kb store frob
usage_err "kbuild store (nothing)" "" kb store
usage_err "kbuild (nothing)" "" kb
usage_err "kbuild frob" frob kb frob
usage_err "kbuild --store (no value)" --store kb --store
usage_err "kbuild --store= (empty value)" --store kb --store= store fsck
usage_err "kbuild --store '' (empty value)" --store kb --store '' store fsck
usage_err "kbuild store cat of a name that is neither hash nor ref" 'not a ref!' kb store cat 'not a ref!'

# ---- options after operands, and -- ----
check "checkout HASH DIR --copy (option last)" kb store checkout "$H" "$T/co-last" --copy
same "...makes a copy" "$(stat -c %h "$T/co-last/f")" 1
check "ls HASH -r (option last)" kb store ls "$H" -r
printf 'dash\n' >"$T/-dash"
check "add -- -FILE" bash -c 'cd "$1" && "$2" store add -- -dash' _ "$T" "$KBUILD"
same "...stores the file named -dash" "$(cat "$OUT")" "$(sha "$T/-dash")"

# ---- bad input paths: named, nothing stored ----
n0=$(objects)
expect_fail 1 "store add of a path that does not exist fails" kb store add "$T/nonexistent"
err_has "...naming the path" "$T/nonexistent"
err_lines "...in one line" 1
mkdir -p "$T/withfifo/sub"
printf 'a file that would be stored\n' >"$T/withfifo/a"
printf 'another one\n' >"$T/withfifo/sub/b"
ln -s a "$T/withfifo/link"
mkfifo "$T/withfifo/sub/pipe"
expect_fail 1 "store add of a directory holding a fifo fails" kb store add "$T/withfifo"
err_has "...naming the fifo" "$T/withfifo/sub/pipe" "fifo"
expect_fail 1 "store add of the fifo itself fails" kb store add "$T/withfifo/sub/pipe"
err_has "...naming it" "$T/withfifo/sub/pipe"
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/withsock.sock" 2>/dev/null &&
	mkdir -p "$T/withsock" && mv "$T/withsock.sock" "$T/withsock/sock" &&
	{
		expect_fail 1 "store add of a directory holding a socket fails" kb store add "$T/withsock"
		err_has "...naming the socket" "$T/withsock/sock"
	}
expect_fail 1 "store add of good and bad paths together fails" kb store add "$T/src" "$T/withfifo" "$T/-dash"
same "...printing no hash" "$(wc -c <"$OUT")" 0
same "none of these stored a new object" "$(objects)" "$n0"
same "...nor left anything in tmp/" "$(find "$S/tmp" -mindepth 1 | wc -l)" 0
expect_fail 1 "store add --ref with a bad path fails" kb store add --ref bad "$T/nonexistent"
expect_fail 1 "...and creates no ref" kb store ref get bad

# ---- names that are not objects ----
expect_fail 1 "store cat zz fails" kb store cat zz
err_has "...naming it" "zz"
expect_fail 1 "store cat of a hash not in the store fails" kb store cat "$(sha_str absent)"
err_has "...naming it" "$(sha_str absent)"
expect_fail 1 "store checkout of an unknown ref fails" kb store checkout nosuchref "$T/co-x"
err_has "...naming it" nosuchref
truth "...and creates nothing" test ! -e "$T/co-x"
expect_fail 1 "store ls of an unknown ref fails" kb store ls nosuchref
expect_fail nz "store cat with an uppercase hash is not a hash" kb store cat "${F^^}"

# ---- output errors ----
if [ -w /dev/full ]; then
	run bash -c '"$1" store cat "$2" >/dev/full' _ "$KBUILD" "$F"
	if [ "$RC" -eq 1 ] && grep -q "write" "$ERR"; then
		ok "cat to a full device fails with exit 1 and says so"
	else
		fail "cat to a full device fails with exit 1 and says so (exit $RC)"
		diag_file "$ERR"
	fi
	run bash -c '"$1" store ref list >/dev/full' _ "$KBUILD"
	same "ref list to a full device exits 1" "$RC" 1
fi

# ---- where the store is ----
unset KBUILD_STORE
check "with XDG_DATA_HOME, store add uses \$XDG_DATA_HOME/kbuild/store" \
	env -u KBUILD_STORE XDG_DATA_HOME="$T/xdg" HOME="$T/home" "$KBUILD" store add "$T/src"
truth "...which now is a store" test -f "$T/xdg/kbuild/store/kbuild-store"
truth "...holding the tree" test -e "$T/xdg/kbuild/store/objects/${H:0:2}/${H:2}"
truth "...and nothing went under HOME" test ! -e "$T/home/.local"
check "without XDG_DATA_HOME, store add uses ~/.local/share/kbuild/store" \
	env -u KBUILD_STORE -u XDG_DATA_HOME HOME="$T/home" "$KBUILD" store add "$T/src"
truth "...which now is a store" test -f "$T/home/.local/share/kbuild/store/kbuild-store"
check "an empty XDG_DATA_HOME counts as unset" \
	env -u KBUILD_STORE XDG_DATA_HOME= HOME="$T/home2" "$KBUILD" store add "$T/src"
truth "...and the store is under HOME" test -f "$T/home2/.local/share/kbuild/store/kbuild-store"
check "KBUILD_STORE wins over XDG_DATA_HOME" \
	env KBUILD_STORE="$T/envstore" XDG_DATA_HOME="$T/xdg2" HOME="$T/home" "$KBUILD" store add "$T/src"
truth "...the store is at KBUILD_STORE" test -f "$T/envstore/kbuild-store"
truth "...and not under XDG_DATA_HOME" test ! -e "$T/xdg2"
check "--store wins over KBUILD_STORE" \
	env KBUILD_STORE="$T/envstore2" XDG_DATA_HOME="$T/xdg3" "$KBUILD" --store "$T/optstore" store add "$T/src"
truth "...the store is at --store" test -f "$T/optstore/kbuild-store"
truth "...and KBUILD_STORE was not touched" test ! -e "$T/envstore2"
check "--store=DIR form" env KBUILD_STORE="$T/envstore2" "$KBUILD" --store="$T/optstore3" store add "$T/src"
truth "...uses DIR" test -f "$T/optstore3/kbuild-store"
check "a relative --store is relative to the working directory" \
	bash -c 'cd "$1" && "$2" --store rel/store store add src' _ "$T" "$KBUILD"
truth "...and lands there" test -f "$T/rel/store/kbuild-store"
export KBUILD_STORE="$T/store"

# reading commands do not create stores
expect_fail 1 "ls in a store that does not exist fails" kb --store "$T/nostore" store ls "$H"
err_has "...saying there is no store" "no kbuild store" "$T/nostore"
truth "...and does not create it" test ! -e "$T/nostore"
for c in "fsck" "gc" "ref list" "ref get main" "ac get $H" "cat $H" "export -o $T/nostore.kbb main"; do
	expect_fail 1 "store $c in a missing store fails" kb --store "$T/nostore" store $c
done
truth "none of them created the store" test ! -e "$T/nostore"
mkdir -p "$T/notastore"
printf 'precious\n' >"$T/notastore/file"
expect_fail 1 "add into a non-empty directory that is not a store fails" kb --store "$T/notastore" store add "$T/src"
err_has "...saying so" "not a kbuild store"
same "...and touches nothing there" "$(ls -A "$T/notastore")" file
mkdir -p "$T/emptydir"
check "add into an existing empty directory makes it a store" kb --store "$T/emptydir" store add "$T/src"
check "...which is fsck-clean" kb --store "$T/emptydir" store fsck

# quiet and verbose
check "-q export is silent on stderr" kb -q store export -o "$T/q.kbb" main
same "...nothing on stderr" "$(wc -c <"$ERR")" 0
check "export without -q reports on stderr" kb store export -o "$T/q2.kbb" main
same "...and nothing on stdout" "$(wc -c <"$OUT")" 0
err_has "...a line saying what it exported" "exported"

finish
