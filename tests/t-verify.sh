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
for tool in dpkg-deb apt-ftparchive gpg busybox python3; do
	if ! command -v "$tool" >/dev/null; then
		ok "skipped: no $tool (.ci/setup installs it)"
		finish
	fi
done
if [ "$(id -u)" != 0 ] && ! unshare -Ur true 2>/dev/null; then
	ok "skipped: no user namespaces here, so no sandbox"
	finish
fi

WWW=$T/www
P=$T/proj
mkdir -p "$WWW" "$P/recipes" "$P/keys" "$P/src"
export GNUPGHOME=$T/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --passphrase '' --quick-gen-key 'kbuild test archive <archive@kbuild.test>' \
	rsa3072 sign never >"$T/gpg.log" 2>&1 || {
	fail "making a test key with gpg"
	finish
}
gpg --armor --export >"$P/keys/archive.asc"

# repo NAME SUITE DEB...: a signed apt repository at $WWW/NAME
repo() {
	local name=$1 suite=$2 d
	shift 2
	d=$WWW/$name/dists/$suite
	rm -rf "${WWW:?}/$name"
	mkdir -p "$WWW/$name/pool/main" "$d/main/binary-amd64"
	ln -f "$@" "$WWW/$name/pool/main/" 2>/dev/null || cp "$@" "$WWW/$name/pool/main/"
	(cd "$WWW/$name" && apt-ftparchive --arch amd64 packages pool) >"$d/main/binary-amd64/Packages"
	apt-ftparchive -o APT::FTPArchive::Release::Suite="$suite" \
		-o APT::FTPArchive::Release::Codename="$suite" \
		-o APT::FTPArchive::Release::Architectures=amd64 \
		-o APT::FTPArchive::Release::Components=main release "$d" >"$T/Release"
	mv "$T/Release" "$d/Release"
	gpg --batch --yes --clearsign -o "$d/InRelease" "$d/Release" 2>>"$T/gpg.log"
}
mkdir -p "$T/debsrc/bb/DEBIAN" "$T/debsrc/bb/usr/bin" "$T/debs"
printf 'Package: bb\nVersion: 1.0\nArchitecture: amd64\nMaintainer: t <t@kbuild.test>\nDescription: busybox\n' \
	>"$T/debsrc/bb/DEBIAN/control"
cp "$(command -v busybox)" "$T/debsrc/bb/usr/bin/busybox"
for c in sh cat echo date mkdir cp ls printf tr sort; do ln -s busybox "$T/debsrc/bb/usr/bin/$c"; done
dpkg-deb -Zgzip --root-owner-group --build "$T/debsrc/bb" "$T/debs/bb_1.0_amd64.deb" >/dev/null
repo small t "$T/debs/bb_1.0_amd64.deb"
nginx_start "$WWW" || finish

upstream() { # NAME REPO SUITE
	printf 'upstream "%s" {\n    type = "apt"\n    url = "%s/%s"\n    suite = "%s"\n' "$1" "$NGX_URL" "$2" "$3"
	printf '    components = ["main"]\n    architectures = ["amd64"]\n    keyring = "archive"\n}\n'
}
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
finish
