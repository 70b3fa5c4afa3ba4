# tests/nginx.sh: a real nginx on 127.0.0.1 serving a directory, for tests
# that need a plain static server. Source after lib.sh:
#   nginx_start DIR      starts it; sets NGX_PORT, NGX_URL (http://127.0.0.1:PORT)
#   nginx_stop           stops it (also done when the script exits)
# Logs are in $T/nginx-*/access.log.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

nginx_start() {
	local root=$1 try i nginx
	nginx=$(command -v nginx || echo /usr/sbin/nginx)
	NGX_DIR=$(mktemp -d "$T/nginx-XXXXXX")
	mkdir -p "$NGX_DIR/tmp"
	for try in 1 2 3; do
		NGX_PORT=$(free_port)
		cat >"$NGX_DIR/nginx.conf" <<CONF
$([ "$(id -u)" = 0 ] && echo "user root root;")
daemon off;
worker_processes 1;
pid $NGX_DIR/nginx.pid;
error_log $NGX_DIR/error.log;
events { worker_connections 64; }
http {
	access_log $NGX_DIR/access.log;
	client_body_temp_path $NGX_DIR/tmp/body;
	proxy_temp_path $NGX_DIR/tmp/proxy;
	fastcgi_temp_path $NGX_DIR/tmp/fastcgi;
	uwsgi_temp_path $NGX_DIR/tmp/uwsgi;
	scgi_temp_path $NGX_DIR/tmp/scgi;
	types { }
	default_type application/octet-stream;
	server { listen 127.0.0.1:$NGX_PORT; root $root; }
}
CONF
		"$nginx" -p "$NGX_DIR" -c "$NGX_DIR/nginx.conf" >"$NGX_DIR/stderr" 2>&1 &
		NGX_PID=$!
		bg_track "$NGX_PID"
		for i in $(seq 100); do
			if port_up "$NGX_PORT"; then
				NGX_URL=http://127.0.0.1:$NGX_PORT
				return 0
			fi
			kill -0 "$NGX_PID" 2>/dev/null || break
			sleep 0.05
		done
		kill "$NGX_PID" 2>/dev/null
		wait "$NGX_PID" 2>/dev/null
	done
	fail "nginx did not start"
	diag_file "$NGX_DIR/stderr"
	return 1
}

nginx_stop() {
	[ -n "${NGX_PID:-}" ] || return 0
	kill "$NGX_PID" 2>/dev/null
	wait "$NGX_PID" 2>/dev/null
	NGX_PID=
}
