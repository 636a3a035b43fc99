#!/usr/bin/env bash
# Checks deploy/nginx/header-source.conf and deploy/caddy/header-source.caddyfile
# as they run: nginx and Caddy in front of rcsso's header identity source,
# with the Rocket.Chat emulator and a stand-in for oauth2-proxy's /oauth2/auth
# (the cookie _oauth2_proxy=NAME says who the visitor is). Each proxy must let
# a logged-in visitor through as themselves, pass anonymous visitors on
# without identity headers (rcsso answers 401 with CORS headers), drop
# identity headers a client forges, and stop visitors the auth service
# refuses.
#
# Needs nginx, caddy and python3 (apt-get install nginx-light caddy) and free
# loopback ports 13000, 14180, 18080, 18443, 18444. Not part of CI.
# Usage: scripts/check-proxies.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for c in nginx caddy python3 curl; do
  command -v "$c" >/dev/null || { echo "needs $c (apt-get install nginx-light caddy python3 curl)"; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  [ -f "$work/nginx.pid" ] && nginx -p "$work" -c "$work/nginx.conf" -s quit 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/rcsso" ./cmd/rcsso

cat > "$work/auth.py" <<'EOF'
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        c = self.headers.get('Cookie', '')
        if not self.path.startswith('/oauth2/auth'):
            self.send_response(200); self.send_header('Content-Length', '0'); self.end_headers(); return
        if '_oauth2_proxy=alice' in c:
            self.send_response(202); self.send_header('X-Auth-Request-User', 'alice'); self.send_header('X-Auth-Request-Email', 'alice@example.test')
        elif '_oauth2_proxy=bob' in c:
            self.send_response(202); self.send_header('X-Auth-Request-User', 'bob')
        elif '_oauth2_proxy=nobody' in c:
            self.send_response(202)
        elif '_oauth2_proxy=deny' in c:
            self.send_response(403)
        else:
            self.send_response(401)
        self.send_header('Content-Length', '0'); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', 14180), H).serve_forever()
EOF
python3 "$work/auth.py" & pids+=($!)

"$work/rcsso" emulate --listen 127.0.0.1:13000 --admin-username admin --admin-password emu-admin-password \
  --create-tokens-secret emu-create-tokens-secret >"$work/emulator.log" 2>&1 & pids+=($!)

cat > "$work/rcsso.yaml" <<EOF
listen: 127.0.0.1:18080
public_url: http://sso.example.test:18443
rocketchat:
  url: http://127.0.0.1:13000
  admin_username: admin
  admin_password: emu-admin-password
  create_tokens_secret: emu-create-tokens-secret
identity:
  - type: header
    user_header: X-Forwarded-User
    email_header: X-Forwarded-Email
    groups_header: X-Forwarded-Groups
    trusted_proxies: [127.0.0.1/32, "::1/128"]
store:
  type: sqlite
  path: $work/rcsso.db
EOF

# The shipped files, on plain HTTP and the test ports.
sed -e 's/listen 443 ssl http2;/listen 127.0.0.1:18443;/' -e '/listen \[::\]:443/d' -e '/ssl_certificate/d' \
  -e 's/127.0.0.1:4180/127.0.0.1:14180/' -e 's/127.0.0.1:8080/127.0.0.1:18080/' \
  deploy/nginx/header-source.conf >"$work/site.conf"
printf 'pid %s/nginx.pid;\nerror_log %s/nginx-error.log;\nevents {}\nhttp {\n  access_log off;\n  include %s/site.conf;\n}\n' \
  "$work" "$work" "$work" >"$work/nginx.conf"
sed -e 's#^sso.example.com {#http://sso.example.test:18444 {#' -e 's/127.0.0.1:4180/127.0.0.1:14180/' \
  -e 's/127.0.0.1:8080/127.0.0.1:18080/' deploy/caddy/header-source.caddyfile >"$work/Caddyfile"

wait_for() { # URL
  for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer from $1"; exit 1
}
wait_for http://127.0.0.1:13000/api/info
"$work/rcsso" serve --config "$work/rcsso.yaml" >"$work/rcsso.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:18080/healthz
nginx -p "$work" -c "$work/nginx.conf"
HOME=$work XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work caddy run --config "$work/Caddyfile" --adapter caddyfile \
  >"$work/caddy.log" 2>&1 & pids+=($!)
wait_for http://127.0.0.1:18444/oauth2/sign_in

fail=0
check() { # PORT WANT-STATUS WANT-BODY-SUBSTRING DESCRIPTION [curl args]
  local port=$1 want=$2 body=$3 what=$4; shift 4
  local got
  got=$(curl -s -o "$work/body" -w '%{http_code}' -X POST -H 'Host: sso.example.test' \
    -H 'Origin: http://127.0.0.1:13000' "$@" "http://127.0.0.1:$port/api/rocketchat/token")
  if [ "$got" = "$want" ] && { [ -z "$body" ] || grep -q -- "$body" "$work/body"; }; then
    echo "ok    $port $what: $got"
  else
    echo "FAIL  $port $what: $got $(head -c 120 "$work/body")"; fail=1
  fi
}
for port in 18443 18444; do
  check $port 200 loginToken "logged in" -H 'Cookie: _oauth2_proxy=alice'
  check $port 200 loginToken "logged in, forged identity headers ignored" -H 'Cookie: _oauth2_proxy=alice' \
    -H 'X-Forwarded-User: mallory' -H 'X-Forwarded-User: mallory' -H 'X-Forwarded-Email: mallory@example.test'
  check $port 200 loginToken "logged in without an e-mail" -H 'Cookie: _oauth2_proxy=bob' -H 'X-Forwarded-Groups: admin'
  check $port 401 "not logged in" "anonymous"
  check $port 401 "not logged in" "anonymous with a forged user" -H 'X-Forwarded-User: mallory'
  check $port 401 "not logged in" "auth answers 2xx naming nobody" -H 'Cookie: _oauth2_proxy=nobody' -H 'X-Forwarded-User: mallory'
  check $port 403 "" "auth refuses" -H 'Cookie: _oauth2_proxy=deny'
done
people=$("$work/rcsso" people list --config "$work/rcsso.yaml")
if [ "$(echo "$people" | tail -n +2 | awk '{print $1}' | sort | tr '\n' ' ')" != "header:alice header:bob " ]; then
  echo "FAIL  rcsso knows other people than alice and bob:"; echo "$people"; fail=1
else
  echo "ok    rcsso knows exactly header:alice and header:bob"
fi
exit $fail
