#!/usr/bin/env bash
# fetch url: downloads over HTTP and HTTPS from a real nginx on 127.0.0.1
# land in the store only when they hash right; redirects, retries, resumed
# transfers, parallel fetches and --offline; failures leave nothing behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nginx.sh" # free_port, port_up

S=$KBUILD_STORE
export KBUILD_RETRY_DELAY_MS=50
unset KBUILD_CA_BUNDLE

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ] || ! command -v openssl >/dev/null; then
	diag "nginx or openssl is missing: nothing tested"
	ok "skipped: no nginx/openssl"
	finish
fi

N=$T/nginx
WWW=$N/www
mkdir -p "$WWW/files" "$WWW/slow" "$WWW/norange" "$N/logs" "$N/tmp"

# ---- content ----
head -c 100000 /dev/urandom >"$WWW/files/a.bin"
printf 'hello from nginx\n' >"$WWW/files/b.txt"
# each case below fetches content of its own: what the store has already
# is never downloaded
printf 'hashes to something else\n' >"$WWW/files/w.txt"
printf 'reached through a redirect\n' >"$WWW/files/r.txt"
printf 'reached through a redirect to https\n' >"$WWW/files/t.txt"
: >"$WWW/files/empty"
for i in 1 2 3 4 5 6 7 8; do
	head -c $((150000 + i * 37000)) /dev/urandom >"$WWW/files/p$i.bin"
done
head -c 3000000 /dev/urandom >"$WWW/slow/big.bin"
head -c 3000000 /dev/urandom >"$WWW/norange/big.bin"
head -c 200000 /dev/urandom >"$WWW/files/tty.bin"
A=$(sha "$WWW/files/a.bin")
B=$(sha "$WWW/files/b.txt")
BIG=$(sha "$WWW/slow/big.bin")
BIG2=$(sha "$WWW/norange/big.bin")
NOPE=$(sha_str "content nobody serves")
W=$(sha "$WWW/files/w.txt")

# ---- a throwaway CA and a server certificate for 127.0.0.1/localhost ----
(
	cd "$N" &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout ca.key -out ca.pem -days 2 -subj /CN=kbuild-test-ca \
			-addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout srv.key -out srv.csr -subj /CN=localhost &&
		printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
			'basicConstraints=CA:FALSE' 'extendedKeyUsage=serverAuth' >srv.ext &&
		openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-out srv.pem -days 2 -extfile srv.ext
) >"$N/openssl.log" 2>&1 || {
	fail "making a test CA with openssl"
	diag_file "$N/openssl.log"
	finish
}

# ---- nginx ----

write_conf() {
	local user=
	[ "$(id -u)" = 0 ] && user="user root root;"
	cat >"$N/nginx.conf" <<EOF
$user
daemon off;
worker_processes 1;
pid $N/nginx.pid;
error_log $N/logs/error.log info;
events { worker_connections 64; }
http {
	log_format t '\$request_method \$request_uri \$status "\$http_range" \$body_bytes_sent';
	access_log $N/logs/access.log t;
	client_body_temp_path $N/tmp/body;
	proxy_temp_path $N/tmp/proxy;
	fastcgi_temp_path $N/tmp/fastcgi;
	uwsgi_temp_path $N/tmp/uwsgi;
	scgi_temp_path $N/tmp/scgi;
	types { }
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$HP;
		listen 127.0.0.1:$SP ssl http2;
		ssl_certificate $N/srv.pem;
		ssl_certificate_key $N/srv.key;
		root $WWW;
		location /slow/ { limit_rate 1200k; }
		location /norange/ { limit_rate 1200k; max_ranges 0; }
		location = /loop { return 302 /loop; }
		location = /redir { return 302 /files/r.txt; }
		location = /to-https { return 302 https://127.0.0.1:$SP/files/t.txt; }
		location = /unavailable { return 503; }
	}
}
EOF
}

NGX_PID=
start_nginx() {
	local try i
	for try in 1 2 3; do
		HP=$(free_port) SP=$(free_port)
		[ "$HP" != "$SP" ] || continue
		write_conf
		"$NGINX" -p "$N" -c "$N/nginx.conf" >>"$N/logs/stderr" 2>&1 &
		NGX_PID=$!
		for i in $(seq 100); do
			if port_up "$HP" && port_up "$SP"; then
				return 0
			fi
			kill -0 "$NGX_PID" 2>/dev/null || break
			sleep 0.05
		done
		stop_nginx
	done
	return 1
}
stop_nginx() {
	[ -n "$NGX_PID" ] || return 0
	kill -TERM "$NGX_PID" 2>/dev/null
	wait "$NGX_PID" 2>/dev/null
	NGX_PID=
}
trap 'stop_nginx; _kb_cleanup' EXIT

if ! start_nginx; then
	fail "starting nginx"
	diag_file "$N/logs/stderr"
	diag_file "$N/logs/error.log"
	finish
fi
H=http://127.0.0.1:$HP
HS=https://127.0.0.1:$SP
CA=$N/ca.pem
LOG=$N/logs/access.log
diag "nginx on $H and $HS"

# hits URI: access-log lines for URI (nginx writes them as requests end)
hits() { grep -c "^GET $1 " "$LOG"; }
# nothing left in the store from a failed fetch: same objects, empty tmp/
unchanged() {
	same "$1: no new objects" "$(objects)" "$2"
	same "$1: nothing left in the store's tmp/" "$(ls -A "$S/tmp" 2>/dev/null)" ""
}

# ---- 1. good fetches over HTTP and HTTPS ----
check "fetch over http" kb fetch url "$H/files/a.bin" "$A"
same "it prints the content's hash" "$(cat "$OUT")" "$A"
err_has "it says what it fetched" "fetched $H/files/a.bin (100000 bytes)"
kb store cat "$A" >"$T/a.out" 2>"$T/cat.err"
same_file "the stored blob is the served file" "$T/a.out" "$WWW/files/a.bin"

KBUILD_CA_BUNDLE=$CA check "fetch over https (CA from KBUILD_CA_BUNDLE)" kb fetch url "$HS/files/b.txt" "$B"
same "https: prints the hash" "$(cat "$OUT")" "$B"
same "https: the stored blob is the served file" "$(kb store cat "$B")" "hello from nginx"

E=$(sha "$WWW/files/empty")
check "fetch of an empty file" kb fetch url "$H/files/empty" "$E"
same "empty file: stored" "$(kb store cat "$E" | wc -c)" 0

n=$(hits /files/a.bin)
check "fetching what the store has" kb fetch url "$H/files/a.bin" "$A"
same "... prints the hash" "$(cat "$OUT")" "$A"
same "... does not download it again" "$(hits /files/a.bin)" "$n"

check "-q: no lines on stderr" kb -q fetch url "$H/files/p1.bin" "$(sha "$WWW/files/p1.bin")"
same "-q: stderr is empty" "$(cat "$ERR")" ""

# ---- 2. wrong hash ----
before=$(objects)
expect_fail 1 "wrong hash fails" kb fetch url "$H/files/w.txt" "$NOPE"
err_has "wrong hash: says the hash differs, names the URL" "$H/files/w.txt" "sha256" "$W" "$NOPE"
same "wrong hash: the file was downloaded" "$(hits /files/w.txt)" 1
unchanged "wrong hash" "$before"

# ---- 3. a dropped connection is resumed ----
# big.bin trickles at 1.2 MB/s; once the download has some bytes, the
# nginx worker is killed (the master starts another) and the fetch must
# carry on with a Range request
# wait_staged: until a staged download in $S/tmp holds some bytes
wait_staged() {
	local i f sz
	for i in $(seq 400); do
		for f in "$S"/tmp/txn-*/*; do
			[ -f "$f" ] || continue
			sz=$(stat -c %s "$f" 2>/dev/null || echo 0)
			[ "$sz" -gt 300000 ] && return 0
		done
		sleep 0.02
	done
	return 1
}
# drop_mid_transfer URI HASH DESC: fetch with -v, kill the worker midway
drop_mid_transfer() {
	local uri=$1 hash=$2 desc=$3 pid w
	RC=0
	"$KBUILD" -v fetch url "$H$uri" "$hash" >"$OUT" 2>"$ERR" &
	pid=$!
	if wait_staged; then
		w=$(pgrep -P "$NGX_PID")
		if [ -n "$w" ]; then
			kill -KILL $w
		else
			diag "$desc: no nginx worker found"
		fi
	else
		diag "$desc: the download never started"
	fi
	wait "$pid" || RC=$?
	_kb_sancheck "$desc" || true
	if [ "$RC" -eq 0 ]; then ok "$desc: fetch succeeds"; else
		fail "$desc: fetch succeeds (exit $RC)"
		diag_file "$ERR"
	fi
	same "$desc: right hash" "$(cat "$OUT")" "$hash"
	kb store cat "$hash" >"$T/big.out"
	same_file "$desc: the stored blob is the served file" "$T/big.out" "$WWW$uri"
}
drop_mid_transfer /slow/big.bin "$BIG" "killed worker"
truth "killed worker: nginx saw a Range request answered with 206" \
	grep -qE '^GET /slow/big.bin 206 "bytes=[0-9]+-"' "$LOG"
err_has "killed worker: kbuild says it resumed" "resuming at byte"

# the same, from a location that ignores Range: the blob starts over
drop_mid_transfer /norange/big.bin "$BIG2" "server ignores Range"
truth "server ignores Range: nginx answered a Range request with 200" \
	grep -qE '^GET /norange/big.bin 200 "bytes=[0-9]+-"' "$LOG"
err_has "server ignores Range: kbuild started over" "does not resume"

# ---- 4. 404: one clear error, no retries ----
before=$(objects)
expect_fail 1 "404 fails" kb fetch url "$H/files/missing" "$NOPE"
err_has "404: names the URL and the status" "$H/files/missing" "HTTP 404"
err_lines "404: one line on stderr" 1
same "404: asked once (no retries)" "$(hits /files/missing)" 1
unchanged "404" "$before"

# ---- 5. redirects ----
before=$(objects)
expect_fail 1 "redirect loop fails" kb fetch url "$H/loop" "$NOPE"
err_has "redirect loop: clear error naming the URL" "$H/loop" "redirect loop"
unchanged "redirect loop" "$before"
R=$(sha "$WWW/files/r.txt")
check "a redirect to the file is followed" kb fetch url "$H/redir" "$R"
same "redirect: right hash" "$(cat "$OUT")" "$R"
same "redirect: nginx redirected once" "$(grep -c '^GET /redir 302' "$LOG")" 1
same "redirect: the stored blob is the file" "$(kb store cat "$R")" "reached through a redirect"
TH=$(sha "$WWW/files/t.txt")
KBUILD_CA_BUNDLE=$CA check "a redirect from http to https" kb fetch url "$H/to-https" "$TH"
same "redirect to https: right hash" "$(cat "$OUT")" "$TH"
same "redirect to https: got the file" "$(hits /files/t.txt)" 1

# ---- 6. 5xx: retried, then a clear error ----
before=$(objects)
expect_fail 1 "503 fails after retries" kb fetch url "$H/unavailable" "$NOPE"
err_has "503: names the URL, the status and the attempts" "$H/unavailable" "HTTP 503" \
	"gave up after 5 attempts"
same "503: asked retries+1 = 5 times" "$(hits /unavailable)" 5
unchanged "503" "$before"

# ---- 7. HTTPS with an untrusted certificate ----
before=$(objects)
expect_fail 1 "https without the CA fails" kb fetch url "$HS/files/a.bin" "$NOPE"
err_has "untrusted certificate: clear error naming the URL" "$HS/files/a.bin" "certificate"
unchanged "untrusted certificate" "$before"

# ---- 8. parallel ----
args=()
for i in 1 2 3 4 5 6 7 8; do
	[ $((i % 2)) = 0 ] && base=$HS || base=$H
	args+=("$base/files/p$i.bin" "$(sha "$WWW/files/p$i.bin")")
done
KBUILD_CA_BUNDLE=$CA check "8 files, http and https, --jobs 4" kb fetch url --jobs 4 "${args[@]}"
want=$(for i in 1 2 3 4 5 6 7 8; do sha "$WWW/files/p$i.bin"; done)
same "parallel: every hash, in order" "$(cat "$OUT")" "$want"
bad=0
for i in 2 3 4 5 6 7 8; do # p1 was there already
	kb store cat "$(sha "$WWW/files/p$i.bin")" | cmp -s - "$WWW/files/p$i.bin" || bad=1
done
same "parallel: every stored blob is its file" "$bad" 0
same "parallel: one 'fetched' line per new file" "$(grep -c '^fetched ' "$ERR")" 7

# some fail, some succeed: the failures are all named, the others land
before=$(objects)
C=$(sha_str "hello again")
printf 'hello again' >"$WWW/files/c.txt"
expect_fail 1 "a batch with two failures fails" kb fetch url "$H/files/c.txt" "$C" \
	"$H/files/missing2" "$NOPE" "$H/files/w.txt" "$(sha_str "not w.txt either")"
err_has "batch: names both failures" "2 of 3 downloads failed" "$H/files/missing2" \
	"HTTP 404" "$H/files/w.txt" "sha256"
same "batch: the good one landed" "$(kb store cat "$C")" "hello again"
same "batch: only that one is new" "$(objects | wc -l)" $(($(printf '%s\n' "$before" | wc -l) + 1))

# ---- progress bar on a terminal ----
if command -v script >/dev/null; then
	RC=0
	KBUILD_BIN=$KBUILD URL="$H/files/tty.bin" HASH=$(sha "$WWW/files/tty.bin") \
		script -qec '"$KBUILD_BIN" fetch url "$URL" "$HASH" >/dev/null' /dev/null \
		>"$T/tty.out" 2>&1 </dev/null || RC=$?
	_kb_sancheck "fetch on a terminal" || true
	same "on a terminal: succeeds" "$RC" 0
	truth "on a terminal: a progress bar, finished with a summary" \
		grep -q "fetched 1 of 1 files" "$T/tty.out"
fi

# ---- 9. --offline ----
stop_nginx
check "--offline: what the store has needs no network" kb fetch url --offline "$H/files/a.bin" "$A"
same "--offline: prints the hash" "$(cat "$OUT")" "$A"
before=$(objects)
expect_fail 1 "--offline: what the store lacks fails" kb fetch url --offline "$H/files/new.bin" "$NOPE"
err_has "--offline: says it is not in the store and the network is off" "$H/files/new.bin" \
	"not in the store" "offline"
unchanged "--offline" "$before"

# the server is gone: connection failures are retried, then a clear error
expect_fail 1 "connection refused fails after retries" kb fetch url "$H/files/new.bin" "$NOPE"
err_has "connection refused: names the URL and the attempts" "$H/files/new.bin" \
	"cannot connect" "gave up after 5 attempts"
unchanged "connection refused" "$before"

# ---- 10. bad arguments ----
expect_fail 2 "a sha256 that is not hex is a usage error" kb fetch url "$H/files/a.bin" "not-a-hash"
err_has "bad sha256: says so" "not a sha256"
expect_fail 2 "a URL without its hash is a usage error" kb fetch url "$H/files/a.bin"
expect_fail 1 "a non-http URL fails" kb fetch url "ftp://127.0.0.1/x" "$NOPE"
err_has "non-http URL: says so" "ftp://127.0.0.1/x" "http"

finish
