#!/usr/bin/env bash
# Third-party verification: 'kbuild recipe' writes a manifest (and an
# in-toto/SLSA statement) of every build; 'kbuild verify MANIFEST' rebuilds
# from it alone in a fresh store, in another directory, under another
# user's environment, and compares every output. The recipe: a busybox
# root from a signed apt repository on nginx (as in t-step.sh) and steps
# writing files; with the fixture kernel headers also the hello module,
# built, signed (the verifier has no private key) and packaged.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nginx.sh"

FIX=${KBUILD_FIXTURES:-/var/cache/kbuild-fixtures}
need_tools dpkg-deb apt-ftparchive gpg busybox python3
need_sandbox

. "$(dirname "$0")/recipe-env.sh"
mkdir -p "$T/debsrc/bb/DEBIAN" "$T/debsrc/bb/usr/bin" "$T/debs"
printf 'Package: bb\nVersion: 1.0\nArchitecture: amd64\nMaintainer: t <t@kbuild.test>\nDescription: busybox\n' \
	>"$T/debsrc/bb/DEBIAN/control"
cp "$(command -v busybox)" "$T/debsrc/bb/usr/bin/busybox"
for c in sh cat echo date mkdir cp ls printf tr sort; do ln -s busybox "$T/debsrc/bb/usr/bin/$c"; done
dpkg-deb -Zgzip --root-owner-group --build "$T/debsrc/bb" "$T/debs/bb_1.0_amd64.deb" >/dev/null
repo small t "$T/debs/bb_1.0_amd64.deb"
nginx_start "$WWW" || finish

{
	echo 'key "archive" { path = "../keys/archive.asc" }'
	upstream t small t
	echo 'buildroot "bb" { upstreams = ["t"] packages = ["bb"] essential = false }'
	echo 'file "src" { path = "../src" }'
} >"$P/recipes/base.inc"
echo hello >"$P/src/msg.txt"
printf '#!/bin/sh\necho tool\n' >"$P/src/tool.sh"
chmod +x "$P/src/tool.sh"
cat >"$P/recipes/v.recipe" <<'EOF'
include "base.inc"
let epoch = "1700000000"
step "one" {
    root = "bb"
    inputs = ["src"]
    script = "mkdir -p /out/share/doc; cat /inputs/src/msg.txt > /out/share/doc/copy; cp /inputs/src/tool.sh /out/tool; echo $SOURCE_DATE_EPOCH > /out/epoch"
    source_date_epoch = "${epoch}"
}
step "two" {
    root = "bb"
    inputs = ["one"]
    command = ["sh", "-c", "cat /inputs/one/share/doc/copy /inputs/one/share/doc/copy > /out/twice"]
    env = ["GREETING=hi"]
    source_date_epoch = 1700000000
}
EOF
cd "$P" || finish

# ---- the manifest ----
check "kbuild lock" kb lock v
check "kbuild recipe writes a manifest" kb recipe v
RES=$(cat "$OUT")
M=$KBUILD_STORE/manifests/v.json
S=$KBUILD_STORE/manifests/v.intoto.json
err_has "... and says where" "manifest $M"
truth "... the file is there" [ -s "$M" ]
truth "... with its in-toto statement beside it" [ -s "$S" ]
run kb store cat manifest/v
same "... and the same bytes are ref manifest/v" "$(sha "$OUT")" "$(sha "$M")"
MSHA=$(sha "$M")
check "again (nothing to do)" kb recipe v
same "... gives the same manifest bytes" "$(sha "$M")" "$MSHA"
check "--manifest FILE" kb recipe --manifest "$T/pub/v.json" v
same_file "... the same bytes there" "$T/pub/v.json" "$M"
truth "... the statement beside it" [ -s "$T/pub/v.intoto.json" ]

run python3 - "$M" "$RES" <<'EOF'
import json, sys, hashlib, base64
m = json.load(open(sys.argv[1]))
res = sys.argv[2]
def need(c, what):
    if not c:
        print("missing: " + what); sys.exit(1)
need(m["format"] == "kbuild-manifest" and m["version"] == 1, "format/version")
need(m["kbuild"], "kbuild version")
need(m["recipe"]["name"] == "v" and m["recipe"]["result"] == res, "recipe name and result")
need(len(m["recipe"]["action"]) == 64, "recipe action key")
srcs = {s["path"]: s for s in m["sources"]}
need(set(srcs) == {"recipes/v.recipe", "recipes/base.inc"}, "sources %s" % list(srcs))
for s in m["sources"] + [m["lock"]]:
    need(hashlib.sha256(s["text"].encode()).hexdigest() == s["sha256"], "source text " + s["path"])
need(m["lock"]["path"] == "recipes/v.lock", "lock path")
ins = {i["name"]: i for i in m["inputs"]}
need(ins["src"]["kind"] == "file" and ins["src"]["result"]["type"] == "tree" and ins["src"]["origin"] == "../src", "file input")
need(ins["src"]["repo_path"] == "src", "file input repo path")
need(ins["archive"]["lock"]["format"] == "openpgp", "key input lock keys")
br = m["buildroots"][0]
need(br["name"] == "bb" and len(br["tree"]) == 64, "buildroot tree")
p = br["packages"][0]
need(p["name"] == "bb" and p["version"] == "1.0" and p["upstream"] == "t" and len(p["sha256"]) == 64, "package")
need(p["url"].startswith("http://") and p["url"].endswith(".deb"), "package url")
need(m["upstreams"][0]["url"].startswith("http://"), "upstream url")
st = {s["name"]: s for s in m["steps"]}
need(st["one"]["root"]["name"] == "bb" and st["one"]["root"]["tree"] == br["tree"], "step root")
need(st["one"]["inputs"]["src"]["sha256"] == ins["src"]["result"]["sha256"], "step input hash")
need(st["two"]["inputs"]["one"]["sha256"] == st["one"]["output"], "step reads step")
need(st["two"]["env"] == ["GREETING=hi"] and st["two"]["source_date_epoch"] == 1700000000, "env, epoch")
need(st["two"]["command"] == ["sh", "-c", "cat /inputs/one/share/doc/copy /inputs/one/share/doc/copy > /out/twice"], "command")
need(all(len(s["action"]) == 64 for s in m["steps"]), "action keys")
outs = {(o["step"], o["path"]): o for o in m["outputs"]}
need(set(outs) == {("one", "share/doc/copy"), ("one", "tool"), ("one", "epoch"), ("two", "twice")}, "outputs %s" % list(outs))
need(outs[("one", "share/doc/copy")]["sha256"] == hashlib.sha256(b"hello\n").hexdigest() and outs[("one", "share/doc/copy")]["size"] == 6, "output hash and size")
need(outs[("one", "tool")]["executable"] is True, "executable bit")
txt = open(sys.argv[1]).read()
need("PRIVATE" not in txt, "no private key")
print("manifest ok")
EOF
same "the manifest has every field (python3 json)" "$(cat "$OUT")" "manifest ok"
diag_file "$ERR"

run python3 - "$S" "$M" <<'EOF'
import json, sys, hashlib
s = json.load(open(sys.argv[1]))
m = json.load(open(sys.argv[2]))
def need(c, what):
    if not c:
        print("missing: " + what); sys.exit(1)
need(s["_type"] == "https://in-toto.io/Statement/v1", "_type")
need(s["predicateType"] == "https://slsa.dev/provenance/v1", "predicateType")
subj = {x["name"]: x["digest"]["sha256"] for x in s["subject"]}
need(len(subj) == len(m["outputs"]), "one subject per artifact")
for o in m["outputs"]:
    need(subj[o["step"] + "/" + o["path"]] == o["sha256"], "subject " + o["path"])
bd = s["predicate"]["buildDefinition"]
need(bd["buildType"].startswith("https://"), "buildType")
need(bd["externalParameters"]["recipe"] == "v", "externalParameters.recipe")
need(len(bd["externalParameters"]["sources"]) == 2, "externalParameters.sources")
need(all(len(d["digest"]["sha256"]) == 64 for d in bd["externalParameters"]["sources"]), "source digests")
need("internalParameters" in bd, "internalParameters")
deps = {d["name"]: d for d in bd["resolvedDependencies"]}
need(deps["bb/bb"]["uri"].endswith(".deb") and len(deps["bb/bb"]["digest"]["sha256"]) == 64, "package dependency")
need(deps["src"]["digest"]["sha256"] == [i for i in m["inputs"] if i["name"] == "src"][0]["result"]["sha256"], "input dependency")
rd = s["predicate"]["runDetails"]
need(rd["builder"]["id"], "builder.id")
need(rd["metadata"]["invocationId"] == m["recipe"]["action"], "invocationId")
need(set(rd["metadata"]) == {"invocationId"}, "no times in metadata")
need(rd["byproducts"][0]["digest"]["sha256"] == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest(), "manifest byproduct")
print("statement ok")
EOF
same "the in-toto statement has the SLSA v1 fields (python3 json)" "$(cat "$OUT")" "statement ok"
diag_file "$ERR"

# ---- kbuild verify: another user, elsewhere, from the manifest and bundle ----
check "kbuild recipe --bundle writes what a verifier needs" kb recipe --bundle "$T/pub/v.bundle" --manifest "$T/pub/v.json" v
err_has "... saying so" "bundle $T/pub/v.bundle"
# verifier ENV... -- CMD: another HOME, XDG dirs, TZ, LANG, umask, no
# KBUILD_STORE, from another directory
mkdir -p "$T/other/home" "$T/other/cwd"
verifier() {
	(
		cd "$T/other/cwd" && umask 077 &&
			env -u KBUILD_STORE -u KBUILD_KEYS HOME="$T/other/home" \
				XDG_DATA_HOME="$T/other/home/.data" XDG_CONFIG_HOME="$T/other/home/.config" \
				XDG_CACHE_HOME="$T/other/home/.cache" TZ=Asia/Kathmandu LANG=de_DE.UTF-8 \
				LC_ALL=de_DE.UTF-8 USER=verifier LOGNAME=verifier "$KBUILD" "$@"
	)
}
t0=$(date +%s.%N)
check "kbuild verify: identical" verifier verify --bundle "$T/pub/v.bundle" "$T/pub/v.json"
diag "verify took $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s"
out_has "... says so, with counts" "verified: recipe v reproduces: 2 steps, 4 output files"
truth "... and leaves no temporary directory" sh -c "! ls '$T/tmp' | grep -q kbuild-verify"
truth "... and made no store for the verifier" [ ! -e "$T/other/home/.data/kbuild" ]
check "kbuild help verify" kb help verify
out_has "... describes it" "usage: kbuild verify"

# a manifest whose output hash was tampered with
python3 - "$T/pub/v.json" "$T/bad-hash.json" <<'EOF2'
import json, sys
m = json.load(open(sys.argv[1]))
for o in m["outputs"]:
    if o["path"] == "share/doc/copy":
        o["sha256"] = "0" * 64
json.dump(m, open(sys.argv[2], "w"), indent=2, sort_keys=True)
EOF2
expect_fail 1 "a tampered output hash: exit 1" verifier verify --bundle "$T/pub/v.bundle" "$T/bad-hash.json"
out_has "... naming the output" "output one/share/doc/copy: published sha256 0000000000000000000000000000000000000000000000000000000000000000"
err_has "... and saying it does not reproduce" "recipe v does not reproduce: 1 difference"

# bad input
echo "not json {" >"$T/garbage.json"
expect_fail 1 "a manifest that is not JSON" verifier verify "$T/garbage.json"
err_has "... says so, with where" "$T/garbage.json is not JSON (line 1"
python3 - "$T/pub/v.json" "$T/malformed.json" <<'EOF2'
import json, sys
m = json.load(open(sys.argv[1]))
m["steps"][1]["output"] = "xyz"
json.dump(m, open(sys.argv[2], "w"))
EOF2
expect_fail 1 "a manifest with a malformed hash" verifier verify "$T/malformed.json"
err_has "... names the field" "steps[1].output is 'xyz', not a SHA-256"
python3 - "$T/pub/v.json" "$T/nofield.json" <<'EOF2'
import json, sys
m = json.load(open(sys.argv[1]))
del m["inputs"][0]["result"]
json.dump(m, open(sys.argv[2], "w"))
EOF2
expect_fail 1 "a manifest missing a field" verifier verify "$T/nofield.json"
err_has "... names it" "inputs[0].result is missing"
echo '{"format": "kbuild-manifest", "version": 99}' >"$T/v99.json"
expect_fail 1 "a manifest of another version" verifier verify "$T/v99.json"
err_has "... says so" "manifest version other is not one this kbuild reads"
expect_fail 1 "a manifest that does not exist" verifier verify "$T/nope.json"
err_has "... names it" "$T/nope.json"
SRC=$(python3 -c 'import json,sys; print([i for i in json.load(open(sys.argv[1]))["inputs"] if i["name"]=="src"][0]["result"]["sha256"])' "$T/pub/v.json")
ONE=$(python3 -c 'import json,sys; print([s for s in json.load(open(sys.argv[1]))["steps"] if s["name"]=="one"][0]["output"])' "$T/pub/v.json")
kb store export -o "$T/partial.bundle" "$ONE" >/dev/null 2>&1
expect_fail 1 "a bundle missing an input" verifier verify --bundle "$T/partial.bundle" "$T/pub/v.json"
err_has "... names what is missing" "input 'src' (file): $SRC" "missing from the bundle $T/partial.bundle"
expect_fail 1 "a bundle that does not exist" verifier verify --bundle "$T/nope.bundle" "$T/pub/v.json"
err_has "... names it" "$T/nope.bundle"
check "without a bundle, from the publisher's store (--store)" \
	verifier --store "$KBUILD_STORE" verify "$T/pub/v.json"
out_has "... identical" "verified: recipe v reproduces"

# a step that is not reproducible: verify names the inner file
cat >>recipes/v.recipe <<'EOF2'
step "clock" {
    root = "bb"
    script = "mkdir -p /out/var; echo stable > /out/var/stable; (date +%s%N; echo $RANDOM$RANDOM) > /out/var/stamp"
    source_date_epoch = 1700000000
}
EOF2
kb lock v >/dev/null 2>&1
check "a recipe with a step that reads the clock builds" kb recipe --bundle "$T/pub/c.bundle" --manifest "$T/pub/c.json" v
expect_fail 1 "... verify finds it" verifier verify --bundle "$T/pub/c.bundle" --keep "$T/kept" "$T/pub/c.json"
out_has "... names the file" "output clock/var/stamp: published sha256"
out_has "... and kbuild diff explains it, down to the inner file" "kbuild diff of step clock" "var/stamp"
err_has "... and where both outputs are" "both outputs are in $T/kept/store"
truth "--keep keeps the rebuild's manifest" [ -s "$T/kept/rebuilt.json" ]
expect_fail 1 "--keep refuses a directory that is not empty" verifier verify --bundle "$T/pub/c.bundle" --keep "$T/kept" "$T/pub/c.json"
err_has "... saying so" "is not empty"

# ---- a signed kernel module: the verifier has no private key ----
KVER=$(ls "$FIX"/debs/linux-headers-*-amd64_*.deb 2>/dev/null |
	sed -n 's|.*/linux-headers-\([0-9][^_]*-amd64\)_.*|\1|p' | head -n1)
if [ ! -e "$FIX/debs/.complete" ] || [ -z "$KVER" ]; then
	ok "skipped: no fixture packages with kernel headers in $FIX/debs (run .ci/fixtures)"
	finish
fi
repo fx bookworm "$FIX"/debs/*.deb
export KBUILD_KEYS=$T/keys
{
	module_recipe "$KVER"
	# OpenPGP signatures the verifier cannot make either: a signed RPM, and
	# apt and rpm-md darksites
	echo 'rpm "hello-rpm" { tree = "hello-signed" name = "hello" version = "1.0" release = "1" kmod = "${kver}" license = "GPL" summary = "hello module" key = "site" source_date_epoch = 1700000000 }'
	echo 'darksite "apt-site" { packages = ["hello-deb"] key = "site" source_date_epoch = 1700000000 }'
	echo 'darksite "rpm-site" { packages = ["hello-rpm"] key = "site" source_date_epoch = 1700000000 }'
} >recipes/m.recipe
check "a module recipe locks" kb lock m
check "it builds, signs and packages, with a bundle" kb recipe --bundle "$T/pub/m.bundle" --manifest "$T/pub/m.json" m
keyline=$(sed -n 2p "$T/keys/mok.key")
truth "the private key is not in the manifest" sh -c "! grep -qF -- '$keyline' '$T/pub/m.json'"
truth "... nor in the bundle" sh -c "! grep -qaF -- '$keyline' '$T/pub/m.bundle'"
run python3 - "$T/pub/m.json" "$T/keys/mok.der" <<'EOF2'
import json, sys, base64
m = json.load(open(sys.argv[1]))
s = [s for s in m["steps"] if s["name"] == "hello-signed"][0]
ok = base64.b64decode(s["sign"]["certificate_der_base64"]) == open(sys.argv[2], "rb").read() and s["sign"]["key"] == "mok"
print("cert ok" if ok else "cert differs")
EOF2
same "the manifest carries the signing certificate (DER) and key name" "$(cat "$OUT")" "cert ok"
t0=$(date +%s.%N)
check "kbuild verify of the module recipe, without the key, as another user" \
	verifier verify --bundle "$T/pub/m.bundle" "$T/pub/m.json"
diag "verify of the module recipe took $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s"
out_has "... identical, the signed module, the RPM and both darksites included" \
	"verified: recipe m reproduces: 6 steps" "1 signed module and 4 OpenPGP signatures identical"
truth "... the verifier got no key directory" [ ! -e "$T/other/home/.config/kbuild/keys" ]
pgpline=$(sed -n 3p "$T/keys/site.pgp.sec")
truth "the OpenPGP secret key is in neither the manifest nor the bundle" \
	sh -c "! grep -qaF -- '$pgpline' '$T/pub/m.json' '$T/pub/m.bundle'"
run python3 - "$T/pub/m.json" "$T/keys/site.pgp.pub" <<'EOF2'
import json, sys
m = json.load(open(sys.argv[1]))
g = [s for s in m["steps"] if s["name"] == "apt-site"][0]["openpgp"]
print("key ok" if g["public_key"] == open(sys.argv[2]).read() and g["key"] == "site" and len(g["fingerprint"]) == 40 else "key differs")
EOF2
same "the manifest carries each darksite's public key, as the key directory has it" "$(cat "$OUT")" "key ok"
# the same recipe with its darksite key swapped after the build: the
# published signatures do not verify with the manifest's key
KBUILD_KEYS=$T/otherkeys kb key new --openpgp otherpgp >/dev/null 2>&1
FPR=$(KBUILD_KEYS=$T/otherkeys kb key list 2>/dev/null | awk '$1 == "otherpgp" {print $3}')
python3 - "$T/pub/m.json" "$T/otherkeys/otherpgp.pgp.pub" "$FPR" "$T/m-otherpgp.json" <<'EOF2'
import json, sys
m = json.load(open(sys.argv[1]))
for s in m["steps"]:
    if "openpgp" in s:
        s["openpgp"]["public_key"] = open(sys.argv[2]).read()
        s["openpgp"]["fingerprint"] = sys.argv[3]
json.dump(m, open(sys.argv[4], "w"))
EOF2
expect_fail 1 "a manifest whose OpenPGP key did not make the signatures" \
	verifier verify --bundle "$T/pub/m.bundle" "$T/m-otherpgp.json"
out_has "... says no published signature verifies" "a rebuilt clearsigned document (InRelease): no published signature verifies" \
	"a rebuilt RPM header signature: no published signature verifies"
out_has "... and names the files that differ" "output apt-site/dists/stable/InRelease: published sha256" \
	"output hello-rpm/kmod-hello-1.0-1.x86_64.rpm: published sha256"
python3 - "$T/pub/m.json" "$T/m-badfpr.json" <<'EOF2'
import json, sys
m = json.load(open(sys.argv[1]))
[s for s in m["steps"] if s["name"] == "apt-site"][0]["openpgp"]["fingerprint"] = "0" * 40
json.dump(m, open(sys.argv[2], "w"))
EOF2
expect_fail 1 "a manifest whose key has another fingerprint than it names" \
	verifier verify --bundle "$T/pub/m.bundle" "$T/m-badfpr.json"
err_has "... says so" "the OpenPGP key of step 'apt-site' has fingerprint" "not the 0000000000000000000000000000000000000000 the manifest names"
# a manifest naming another certificate than the one that signed
KBUILD_KEYS=$T/otherkeys kb key new other >/dev/null 2>&1
python3 - "$T/pub/m.json" "$T/otherkeys/other.der" "$T/m-othercert.json" <<'EOF2'
import json, sys, base64, hashlib
m = json.load(open(sys.argv[1]))
der = open(sys.argv[2], "rb").read()
s = [s for s in m["steps"] if s["name"] == "hello-signed"][0]
s["sign"]["certificate_der_base64"] = base64.b64encode(der).decode()
s["sign"]["certificate_sha256"] = hashlib.sha256(der).hexdigest()
json.dump(m, open(sys.argv[3], "w"))
EOF2
expect_fail 1 "a manifest whose certificate did not make the signatures" \
	verifier verify --bundle "$T/pub/m.bundle" "$T/m-othercert.json"
out_has "... the signature check fails, naming the module" \
	"hello-signed/lib/modules/$KVER/updates/hello.ko: the published signature does not verify"
out_has "... and the shipped certificate differs" "output hello-signed/usr/share/kbuild/mok.der: published sha256"
finish
