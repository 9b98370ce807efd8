#!/bin/bash
# The floor OpenSSL 3 itself sets on the memory of an idle, established
# TLS server connection, without the daemon: tls_floor (tls_floor.c)
# serves N connections that each did a handshake and one exchange of a
# line (as an SMTP session after AUTH), and prints per connection the
# bytes malloc holds, the bytes OpenSSL asked for (CRYPTO_set_mem_functions
# wrappers) and VmRSS, against a sample taken before them. For comparison
# with the daemon's idle_mem.sh (malloc in use per idle session).
#
#   tests/bench/tls_floor.sh [N]
#
# N (default 1000) connections, in four configurations: RSA-2048 TLS 1.3
# as the daemon (SSL_MODE_RELEASE_BUFFERS, read-ahead, tickets), ECDSA
# P-256 TLS 1.3, RSA TLS 1.2, RSA TLS 1.3 without release buffers. The
# open-file limit is raised to the hard limit. Work directory: a new
# /tmp/tls-floor.*, removed at the end; port BENCH_PORT (default 25390)
# on 127.0.0.1. Exit status 1 if any run failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
N=${1:-1000}
PORT=${BENCH_PORT:-25390}
case $N in
''|*[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;;
esac
WORK=$(mktemp -d /tmp/tls-floor.XXXXXX) || exit 1
trap 'rm -rf "$WORK"' EXIT
ulimit -n "$(ulimit -Hn)"
if [ "$N" -gt $(($(ulimit -n) - 64)) ]; then
	echo "N=$N needs more descriptors than the hard limit $(ulimit -n)" \
	     "allows" >&2
	exit 2
fi
make -s -f bench.mk -C "$here" OUT="$WORK" "$WORK/tls_floor" >/dev/null ||
	exit 1
if ! openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=localhost \
	-keyout "$WORK/rsa.key" -out "$WORK/rsa.crt" 2>/dev/null ||
   ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-days 3 -subj /CN=localhost \
	-keyout "$WORK/ec.key" -out "$WORK/ec.crt" 2>/dev/null; then
	echo "cannot make the certificates" >&2
	exit 1
fi

rc=0
run() {	# key, then tls_floor's options
	local key=$1
	shift
	# tls_floor gives up after 60 s; timeout is only a backstop. No
	# tcache: malloc counts the chunks it caches per thread as in use,
	# up to some 200 KB that would not divide away at small N.
	GLIBC_TUNABLES=glibc.malloc.tcache_count=0 \
	timeout 120 "$WORK/tls_floor" -n "$N" -p "$PORT" \
		-c "$WORK/$key.crt" -k "$WORK/$key.key" "$@" || rc=1
}
run rsa -R		# as the daemon
run ec -R
run rsa -R -1.2
run rsa -R -r
exit $rc
