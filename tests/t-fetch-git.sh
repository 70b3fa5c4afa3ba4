#!/usr/bin/env bash
# fetch git: a commit of a real repository becomes the same kbuild tree as
# 'store add' of its plain checkout; anything but a full commit id is
# refused before git is touched; failures name the input and leave the
# store as it was; the mirror in the cache serves commits it already has.
. "$(dirname "$0")/lib.sh"

S=$KBUILD_STORE
# the mirrors go below $T; git itself sees neither system nor user config
export XDG_CACHE_HOME="$T/cache" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.org
export GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.org
export GIT_AUTHOR_DATE='2021-01-01T00:00:00Z' GIT_COMMITTER_DATE='2021-01-01T00:00:00Z'
CACHE=$T/cache/kbuild/git

g() { git -C "$R" "$@"; }

# ---- the repository: two commits, an annotated tag, a branch ----
R=$T/repo
git init -q -b main "$R"
mkdir -p "$R/src/lib/deep" "$R/dup1/x" "$R/dup2/x" "$R/docs"
printf 'hello\n' >"$R/README"
printf '#!/bin/sh\necho run\n' >"$R/run.sh"
chmod 755 "$R/run.sh"
printf 'int main(void) { return 0; }\n' >"$R/src/main.c"
printf 'deep\n' >"$R/src/lib/deep/leaf.txt"
printf 'same\n' >"$R/dup1/x/f"
printf 'same\n' >"$R/dup2/x/f" # the same git tree twice
: >"$R/docs/empty"
printf 'spaced\n' >"$R/docs/a name with spaces"
head -c 1500000 /dev/urandom >"$R/docs/big.bin"
ln -s src/main.c "$R/link-to-main"
ln -s ../../README "$R/src/lib/up-link"
ln -s does/not/exist "$R/dangling"
g add -A
g commit -q -m one
C1=$(g rev-parse HEAD)
g tag -a v1.0 -m 'release 1.0'
TAGOBJ=$(g rev-parse v1.0)
TREE1=$(g rev-parse 'HEAD^{tree}')

printf 'hello again\n' >"$R/README"
chmod 644 "$R/run.sh"                    # no longer executable
printf '#!/bin/sh\n' >"$R/src/tool"
chmod 755 "$R/src/tool"                  # newly executable
rm "$R/link-to-main"
ln -s README "$R/link-to-main"           # retargeted
rm -r "$R/dup2"
g add -A
g commit -q -m two
C2=$(g rev-parse HEAD)
g branch feature "$C1"
g tag v2-light "$C2"

differ "the test repository has two different commits" "$C1" "$C2"

# archive DIR COMMIT: the plain checkout of COMMIT, as git archive makes it
archive() { mkdir -p "$1" && git -C "$R" archive "$2" | tar -x -C "$1"; }
archive "$T/x1" "$C1"
archive "$T/x2" "$C2"

# ---- 1. by full commit id: path and file:// ----
check "fetch git by full commit id (repository as a path)" kb fetch git "$R" "$C2"
H2=$(cat "$OUT")
truth "fetch git prints a tree hash ($H2)" is_hash "$H2"
same "fetch git prints exactly one line" "$(wc -l <"$OUT")" 1
check "store checkout of the fetched tree" kb --store "$S" store checkout "$H2" "$T/co2"
same_tree "the checkout has exactly the files of the commit (exec bits, symlinks)" \
	"$T/x2" "$T/co2"
truth "src/tool is executable in the checkout" test -x "$T/co2/src/tool"
truth "run.sh is not executable in the checkout" test ! -x "$T/co2/run.sh"
same "link-to-main is a symlink to README" "$(readlink "$T/co2/link-to-main")" README
check "store add of the git archive of the commit" kb store add "$T/x2"
same "the fetched tree equals 'store add' of the plain checkout" "$(cat "$OUT")" "$H2"

check "fetch git with a file:// URL" kb fetch git "file://$R" "$C2"
same "file:// gives the same tree" "$(cat "$OUT")" "$H2"
check "fetch git of the same commit again" kb fetch git "$R" "$C2"
same "fetching again gives the same tree" "$(cat "$OUT")" "$H2"
(cd "$T" && run "$KBUILD" fetch git repo "$C2")
same "a relative path gives the same tree (exit $RC)" "$(cat "$OUT")" "$H2"

# ---- 2. the older commit ----
check "fetch git of the first commit" kb fetch git "$R" "$C1"
H1=$(cat "$OUT")
differ "the older commit has a different tree" "$H1" "$H2"
check "store checkout of the older tree" kb store checkout "$H1" "$T/co1"
same_tree "the older checkout has exactly the files of the older commit" "$T/x1" "$T/co1"
truth "run.sh is executable in the older checkout" test -x "$T/co1/run.sh"
same "link-to-main points to src/main.c in the older checkout" \
	"$(readlink "$T/co1/link-to-main")" src/main.c
check "store add of the older archive" kb store add "$T/x1"
same "the older tree equals 'store add' of its plain checkout" "$(cat "$OUT")" "$H1"
check "store fsck after the fetches" kb store fsck

before=$(objects)

# ---- 3. a commit id the repository does not have ----
MISSING=0123456789abcdef0123456789abcdef01234567
expect_fail 1 "a commit that does not exist is an error" kb fetch git "$R" "$MISSING"
err_has "the error names the commit and the repository" "$MISSING" "not found in $R" \
	"fetched all branches and tags"
same "stdout is empty on failure" "$(cat "$OUT")" ""
same "a missing commit leaves the store unchanged" "$(objects)" "$before"

# ---- 4. tags, branches and short ids are refused before git ----
expect_fail 2 "a tag name is refused" kb fetch git "$R" v1.0
err_has "the tag refusal explains itself" "$R" "'v1.0'" "tag" "full 40-digit commit id" \
	"git ls-remote"
err_lines "the tag refusal is one line" 1
expect_fail 2 "a branch name is refused" kb fetch git "$R" feature
err_has "the branch refusal explains itself" "'feature'" "branch" "full 40-digit commit id"
expect_fail 2 "a lightweight tag name is refused" kb fetch git "$R" v2-light
err_has "the lightweight tag refusal says full commit id" "full 40-digit commit id"
expect_fail 2 "a short commit id is refused" kb fetch git "$R" "${C2:0:12}"
err_has "the short id refusal says full commit id" "${C2:0:12}" "abbreviated" \
	"full 40-digit commit id"
expect_fail 2 "an uppercase commit id is refused" kb fetch git "$R" "${C2^^}"
err_has "the uppercase refusal says lowercase" "lowercase"
expect_fail 2 "a 41-digit id is refused" kb fetch git "$R" "${C2}0"
expect_fail 2 "an empty commit id is refused" kb fetch git "$R" ""
# refused before any git access: the repository need not even exist
expect_fail 2 "a tag name is refused before git is asked" kb fetch git "$T/no-such-repo" v1.0
err_has "... with the tag message, not a repository error" "tag" "full 40-digit commit id"
same "refused ids leave the store unchanged" "$(objects)" "$before"

# ---- 5. an annotated tag object or a tree is not a commit ----
differ "the annotated tag has its own object id" "$TAGOBJ" "$C1"
expect_fail 1 "the id of an annotated tag object is refused" kb fetch git "$R" "$TAGOBJ"
err_has "the refusal says it is a tag object, not a commit, and names the commit" \
	"$TAGOBJ" "annotated tag" "not a commit" "$C1"
expect_fail 1 "the id of a tree is refused" kb fetch git "$R" "$TREE1"
err_has "the refusal says it is a tree, not a commit" "$TREE1" "tree" "not a commit"
same "tag and tree ids leave the store unchanged" "$(objects)" "$before"

# ---- 6. the mirror in the cache ----
M=$CACHE/$(sha_str "$R")
truth "the mirror is at CACHE/git/<sha256 of the URL>" test -d "$M/objects"
truth "the mirror is bare" test ! -e "$M/.git"
has_refs() {
	local r
	for r in "$@"; do
		git --git-dir="$M" rev-parse -q --verify "$r" >/dev/null || return 1
	done
}
truth "the mirror has the branches and the tags" \
	has_refs refs/heads/main refs/heads/feature refs/tags/v1.0 refs/tags/v2-light
mv "$R" "$R.away"
check "with the repository gone, a cached commit still fetches" \
	kb --store "$T/store2" fetch git "$R" "$C2"
same "the cached commit gives the same tree" "$(cat "$OUT")" "$H2"
truth "a cached commit is not fetched again" bash -c "! grep -q fetching '$ERR'"
check "store checkout from the second store" kb --store "$T/store2" store checkout "$H2" "$T/co2b"
same_tree "the second store has the whole tree" "$T/x2" "$T/co2b"
expect_fail 1 "an uncached commit with the repository gone is an error" \
	kb fetch git "$R" "$MISSING"
err_has "the error names the repository" "$R"
mv "$R.away" "$R"

# ---- 7. a repository that does not exist ----
ndirs() { find "$CACHE" -mindepth 1 -maxdepth 1 -type d | wc -l; }
nd=$(ndirs)
expect_fail 1 "a repository path that does not exist is an error" \
	kb fetch git "$T/no-such-repo" "$C1"
err_has "the error names the URL" "$T/no-such-repo"
expect_fail 1 "a file:// URL that does not exist is an error" \
	kb fetch git "file://$T/no-such-repo" "$C1"
err_has "the error names the URL" "file://$T/no-such-repo"
mkdir "$T/not-a-repo"
expect_fail 1 "a directory that is no repository is an error" kb fetch git "$T/not-a-repo" "$C1"
err_has "the error names the directory" "$T/not-a-repo"
same "failed repositories leave no mirror behind" "$(ndirs)" "$nd"
same "missing repositories leave the store unchanged" "$(objects)" "$before"

# ---- 8. submodules are refused ----
R=$T/with-sub
git init -q -b main "$R"
printf 'top\n' >"$R/top"
mkdir -p "$R/vendor"
printf 'v\n' >"$R/vendor/keep"
g add -A
g update-index --add --cacheinfo "160000,$C1,vendor/sub"
g commit -q -m 'with a submodule'
CS=$(g rev-parse HEAD)
expect_fail 1 "a commit with a submodule is refused" kb fetch git "$R" "$CS"
err_has "the refusal names the path and says submodules are not supported" \
	"vendor/sub" "submodule" "not supported" "$CS"
same "the refused submodule commit leaves the store unchanged" "$(objects)" "$before"
R=$T/repo

# ---- 9. offline ----
expect_fail 1 "--offline with nothing in the store is an error" \
	kb --store "$T/off" fetch git --offline "$R" "$C2"
err_has "the error says the network is off" "offline" "$R" "not in the store"
same "--offline stores nothing" "$(nobjects "$T/off")" 0
expect_fail 2 "--offline still refuses a tag name" kb fetch git --offline "$R" v1.0

# ---- a tree known from a lock (has_tree), through the library ----
ROOT=${KBUILD_TEST_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LIB=$(dirname "$KBUILD")/libkbuild.a
san=
if [ "${KBUILD_VARIANT:-}" = asan ] || ldd "$KBUILD" 2>/dev/null | grep -q libasan; then
	san="-fsanitize=address,undefined -fno-sanitize-recover=all"
fi
DRV=$T/fetch-git-drv
# shellcheck disable=SC2086 # $san is a list of flags
if [ -f "$LIB" ] && cc -std=c11 -D_GNU_SOURCE -O1 -g $san -o "$DRV" \
	"$ROOT/tests/t-fetch-git-drv.c" "$LIB" -lcurl -lgit2 -lcrypto -lzstd -lpthread \
	2>"$T/cc.log"; then
	ok "the has_tree driver compiles against $LIB"
	check "a locked tree already stored needs no git (nor network)" \
		"$DRV" "$S" "$T/no-such-repo" "$C2" "$H2" offline
	same "... and gives the locked tree" "$(cat "$OUT")" "$H2"
	expect_fail 1 "offline, a locked tree not in the store is an error" \
		"$DRV" "$T/store3" "$R" "$C2" "$H2" offline
	err_has "the error names the input and says offline" "input 'src' (test:1:1)" offline
	check "online, a locked tree not in the store is fetched" \
		"$DRV" "$T/store3" "$R" "$C2" "$H2" online
	same "... and matches the lock" "$(cat "$OUT")" "$H2"
	check "... and is then there offline" "$DRV" "$T/store3" "$R" "$C2" "$H2" offline
	expect_fail 1 "a commit whose tree differs from the lock is refused" \
		"$DRV" "$T/store4" "$R" "$C2" "$H1" online
	err_has "the refusal names the input and both trees" "input 'src' (test:1:1)" \
		"$H1" "$H2" "does not match"
	same "a refused lock mismatch stores nothing" "$(nobjects "$T/store4")" 0
	expect_fail 2 "a tag name is refused even with a stored tree" \
		"$DRV" "$S" "$R" v1.0 "$H2" offline
else
	diag "has_tree cases skipped: cannot build the driver against $LIB"
	diag_file "$T/cc.log"
fi

# ---- two processes, one fresh mirror ----
XDG_CACHE_HOME="$T/cache-par" "$KBUILD" --store "$T/par" fetch git "$R" "$C2" \
	>"$T/par1.out" 2>"$T/par1.err" &
p1=$!
bg_track $p1
XDG_CACHE_HOME="$T/cache-par" "$KBUILD" --store "$T/par" fetch git "$R" "$C1" \
	>"$T/par2.out" 2>"$T/par2.err" &
p2=$!
bg_track $p2
rc1=0 rc2=0
wait $p1 || rc1=$?
wait $p2 || rc2=$?
same "two fetches at once through one new mirror both succeed" "$rc1 $rc2" "0 0"
same "... with the right trees" "$(cat "$T/par1.out") $(cat "$T/par2.out")" "$H2 $H1"
_kb_sancheck "two fetches at once" || true

# ---- url.<base>.insteadOf from the user's git configuration ----
printf '[url "%s/"]\n\tinsteadOf = kbtest:\n' "$T" >"$HOME/.gitconfig"
check "a URL rewritten by url.<base>.insteadOf" \
	env XDG_CACHE_HOME="$T/cache-io" "$KBUILD" fetch git kbtest:repo "$C2"
same "... fetches the rewritten repository" "$(cat "$OUT")" "$H2"
rm "$HOME/.gitconfig"

# ---- quiet ----
check "-q fetch git into a fresh cache" \
	env XDG_CACHE_HOME="$T/cache-q" "$KBUILD" -q fetch git "$R" "$C1"
same "-q prints only the hash" "$(cat "$OUT")" "$H1"
same "-q prints nothing on stderr" "$(cat "$ERR")" ""

check "store fsck at the end" kb store fsck
finish
