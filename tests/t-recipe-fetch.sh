#!/usr/bin/env bash
# Recipes with remote inputs, end to end: url inputs from a real nginx,
# git inputs from a real repository; lock, build, nothing-to-do, --offline,
# and errors that name the input and its recipe line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nginx.sh"
export KBUILD_RETRY_DELAY_MS=20 XDG_CACHE_HOME=$T/cache

W=$T/www
mkdir -p "$W"
head -c 300000 /dev/urandom >"$W/src.tar"
echo "second file" >"$W/b.txt"
nginx_start "$W" || finish

G=$T/git
git init -q "$G"
(
	cd "$G"
	export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e
	export GIT_AUTHOR_DATE=@1700000000 GIT_COMMITTER_DATE=@1700000000
	mkdir -p lib && echo 'int f(void);' >lib/f.h && printf '#!/bin/sh\n' >run.sh && chmod +x run.sh
	git add -A && git commit -qm one
)
C=$(git -C "$G" rev-parse HEAD)

R=$T/repo
mkdir -p "$R/recipes"
cd "$R"
cat >recipes/remote.recipe <<REC
let base = "$NGX_URL"
url "src" { url = "\${base}/src.tar" sha256 = "$(sha "$W/src.tar")" }
url "b" { url = "\${base}/b.txt" sha256 = "$(sha "$W/b.txt")" size = $(stat -c %s "$W/b.txt") }
git "code" { url = "file://$G" commit = "$C" }
REC

check "kbuild lock fetches url and git inputs" kb lock remote
truth "lock pins the url input by origin, sha256 and size" \
	grep -qF "  size 300000" recipes/remote.lock
truth "lock pins the git input's commit and tree" grep -qF "  commit $C" recipes/remote.lock
cp recipes/remote.lock "$T/lock1"
check "kbuild lock again" kb lock remote
same_file "the two locks are byte-identical" "$T/lock1" recipes/remote.lock
check "kbuild recipe builds" kb recipe remote
result=$(cat "$OUT")
check "result lists the inputs" kb store ls "$result"
out_has "url blob and git tree in the result" "f $(sha "$W/src.tar") src" "d " " code"
check "checkout of the git input" kb store checkout "$result" "$T/co"
truth "the git input keeps its executable" test -x "$T/co/code/run.sh"

# three runs at once, into a new store through a new cache: one creates the
# store and the git mirror while the others wait their turn
pids=()
for i in 1 2 3; do
	XDG_CACHE_HOME=$T/cache-par "$KBUILD" --store "$T/par" recipe remote \
		>"$T/par$i.out" 2>"$T/par$i.err" &
	pids+=($!)
	bg_track $!
done
bad=0
for i in 1 2 3; do
	if ! wait "${pids[$((i - 1))]}"; then
		bad=$((bad + 1))
		diag_file "$T/par$i.err"
	fi
done
same "three runs at once into a new store all succeed" "$bad" 0
same "... with the first run's result" "$(sort -u "$T"/par[123].out)" "$result"
check "... and leave the store fsck-clean" kb --store "$T/par" store fsck

nginx_stop
mv "$G" "$G.gone"
check "second run with the server and the repository gone" kb recipe remote
err_has "does nothing and says so" "nothing to do"
check "--offline with everything stored" kb recipe --offline remote
mv "$G.gone" "$G"

# a fresh store, offline: every missing input named, with its recipe line
expect_fail 1 "--offline with an empty store is refused" kb --store "$T/empty" recipe --offline remote
err_has "naming every missing input with its recipe line" "3 inputs of recipe 'remote' failed" \
	"input 'src' (recipes/remote.recipe:2:1)" "input 'b' (recipes/remote.recipe:3:1)" \
	"input 'code' (recipes/remote.recipe:4:1)"
err_has "and the commands that bring them in" "kbuild recipe remote' without --offline" "kbuild store import"
err_has "and saying the network is off" "offline"
truth "the empty store got no objects" test "$(nobjects "$T/empty" 2>/dev/null || echo 0)" -eq 0

# a wrong hash in the recipe: refused at lock time, nothing lands
nginx_start "$W" || finish
sed -i "s|^let base = .*|let base = \"$NGX_URL\"|" recipes/remote.recipe
check "relock after the server moved" kb lock remote
cp recipes/remote.recipe "$T/good.recipe"
echo "changed" >"$W/b.txt"
sed -i "s|^url \"b\".*|url \"b\" { url = \"\${base}/b.txt\" sha256 = \"$(sha_str nope)\" }|" recipes/remote.recipe
before=$(objects)
expect_fail 1 "a url whose content does not match its sha256 is refused" kb lock remote
err_has "naming the input, its recipe line and both hashes" "input 'b' (recipes/remote.recipe:3:1)" "$(sha_str nope)" "$(sha "$W/b.txt")"
same "nothing landed" "$(objects)" "$before"
cp "$T/good.recipe" recipes/remote.recipe
# content the store lacks, so the fetcher must ask the server
sed -i "s|^url \"src\".*|url \"src\" { url = \"\${base}/missing.tar\" sha256 = \"$(sha_str absent)\" }|" recipes/remote.recipe
expect_fail 1 "a 404 is refused" kb lock remote
err_has "naming the input and its recipe line" "input 'src' (recipes/remote.recipe:2:1)" "404"
same "nothing landed after the 404" "$(objects)" "$before"
cp "$T/good.recipe" recipes/remote.recipe
sed -i "s|commit = \"$C\"|commit = \"$(printf '%040d' 7)\"|" recipes/remote.recipe
expect_fail 1 "a commit that does not exist is refused" kb lock remote
err_has "naming the input and the commit" "input 'code' (recipes/remote.recipe:4:1)" "$(printf '%040d' 7)"
same "nothing landed for the missing commit" "$(objects)" "$before"

finish
