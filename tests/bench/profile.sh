#!/bin/bash
# Where the daemon spends its instructions and system calls, per
# scenario of RESULTS.md (A new session + 10 KiB message, B messages on
# an open session, C 5 MB messages, D idle sessions' memory is run.sh's).
# callgrind counts instructions, so the figures do not move with the
# machine's other load (perf's hardware counters are not available in
# this VM: `perf stat -e instructions true` says <not supported>).
#
#   AUTHRELAY_BUILDDIR=/tmp/bN tests/bench/profile.sh [A B C] [strace]
#
# For each scenario: a fresh daemon (threads = 1, so one process and one
# loop carry everything) under valgrind --tool=callgrind (or strace -c -f
# with "strace"), smtp-sink as smarthost, loadgen as the client, a fixed
# count of sessions or messages; then the top functions by inclusive and
# self cost (callgrind_annotate), per session / message / MB. Only what
# runs inside sd_event_dispatch is counted: start-up (loading the CA
# bundle alone is 470 M instructions) stays out, the warm-up session
# (one handshake, one 10 KiB message) stays in (under 3 % of B). Work
# directory: $BENCH_DIR or a new /tmp/authrelay-prof.*; ports
# BENCH_PORT (default 25100) .. +3. PIPE=1: B's client pipelines
# MAIL/RCPT/DATA (loadgen -L). Every process started is stopped.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILDDIR=${AUTHRELAY_BUILDDIR:-/work/build-lead}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/authrelay-prof.XXXXXX)}
PORT=${BENCH_PORT:-25100}
TOOL=callgrind
SCEN=()
for a in "$@"; do
	case $a in strace) TOOL=strace ;; A|B|C) SCEN+=("$a") ;; *) echo "usage: $0 [A] [B] [C] [strace]" >&2; exit 2 ;; esac
done
[ ${#SCEN[@]} -gt 0 ] || SCEN=(A B C)
NA=${NA:-200} NB=${NB:-1000} NC=${NC:-10} SIZE_C=${SIZE_C:-5000000}
LIBDIR=/usr/lib/x86_64-linux-gnu
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
. "$here/lib.sh"
bench_setup "$WORK" || exit 1
cat > "$WORK/d.conf" <<CONF
[server]
hostname = bench.example
listen = 127.0.0.1:$((PORT + 1)) starttls
listen = 127.0.0.1:$((PORT + 2)) tls
threads = 1
max_connections = 20000
max_connections_per_ip = 20000
shutdown_timeout = 2s
[tls]
cert = $WORK/cert.pem
key = $WORK/key.pem
[auth]
backend = pam
worker_path = $BUILDDIR/pam/authrelay-auth
workers = 2
[pam]
service = authrelay
address_domain = example.com
[relay]
smarthost = 127.0.0.1:$PORT
tls = none
CONF
/usr/sbin/smtp-sink -u nobody -m 2000 "127.0.0.1:$PORT" 1024 >/dev/null 2>&1 &
PIDS+=($!)
LG=("$WORK/loadgen" -p $((PORT + 1)) -u alice -w Al1ce-bench-secret -t 120 -G 600 -q)
wait_port() { for _ in $(seq 1 300); do ss -Htln "sport = :$1" | grep -q . && return 0; sleep 0.1; done; return 1; }
for s in "${SCEN[@]}"; do
	out=$WORK/$s.$TOOL
	rm -f "$out".*
	if [ $TOOL = callgrind ]; then
		pre=(valgrind --tool=callgrind --trace-children=yes
		     "--trace-children-skip=*authrelay-auth*"
		     --toggle-collect=sd_event_dispatch "--callgrind-out-file=$out.%p")
	else
		pre=(strace -f ${STRACE_ARGS:--c} -o "$out.txt")
	fi
	LD_PRELOAD=$LIBDIR/libpam_wrapper.so PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$WORK/pam.d" \
		"${pre[@]}" "$BUILDDIR/proxy/authrelay" -c "$WORK/d.conf" \
		>"$WORK/$s.log" 2>&1 &
	dp=$!; PIDS+=($dp)
	wait_port $((PORT + 2)) || { echo "daemon did not start" >&2; tail "$WORK/$s.log"; exit 1; }
	# warm: workers, credential cache
	"${LG[@]}" -c 1 -n 1 -m 1 >/dev/null
	case $s in
	A) "${LG[@]}" -c 4 -n "$NA" -m 1 -s 10240; n=$NA unit=session ;;
	B) "${LG[@]}" -c 1 -n 1 -m "$NB" -s 1024 ${PIPE:+-L}; n=$NB unit=message ;;
	C) "${LG[@]}" -c 1 -n 1 -m "$NC" -s "$SIZE_C"; n=$((NC * SIZE_C / 1000000)) unit=MB ;;
	esac
	# strace does not always pass SIGTERM on: the daemon gets it itself
	if [ $TOOL = strace ]; then kill -TERM $(pgrep -P $dp) 2>/dev/null; else kill -TERM $dp; fi
	wait $dp
	echo "== scenario $s: $n ${unit}s (warm-up: one session, one 10 KiB message)"
	if [ $TOOL = callgrind ]; then
		# the network process: the largest profile
		f=$(ls -S "$out".* | head -1)
		[ -n "$f" ] || { echo "no profile written" >&2; exit 1; }
		tot=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
		echo "network process: $tot instructions, $((tot / n)) per $unit"
		callgrind_annotate --inclusive=yes "$f" 2>/dev/null | sed -n '/file:function/,$p' | head -${TOP:-25}
		callgrind_annotate "$f" 2>/dev/null | sed -n '/file:function/,$p' | head -${TOP:-25}
	else
		head -25 "$out.txt"
	fi
done
