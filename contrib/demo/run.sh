#!/bin/bash
# Install what authrelay needs, build it, and run a demo on 127.0.0.1:
# authrelay on 1587 (STARTTLS) and 1465 (implicit TLS), demo users through
# PAM (pam_matrix via pam_wrapper, no system account touched), and a local
# sink on 2525 that keeps delivered mail in a folder. Ctrl-C stops it all.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
demo=${AUTHRELAY_DEMO_DIR:-/tmp/authrelay-demo}

if [ "$(id -u)" = 0 ] && [ -z "${AUTHRELAY_NO_APT:-}" ]; then
	bash "$top/.ci/install-packages"
fi

mkdir -p "$top/build"
cd "$top"
[ -x configure ] || autoreconf -fi
cd build
[ -f Makefile ] || ../configure --enable-warnings >/dev/null
make -j2 >/dev/null

rm -rf "$demo"
mkdir -p "$demo/pam.d" "$demo/mail"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$demo/key.pem" -out "$demo/cert.pem" 2>/dev/null
cat > "$demo/passdb" <<PW
alice:alice-demo:authrelay
bob:bob-demo:authrelay
PW
matrix=/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so
cat > "$demo/pam.d/authrelay" <<PAM
auth required $matrix passdb=$demo/passdb
account required $matrix passdb=$demo/passdb
PAM
cat > "$demo/authrelay.conf" <<CONF
[server]
hostname = localhost
listen = 127.0.0.1:1587 starttls
listen = 127.0.0.1:1465 tls

[tls]
cert = $demo/cert.pem
key = $demo/key.pem

[auth]
backend = pam
worker_path = $top/build/pam/authrelay-auth

[pam]
service = authrelay
address_domain = example.com

[relay]
smarthost = 127.0.0.1:2525
tls = none
CONF

/usr/bin/python3 "$top/contrib/demo/sink.py" --port 2525 --folder "$demo/mail" &
sink=$!
trap 'kill $sink 2>/dev/null; wait $sink 2>/dev/null' EXIT

cat <<MSG

authrelay demo
  submission: 127.0.0.1:1587 (STARTTLS), 127.0.0.1:1465 (implicit TLS)
  users:      alice / alice-demo, bob / bob-demo
  mail kept:  $demo/mail
Send a test message from another terminal:
  swaks --server 127.0.0.1:1587 --tls --tls-verify=0 --auth LOGIN \\
        --auth-user alice --auth-password alice-demo \\
        --from alice@example.com --to bob@example.com
Ctrl-C stops the demo.

MSG
LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$demo/pam.d" \
	"$top/build/proxy/authrelay" -c "$demo/authrelay.conf"
