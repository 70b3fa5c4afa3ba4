#!/usr/bin/env bash
# Recipes and lock files: the language, its errors (file:line:column and
# what to write instead), locks that are stable and strict, local inputs,
# the action cache's "nothing to do", and upstream mirror resolution.
. "$(dirname "$0")/lib.sh"

R=$T/repo
mkdir -p "$R/recipes" "$R/src/sub" "$R/keys" "$R/mod/hello"
cd "$R"
echo 'int main(void) { return 0; }' >src/main.c
printf 'x' >src/sub/data
cp /bin/true src/tool
echo 'obj-m := hello.o' >mod/hello/Kbuild
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/mok.key" -out keys/mok.pem \
	-subj /CN=kbuild-test -days 2 2>/dev/null
cp "$T/mok.key" keys/private.pem

cat >recipes/module.inc <<'REC'
# one module definition, two flavours
template "module" {
    param name
    param format = "deb"
    let src = "${name}-src"
    file "${src}-${format}" { path = "../mod/${name}" }
}
REC
cat >recipes/demo.recipe <<'REC'
include "module.inc"
let dir = "src"
key "mok" { path = "../keys/mok.pem" }
file "src" { path = "../${dir}" }   # a directory
file "one" { path = "../src/main.c" }
use "module" { name = "hello" }
use "module" { name = "hello" format = "rpm" }
upstream "debian" {
    type = "apt"
    suite = "bookworm"
    components = ["main", "contrib"]
    architectures = ["amd64"]
    keyring = "mok"
}
REC

# ---- lock and build ----
expect_fail 1 "recipe without a lock is refused" kb recipe demo
err_has "the refusal says to run kbuild lock" "no lock file" "kbuild lock demo"
check "kbuild lock writes the lock" kb lock demo
truth "lock file exists" test -s recipes/demo.lock
cp recipes/demo.lock "$T/lock1"
check "kbuild lock again" kb lock demo
same_file "kbuild lock twice gives byte-identical locks" "$T/lock1" recipes/demo.lock
truth "lock is sorted: sources first, inputs by name" \
	test "$(grep -E '^(source|input) ' recipes/demo.lock | tr '\n' '|')" = \
	"source recipes/demo.recipe|source recipes/module.inc|input file hello-src-deb|input file hello-src-rpm|input key mok|input file one|input file src|"
srchash=$(kb store add src 2>/dev/null)
truth "lock pins the directory input by its tree hash" grep -q "sha256 $srchash" recipes/demo.lock
truth "lock pins the single file by its sha256" grep -q "sha256 $(sha src/main.c)" recipes/demo.lock
truth "lock names the key's format" grep -q "format x509" recipes/demo.lock
check "kbuild recipe builds from the lock" kb recipe demo
err_has "first run reports the inputs" "5 inputs, 0 steps"
result=$(cat "$OUT")
check "kbuild recipe again" kb recipe demo
err_has "second run does nothing and says so" "up to date: nothing to do"
same "second run gives the same result" "$(cat "$OUT")" "$result"
check "result is the ref recipe/demo" kb store ref get recipe/demo
out_has "ref points at the result" "tree $result"
check "result tree lists the inputs" kb store ls "$result"
out_has "result holds every input by name" " src" " one" " mok" " hello-src-deb" " hello-src-rpm"

# ---- local inputs that change ----
echo '/* changed */' >>src/main.c
objs=$(nobjects)
expect_fail 1 "a changed file input stops the build" kb recipe demo
err_has "and names the input, the recipe line and the fix" "input 'src' (recipes/demo.recipe:4:1)" "kbuild lock demo"
check "kbuild lock accepts the change" kb lock demo
err_has "lock reports what changed" "2 changed"
check "then the recipe builds" kb recipe demo

# ---- stale locks ----
cp recipes/demo.recipe "$T/demo.orig"
echo 'file "extra" { path = "../src/sub" }' >>recipes/demo.recipe
expect_fail 1 "an input the lock does not cover is refused" kb recipe demo
err_has "naming it, the changed recipe, and the fix" "input 'extra': it is not in the lock" \
	"recipes/demo.recipe changed since the lock was written" "run 'kbuild lock demo'"
cp "$T/demo.orig" recipes/demo.recipe
sed -i 's|"../src/main.c"|"../src/sub/data"|' recipes/demo.recipe
expect_fail 1 "an input whose definition changed is refused" kb recipe demo
err_has "saying what differs" "input 'one': its path differs from the lock"
cp "$T/demo.orig" recipes/demo.recipe
check "back to the locked recipe" kb recipe demo
cp recipes/demo.lock "$T/lock.good"
sed -i 's/^recipe demo$/recipe other/' recipes/demo.lock
expect_fail 1 "a lock of another recipe is refused" kb recipe demo
cp "$T/lock.good" recipes/demo.lock
printf 'garbage\n' >recipes/demo.lock
expect_fail 1 "a malformed lock is refused" kb recipe demo
err_has "with its file and line" "recipes/demo.lock:1:" "kbuild lock"
cp "$T/lock.good" recipes/demo.lock
head -c 100 "$T/lock.good" >recipes/demo.lock
expect_fail 1 "a truncated lock is refused" kb recipe demo
cp "$T/lock.good" recipes/demo.lock

# ---- bad recipes: file:line:column, what to write, store untouched ----
badcase() { # NAME DESC EXPECTED-SUBSTRINGS... ; recipe text on stdin
	local name=$1 desc=$2
	shift 2
	cat >"recipes/$name.recipe"
	local before
	before=$(objects)
	expect_fail 1 "$desc is refused" kb lock "$name"
	err_has "$desc: the error has its position and the fix" "$@"
	err_lines "$desc: one line" 1
	same "$desc: the store is untouched" "$(objects)" "$before"
	truth "$desc: no lock written" test ! -e "recipes/$name.lock"
}
badcase bad1 "a malformed block" "recipes/bad1.recipe:2:28: expected '=' (for 'key = value') or '{' (for a block) after 'sha256', found '}'" <<'REC'
file "a" { path = "../src" }
url "b" { url = "x" sha256 }
REC
badcase bad2 "an unknown key" "recipes/bad2.recipe:3:5: unknown key 'sha265'" "did you mean 'sha256'?" <<'REC'
url "b" {
    url = "https://example.org/x"
    sha265 = "00"
}
REC
badcase bad3 "a duplicate input name" "recipes/bad3.recipe:2:1: 'a' is already defined at recipes/bad3.recipe:1:1" <<'REC'
file "a" { path = "../src" }
file "a" { path = "../mod" }
REC
badcase bad4 "a non-hex hash" "recipes/bad4.recipe:1:50: sha256 must be 64 lowercase hex digits, not 'zz'" <<'REC'
url "b" { url = "https://example.org/x" sha256 = "zz" }
REC
badcase bad5 "an unknown block" "recipes/bad5.recipe:1:1: unknown block 'fiel'; did you mean 'file'?" <<'REC'
fiel "a" { path = "../src" }
REC
badcase bad6 "an undefined variable" "recipes/bad6.recipe:1:20: 'nope' is not defined here" <<'REC'
file "a" { path = "${nope}" }
REC
badcase bad7 "a tag instead of a commit" "recipes/bad7.recipe:1:54: commit must be the full 40-digit commit id, not 'v1.0'" "tag or branch" <<'REC'
git "g" { url = "https://example.org/r.git" commit = "v1.0" }
REC
badcase bad8 "a path leaving the repository" "recipes/bad8.recipe:1:12: path '../../etc' leaves the repository" <<'REC'
file "a" { path = "../../etc" }
REC
badcase bad9 "an unclosed string" "recipes/bad9.recipe:1:19: this string is not closed" <<'REC'
file "a" { path = "../src }
REC
badcase bad10 "a missing required key" "recipes/bad10.recipe:1:1: url input 'u' needs sha256 = " <<'REC'
url "u" { url = "https://example.org/x" }
REC
badcase bad11 "a missing template param" "recipes/bad11.recipe:2:1: use \"module\" needs name = ..." <<'REC'
include "module.inc"
use "module" { format = "rpm" }
REC
badcase bad12 "a package naming no upstream" "package input 'p' names upstream 'nowhere', which is not defined" <<'REC'
package "p" { upstream = "nowhere" name = "hello" }
REC
badcase bad13 "a private key as a key input" "input 'k' (recipes/bad13.recipe:1:1)" "is a private key" <<'REC'
key "k" { path = "../keys/private.pem" }
REC
# checked once every template is expanded: the error names the block in
# the template and every use that led to it, innermost first
badcase bad14 "a step in a template used by a template, on a root that does not exist" \
	"recipes/bad14.recipe:2:26 (in use \"t\" at recipes/bad14.recipe:4:3, in use \"outer\" at recipes/bad14.recipe:5:1): step 's-x': root 'none' is not a buildroot" <<'REC'
template "t" { param n
  step "s-${n}" { root = "none" command = ["true"] source_date_epoch = 1 } }
template "outer" {
  use "t" { n = "x" } }
use "outer" { }
REC
python3 -c '
print("let a0 = \"xx\"")
for i in range(1, 27): print("let a%d = \"${a%d}${a%d}\"" % (i, i - 1, i - 1))
print("file \"f\" { path = \"${a26}\" }")' >"$T/bomb1"
badcase bomb1 "a string that doubles itself into gigabytes" "this string grows beyond 65536 bytes" <"$T/bomb1"
python3 -c '
print("template \"t0\" { param p\n file \"f-${p}\" { path = \"x\" } }")
for i in range(1, 13): print("template \"t%d\" { param p\n use \"t%d\" { p = \"${p}a\" } use \"t%d\" { p = \"${p}b\" } use \"t%d\" { p = \"${p}c\" } }" % (i, i-1, i-1, i-1))
print("use \"t12\" { p = \"x\" }")' >"$T/bomb2"
cat "$T/bomb2" >recipes/bomb2.recipe
expect_fail 1 "templates fanning out into half a million inputs are refused" timeout 20 "$KBUILD" lock bomb2
err_has "with a clear limit" "more than 10000 template uses"
cat >recipes/cyc-a.inc <<'REC'
include "cyc-b.inc"
REC
cat >recipes/cyc-b.inc <<'REC'
include "cyc-a.inc"
REC
badcase cyc "an include cycle" "recipes/cyc-b.inc:1:1: include cycle: recipes/cyc-a.inc -> recipes/cyc-b.inc -> recipes/cyc-a.inc" "remove one" <<'REC'
include "cyc-a.inc"
REC
expect_fail 2 "an unknown option" kb lock --frob demo
err_has "names the option" "--frob"
expect_fail 1 "an unknown recipe" kb recipe nosuch
err_has "says where recipes live" "no recipe named 'nosuch'" "recipes/nosuch.recipe"
check "help for lock" kb help lock
out_has "lock help shows usage" "usage: kbuild lock"

# ---- upstream mirrors: never from the repository ----
mkdir -p "$T/apt/sources.list.d"
cat >"$T/apt/sources.list.d/debian.sources" <<'SRC'
Types: deb
URIs: http://127.0.0.1:9/debian/
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://127.0.0.1:9/debian-security
Suites: bookworm-security
Components: main
SRC
export KBUILD_APT_DIR=$T/apt
check "upstream from the host's deb822 apt sources" kb upstreams demo
out_has "resolves to the host's mirror and says where from" \
	"debian apt http://127.0.0.1:9/debian (from $T/apt/sources.list.d/debian.sources)"
rm "$T/apt/sources.list.d/debian.sources"
echo "deb [arch=amd64] http://127.0.0.1:8/d bookworm main" >"$T/apt/sources.list"
check "upstream from a one-line sources.list" kb upstreams demo
out_has "one-line format read" "debian apt http://127.0.0.1:8/d (from $T/apt/sources.list)"
mkdir -p "$T/cfg/kbuild"
echo "mirror debian http://127.0.0.1:7/cfg" >"$T/cfg/kbuild/config"
XDG_CONFIG_HOME=$T/cfg run kb upstreams demo
out_has "the config file overrides apt sources" "debian apt http://127.0.0.1:7/cfg (from $T/cfg/kbuild/config:1)"
XDG_CONFIG_HOME=$T/cfg run kb --mirror debian=http://127.0.0.1:6/cli upstreams demo
out_has "--mirror overrides the config file" "debian apt http://127.0.0.1:6/cli (from --mirror)"
rm "$T/apt/sources.list"
expect_fail 1 "no mirror anywhere is a clear error" kb upstreams demo
err_has "naming the upstream and both fixes" "upstream 'debian' has no mirror" "--mirror debian=URL" "mirror debian URL"
expect_fail 2 "a malformed --mirror" kb --mirror debian upstreams demo
truth "no file in the repository names a Debian mirror host" \
	bash -c "! grep -rIl 'deb\.debian\.org\|ftp\.debian\.org' '$(dirname "$0")/..' --exclude-dir=build --exclude-dir=.git"

finish
