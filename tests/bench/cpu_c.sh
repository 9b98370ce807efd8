#!/bin/bash
# Scenario C of RESULTS.md: server CPU per MB relayed, 5 MiB messages on
# 4 connections (STARTTLS, AUTH PLAIN, smtp-sink as smarthost), for one
# or more builds side by side: runs interleaved, medians. Server CPU is
# utime + stime of the daemon's whole process tree (supervisor, network
# process, workers; children that exited through cutime/cstime) from
# /proc, over the run; MB = 10^6 octets of message.
#
#   tests/bench/cpu_c.sh BUILDDIR [BUILDDIR...]
#
# RUNS [3], DUR [8] seconds, CONC [4], SIZE [5242880]; ports BENCH_PORT
# [25200] .. +2 per build; work directory BENCH_DIR or a new
# /tmp/authrelay-cpu.*. Everything started is stopped.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BUILDDIR [BUILDDIR...]" >&2; exit 2; }
RUNS=${RUNS:-3} DUR=${DUR:-8} CONC=${CONC:-4} SIZE=${SIZE:-5242880}
PORT=${BENCH_PORT:-25200}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/authrelay-cpu.XXXXXX)}
LIBDIR=/usr/lib/x86_64-linux-gnu
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
. "$here/lib.sh"
bench_setup "$WORK" || exit 1
HZ=$(getconf CLK_TCK)

# utime+stime+cutime+cstime (ticks) summed over pid and its descendants
tree_ticks() {
	local p sum=0 t
	for p in $1 $(pgrep -P "$1"); do
		t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null)
		sum=$((sum + ${t:-0}))
		[ "$p" != "$1" ] && for c in $(pgrep -P "$p"); do
			t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$c/stat" 2>/dev/null)
			sum=$((sum + ${t:-0}))
		done
	done
	echo $sum
}

/usr/sbin/smtp-sink -u nobody -m 2000 "127.0.0.1:$PORT" 1024 >/dev/null 2>&1 &
PIDS+=($!)
declare -a DP
i=0
for b in "$@"; do
	p=$((PORT + 1 + i))
	cat > "$WORK/d$i.conf" <<CONF
[server]
hostname = bench.example
listen = 127.0.0.1:$p starttls
threads = 2
max_connections = 1000
max_connections_per_ip = 1000
shutdown_timeout = 2s
[tls]
cert = $WORK/cert.pem
key = $WORK/key.pem
[auth]
backend = pam
worker_path = $b/pam/authrelay-auth
workers = 2
[pam]
service = authrelay
address_domain = example.com
[relay]
smarthost = 127.0.0.1:$PORT
tls = none
CONF
	LD_PRELOAD=$LIBDIR/libpam_wrapper.so PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$WORK/pam.d" \
		"$b/proxy/authrelay" -c "$WORK/d$i.conf" >"$WORK/d$i.log" 2>&1 &
	DP[$i]=$!; PIDS+=($!)
	for _ in $(seq 1 100); do ss -Htln "sport = :$p" | grep -q . && break; sleep 0.1; done
	i=$((i + 1))
done
LG=("$WORK/loadgen" -u alice -w Al1ce-bench-secret -t 30 -G 60 -q)
for r in $(seq 1 "$RUNS"); do
	for j in $(seq 0 $((i - 1))); do
		t0=$(tree_ticks "${DP[$j]}")
		out=$("${LG[@]}" -p $((PORT + 1 + j)) -c "$CONC" -d "$DUR" -m 0 \
			-s "$SIZE" | grep '^RESULT')
		t1=$(tree_ticks "${DP[$j]}")
		mb=$(echo "$out" | grep -o ' mb_per_s=[0-9.]*' | cut -d= -f2)
		el=$(echo "$out" | grep -o ' elapsed=[0-9.]*' | cut -d= -f2)
		echo "$j $(awk -v t=$((t1 - t0)) -v hz="$HZ" -v mb="$mb" -v el="$el" \
			'BEGIN { printf "%.3f %.1f", (mb * el > 0 ? t / hz * 1000 / (mb * el) : 0), mb }') $(echo "$out" | grep -o 'errors=[0-9]*')" >> "$WORK/res"
	done
done
med() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
j=0
for b in "$@"; do
	c=$(awk -v j=$j '$1 == j { print $2 }' "$WORK/res" | med)
	m=$(awk -v j=$j '$1 == j { print $3 }' "$WORK/res" | med)
	echo "$b: server CPU $c ms per MB, $m MB/s (medians; runs:" \
	     "$(awk -v j=$j '$1 == j { printf "%s %s MB/s %s; ", $2, $3, $4 }' "$WORK/res"))"
	j=$((j + 1))
done
