#!/bin/bash
# What an idle authenticated TLS session holds in the network process
# (RESULTS.md, scenario D): a fresh daemon (the bench's configuration:
# PAM through pam_wrapper, smtp-sink as smarthost, RSA-2048, threads = 2),
# N sessions opened by loadgen (-M idle: STARTTLS, AUTH PLAIN, then
# nothing), and the network process's VmRSS, Pss and malloc's bytes in
# use (glibc malloc_stats() called through gdb, all arenas) before and
# while they are held (TRIM=1: also after malloc_trim(0), what glibc's
# free lists hold between the sessions' objects).
#
#   AUTHRELAY_BUILDDIR=/tmp/bN tests/bench/idle_mem.sh [N [PORTS]]
#
# N defaults to 1000; PORTS (default 1) listeners on 127.0.0.1 share the
# sessions (one client address has about 28,000 ephemeral ports per
# server port). The open-file limit of the daemon and of loadgen is
# raised to the hard limit; more sessions than that allows are not
# tried. Work directory $BENCH_DIR or a new /tmp/authrelay-idle.*; ports
# BENCH_PORT (default 25300) .. +PORTS. Everything started is stopped.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILDDIR=${AUTHRELAY_BUILDDIR:-/work/build-lead}
N=${1:-1000}
NPORTS=${2:-1}
PORT=${BENCH_PORT:-25300}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/authrelay-idle.XXXXXX)}
LIBDIR=/usr/lib/x86_64-linux-gnu
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
if [ "$N" -gt $((NOFILE - 100)) ]; then
	echo "N=$N needs more descriptors than the hard limit $NOFILE allows" \
	     "(raising it needs CAP_SYS_RESOURCE)" >&2
	exit 2
fi
. "$here/lib.sh"
bench_setup "$WORK" || exit 1
ports=$(seq -s, $((PORT + 1)) $((PORT + NPORTS)))
{
	echo "[server]"
	echo "hostname = bench.example"
	for p in ${ports//,/ }; do echo "listen = 127.0.0.1:$p starttls"; done
	echo "threads = 2"
	echo "max_connections = $((N + 100))"
	echo "max_connections_per_ip = $((N + 100))"
	echo "shutdown_timeout = 2s"
	printf '[tls]\ncert = %s\nkey = %s\n' "$WORK/cert.pem" "$WORK/key.pem"
	printf '[auth]\nbackend = pam\nworker_path = %s\nworkers = 4\n' \
		"$BUILDDIR/pam/authrelay-auth"
	printf '[pam]\nservice = authrelay\naddress_domain = example.com\n'
	printf '[relay]\nsmarthost = 127.0.0.1:%s\ntls = none\n' "$PORT"
} > "$WORK/d.conf"
/usr/sbin/smtp-sink -u nobody "127.0.0.1:$PORT" 1024 >/dev/null 2>&1 &
PIDS+=($!)
LD_PRELOAD=$LIBDIR/libpam_wrapper.so PAM_WRAPPER=1 \
	PAM_WRAPPER_SERVICE_DIR="$WORK/pam.d" \
	"$BUILDDIR/proxy/authrelay" -c "$WORK/d.conf" >"$WORK/d.log" 2>&1 &
dp=$!; PIDS+=($dp)
for _ in $(seq 1 100); do ss -Htln "sport = :$((PORT + NPORTS))" | grep -q . && break; sleep 0.1; done
net=
for p in $(pgrep -P "$dp") "$dp"; do
	grep -q 'network' "/proc/$p/cmdline" 2>/dev/null && net=$p
done
[ -n "$net" ] || { echo "no network process" >&2; tail "$WORK/d.log"; exit 1; }
LG=("$WORK/loadgen" -u alice -w Al1ce-bench-secret)
"${LG[@]}" -p "$((PORT + 1))" -c 1 -n 1 -m 1 -q >/dev/null	# warm

# malloc_stats() prints, per arena and in total, "in use bytes"
in_use() {
	local before after
	before=$(wc -l < "$WORK/d.log")
	gdb -q -batch -p "$net" -ex 'call (void)malloc_stats()' >/dev/null 2>&1
	sleep 0.2
	tail -n +"$((before + 1))" "$WORK/d.log" |
		awk '/^Total/ {t = 1} t && /in use bytes/ {print $NF; exit}'
}
mem() {	# label
	echo "$1 rss_kib=$(awk '/^VmRSS:/ {print $2}' /proc/$net/status)" \
	     "pss_kib=$(awk '/^Pss:/ {print $2}' /proc/$net/smaps_rollup)" \
	     "malloc_in_use=$(in_use)" \
	     "fds=$(ls /proc/$net/fd | wc -l)"
}
m0=$(mem before)
out=$WORK/idle.out
"${LG[@]}" -M idle -p "$ports" -c "$N" -R 200 -T 600 -t 60 -G 120 \
	>"$out" 2>&1 &
lg=$!; PIDS+=($lg)
for _ in $(seq 1 3000); do	# up to 300 s
	grep -q '^IDLE_READY' "$out" && break
	kill -0 "$lg" 2>/dev/null || break
	sleep 0.1
done
sleep "${SETTLE:-11}"	# the daemon trims its heap every 10 s
m1=$(mem held)
if [ "${TRIM:-0}" = 1 ]; then	# what malloc_trim(0) gives back
	gdb -q -batch -p "$net" -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1
	echo "$(mem trimmed)"
fi
# a new session is served while they are held
"${LG[@]}" -p "$((PORT + 1))" -c 1 -n 1 -m 1 -q > "$WORK/new.out" 2>&1
newrc=$?
kill -TERM "$lg"; wait "$lg" 2>/dev/null
echo "$m0"
echo "$m1"
grep '^IDLE_READY' "$out" || { echo "loadgen did not get all sessions:"; tail -3 "$out"; }
echo "new session while held: rc=$newrc"
awk -v a="$m0" -v b="$m1" -v n="$N" 'BEGIN {
	split(a, x, /[ =]/); split(b, y, /[ =]/)
	printf "per session: rss %.2f KiB, pss %.2f KiB, malloc %.2f KiB\n",
	       (y[3] - x[3]) / n, (y[5] - x[5]) / n, (y[7] - x[7]) / 1024 / n }'
