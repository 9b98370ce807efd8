#!/bin/bash
# authrelay benchmark (DESIGN.md "Speed and memory"). Everything runs on
# 127.0.0.1: Postfix smtp-sink as the smarthost, authrelay with a
# generated certificate and pam_wrapper users, openssl s_server for the
# TLS handshake baseline, tests/bench/loadgen as the clients. Each
# scenario runs RUNS times, interleaved with its baseline, and the
# medians are printed. Everything started here is stopped on exit.
#
#   tests/bench/run.sh            (about 3-5 minutes)
#
# Environment (defaults in brackets):
#   AUTHRELAY_BUILDDIR  build tree with proxy/authrelay, pam/authrelay-auth
#                       [/work/build-lead]
#   RUNS [5]  DUR [2] seconds per throughput run  CONC [32] sessions for
#   the new-session scenarios  HS_CONC [8] handshake clients  HS_SERVERS [8]
#   openssl s_server processes (it serves one connection at a time)
#   IDLE_N [1000]  BIG_N [10000]
#   (0 skips)  LARGE [20000000] octets  MID [200000] octets
#   NODELAY_DEMO [0]: also run a daemon with tests/bench/nodelay_shim.c
#   preloaded (TCP_NODELAY on its sockets). The daemon sets TCP_NODELAY
#   itself since bf4d934, so this changes nothing any more; it is kept
#   for builds older than that. The summary checks for the delayed-ACK
#   stall without it (pipelined message and session setup latency).
#   STALL_PROBE [1]: after the throughput runs, run stall_probe.py (auth
#   and mail) against the main daemon (the thread stall fixed in bf4d934)
#   BENCH_PORT [25000]: first of the ports used (25000-25019)
#   BENCH_DIR: work directory (default: a new /tmp/authrelay-bench.*);
#   KEEP=1 keeps it (logs), otherwise only summary.txt is kept
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
BUILDDIR=${AUTHRELAY_BUILDDIR:-/work/build-lead}
DAEMON=${AUTHRELAY_BIN:-$BUILDDIR/proxy/authrelay}
WORKER=${AUTHRELAY_AUTH_WORKER:-$BUILDDIR/pam/authrelay-auth}
RUNS=${RUNS:-5}
DUR=${DUR:-2}
CONC=${CONC:-32}
HS_CONC=${HS_CONC:-8}
IDLE_N=${IDLE_N:-1000}
BIG_N=${BIG_N:-10000}
LARGE=${LARGE:-20000000}
MID=${MID:-200000}
NODELAY_DEMO=${NODELAY_DEMO:-0}
STALL_PROBE=${STALL_PROBE:-1}
PORT=${BENCH_PORT:-25000}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/authrelay-bench.XXXXXX)}
KEEP=${KEEP:-0}
LIBDIR=/usr/lib/x86_64-linux-gnu
PAM_MATRIX=$LIBDIR/pam_wrapper/pam_matrix.so
PAM_WRAPPER=$LIBDIR/libpam_wrapper.so
USER_NAME=alice
USER_PASS='Al1ce-bench-secret'

P_SINK=$PORT
HS_SERVERS=${HS_SERVERS:-8}	# openssl s_server processes (ports +1..+8)
[ "$HS_SERVERS" -ge 1 ] && [ "$HS_SERVERS" -le 8 ] || HS_SERVERS=8
SS_PORTS=$(seq -s, $((PORT + 1)) $((PORT + HS_SERVERS)))
# daemon instances: name -> starttls port, implicit TLS port
declare -A P_STARTTLS=([main]=$((PORT + 10)) [nocache]=$((PORT + 12))
	[nodelay]=$((PORT + 14)) [large]=$((PORT + 16)) [idle]=$((PORT + 18)))
declare -A P_TLS=([main]=$((PORT + 11)) [nocache]=$((PORT + 13))
	[nodelay]=$((PORT + 15)) [large]=$((PORT + 17)) [idle]=$((PORT + 19)))
declare -A DPID=()
PIDS=()			# everything else we started
POLICY_CREATED=0
T_START=$(date +%s)

log() { printf '%s [%3ds] %s\n' "$(date +%T)" $(($(date +%s) - T_START)) "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# Stop a process we started: SIGTERM, bounded wait, SIGKILL. Its children
# (auth workers) are collected first and get the same.
stop_pid() {
	local pid=$1 kids i
	kill -0 "$pid" 2>/dev/null || return 0
	kids=$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ')
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid${2:+ ($2)} still running 3 s after SIGTERM: SIGKILL"
		echo "${2:-pid $pid}" >> "$WORK/res/sigkilled"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	for k in $kids; do kill -KILL "$k" 2>/dev/null; done
	return 0
}

cleanup() {
	local name pid
	trap - EXIT INT TERM
	[ -n "${CUR_LG:-}" ] && stop_pid "$CUR_LG"
	for name in "${!DPID[@]}"; do stop_pid "${DPID[$name]}"; done
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	if [ "$POLICY_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
	if [ "$KEEP" != 1 ] && [ -d "$WORK" ]; then
		find "$WORK" -mindepth 1 -maxdepth 1 ! -name summary.txt \
			-exec rm -rf {} + 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# --------------------------------------------------------------------------
# Prerequisites

if ! [ -x /usr/sbin/smtp-sink ]; then
	[ "$(id -u)" = 0 ] || die "smtp-sink missing (apt-get install postfix)"
	log "installing postfix (for smtp-sink), no service started"
	if ! [ -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		POLICY_CREATED=1
	fi
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q \
		--no-install-recommends postfix >"$WORK/apt.log" 2>&1 ||
		die "apt-get install postfix failed (see $WORK/apt.log)"
	if [ "$POLICY_CREATED" = 1 ]; then
		rm -f /usr/sbin/policy-rc.d
		POLICY_CREATED=0
	fi
fi
for f in "$DAEMON" "$WORKER"; do
	[ -x "$f" ] || die "$f not built (cd $BUILDDIR && make)"
done
for f in "$PAM_MATRIX" "$PAM_WRAPPER"; do
	[ -e "$f" ] || die "$f missing (apt-get install libpam-wrapper)"
done
for p in $(seq "$PORT" $((PORT + 19))); do
	if ss -Htln "sport = :$p" | grep -q .; then
		die "port $p is in use (set BENCH_PORT)"
	fi
done

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
if [ "$BIG_N" -gt 0 ] && [ "$NOFILE" -lt $((BIG_N + 200)) ]; then
	log "ulimit -n is $NOFILE: BIG_N lowered"
	BIG_N=$((NOFILE - 200))
fi

mkdir -p "$WORK/res" "$WORK/pam.d"
log "work directory $WORK"
# The build tree may be rebuilt while we run: every instance runs the same
# copy.
cp "$DAEMON" "$WORK/authrelay" && cp "$WORKER" "$WORK/authrelay-auth" ||
	die "cannot copy the binaries"
DAEMON_SRC=$DAEMON
DAEMON_BUILT=$(stat -c %y "$DAEMON_SRC" | cut -d. -f1)
GIT_AT_START=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?')
if [ "$GIT_AT_START" = '?' ]; then
	GIT_SRC_STATE='?'
elif [ -n "$(git -C "$here/../.." status --porcelain -- proxy common pam 2>/dev/null)" ]; then
	GIT_SRC_STATE='uncommitted changes'
else
	GIT_SRC_STATE='clean'
fi
DAEMON=$WORK/authrelay
WORKER=$WORK/authrelay-auth
make -s -f bench.mk -C "$here" OUT="$WORK" CFLAGS="-O2 -g -Wall -Wextra" >/dev/null ||
	die "cannot build loadgen"
LOADGEN=$WORK/loadgen

# --------------------------------------------------------------------------
# Certificate, PAM users, configs

openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null ||
	die "openssl req failed"
chmod 600 "$WORK/key.pem"
echo "$USER_NAME:$USER_PASS:authrelay" > "$WORK/passdb"
printf 'auth required %s passdb=%s\naccount required %s passdb=%s\n' \
	"$PAM_MATRIX" "$WORK/passdb" "$PAM_MATRIX" "$WORK/passdb" \
	> "$WORK/pam.d/authrelay"

write_conf() {	# name [extra [auth] lines]
	local name=$1 extra=${2:-}
	cat > "$WORK/$name.conf" <<CONF
[server]
hostname = bench.example
listen = 127.0.0.1:${P_STARTTLS[$name]} starttls
listen = 127.0.0.1:${P_TLS[$name]} tls
threads = 2
max_connections = 20000
max_connections_per_ip = 20000
command_timeout = 5m
data_timeout = 10m
shutdown_timeout = 2s

[tls]
cert = $WORK/cert.pem
key = $WORK/key.pem

[auth]
backend = pam
worker_path = $WORKER
workers = 4
$extra

[pam]
service = authrelay
address_domain = example.com

[relay]
smarthost = 127.0.0.1:$P_SINK
tls = none
CONF
}
write_conf main
write_conf nocache "cache_ttl = 0"
write_conf nodelay
write_conf large
write_conf idle
"$DAEMON" -t -c "$WORK/main.conf" || die "config check failed"

start_daemon() {	# name [LD_PRELOAD extra]
	local name=$1 pre=${2:-} i
	LD_PRELOAD="$PAM_WRAPPER${pre:+ $pre}" PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$WORK/pam.d" \
		"$DAEMON" -c "$WORK/$name.conf" \
		>>"$WORK/$name.log" 2>&1 </dev/null &
	DPID[$name]=$!
	for i in $(seq 1 100); do
		if ss -Htln "sport = :${P_TLS[$name]}" | grep -q .; then
			# one session so workers and caches are warm
			"$LOADGEN" -p "${P_STARTTLS[$name]}" -c 1 -n 1 -m 1 -q \
				-u "$USER_NAME" -w "$USER_PASS" -t 10 -G 20 \
				>/dev/null || log "warm-up session on $name failed"
			return 0
		fi
		kill -0 "${DPID[$name]}" 2>/dev/null || break
		sleep 0.1
	done
	tail -5 "$WORK/$name.log" >&2
	die "authrelay ($name) did not start"
}
stop_daemon() {
	stop_pid "${DPID[$1]}" "authrelay $1"
	unset "DPID[$1]"
}
# The network process (the supervisor's child titled "authrelay: network")
# holds the sessions; the supervisor's own memory does not grow with them.
net_pid() {
	local kid
	for kid in $(pgrep -P "$1" 2>/dev/null); do
		if tr '\0' ' ' < "/proc/$kid/cmdline" 2>/dev/null |
			grep -q '^authrelay: network'; then
			echo "$kid"
			return
		fi
	done
	echo "$1"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$(net_pid "$1")/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$(net_pid "$1")/status" 2>/dev/null || echo 0; }

# --------------------------------------------------------------------------
# Servers

/usr/sbin/smtp-sink -u nobody -m 2000 "127.0.0.1:$P_SINK" 1024 \
	>"$WORK/smtp-sink.log" 2>&1 &
PIDS+=($!)
for p in ${SS_PORTS//,/ }; do
	openssl s_server -quiet -www -accept "127.0.0.1:$p" \
		-cert "$WORK/cert.pem" -key "$WORK/key.pem" \
		>/dev/null 2>"$WORK/s_server.$p.log" </dev/null &
	PIDS+=($!)
done
start_daemon main
start_daemon nocache
[ "$NODELAY_DEMO" = 1 ] && start_daemon nodelay "$WORK/nodelay_shim.so"
start_daemon large
for p in "$P_SINK" ${SS_PORTS//,/ }; do
	for i in $(seq 1 50); do
		ss -Htln "sport = :$p" | grep -q . && break
		sleep 0.1
	done
done

# --------------------------------------------------------------------------
# Runs

# run SCENARIO loadgen-args...: one run, RESULT line appended to
# res/SCENARIO (with rc=), the full output to res/SCENARIO.out.
# (In the background with wait, so that a signal to this script is acted
# on at once.)
CUR_LG=
run() {
	local scen=$1 out rc
	shift
	timeout $((DUR + 90)) "$LOADGEN" "$@" >"$WORK/res/$scen.last" \
		2>>"$WORK/res/$scen.err" &
	CUR_LG=$!
	wait "$CUR_LG"
	rc=$?
	CUR_LG=
	out=$(cat "$WORK/res/$scen.last")
	printf '%s\n' "$out" >> "$WORK/res/$scen.out"
	printf '%s rc=%d\n' "$(printf '%s\n' "$out" | grep '^RESULT' ||
		echo 'RESULT missing=1')" "$rc" >> "$WORK/res/$scen"
	return 0
}
AUTH=(-u "$USER_NAME" -w "$USER_PASS")

# The large-message daemon gets a fresh start after any failed run, so
# that one failure cannot spoil the runs after it (a stalled transfer
# used to wedge a thread, RESULTS.md finding 1, fixed in bf4d934; a hung
# session, finding 5, stays open until data_timeout).
large_run() {	# scen size port
	local scen=$1 size=$2 pid=${DPID[large]} hwm1 rss0
	rss0=$(rss_kib "$pid")
	run "$scen" -p "${P_STARTTLS[large]}" -c 1 -d "$DUR" -m 0 -s "$size" \
		"${AUTH[@]}" -t 3 -G 15 -q
	hwm1=$(hwm_kib "$pid")
	echo "rss_before_kib=$rss0 hwm_after_kib=$hwm1" >> "$WORK/res/$scen.mem"
	if tail -1 "$WORK/res/$scen" | grep -qv 'errors=0 '; then
		log "$scen: failed run, restarting the large-message daemon"
		stop_daemon large
		start_daemon large
	fi
}

log "scenarios: RUNS=$RUNS DUR=${DUR}s CONC=$CONC HS_CONC=$HS_CONC"
openssl speed -seconds 1 rsa2048 2>/dev/null | awk '/^rsa 2048/ {print "sign_per_s=" $6 " verify_per_s=" $7}' > "$WORK/res/speed_rsa"
openssl speed -seconds 1 -bytes 16384 -evp aes-256-gcm 2>/dev/null | awk '/^AES-256-GCM/ {v=$2; sub(/k$/, "", v); printf "aes256gcm_mb_per_s=%.1f\n", v / 1000}' > "$WORK/res/speed_aes256"
openssl speed -seconds 1 -bytes 16384 -evp aes-128-gcm 2>/dev/null | awk '/^AES-128-GCM/ {v=$2; sub(/k$/, "", v); printf "aes128gcm_mb_per_s=%.1f\n", v / 1000}' > "$WORK/res/speed_aes128"

for r in $(seq 1 "$RUNS"); do
	log "run $r/$RUNS"
	cat /proc/loadavg >> "$WORK/res/loadavg"
	# (a)/(b) a new session for each 10 KB message
	run a_sessions -M plain -p "$P_SINK" -c "$CONC" -d "$DUR" -m 1 -s 10240 -q
	run b_sessions -p "${P_STARTTLS[main]}" -c "$CONC" -d "$DUR" -m 1 -s 10240 "${AUTH[@]}" -q
	run b_nocache -p "${P_STARTTLS[nocache]}" -c "$CONC" -d "$DUR" -m 1 -s 10240 "${AUTH[@]}" -q
	# (a)/(c) one session, 10 KB messages back to back
	run a_msgs -M plain -p "$P_SINK" -c 1 -d "$DUR" -m 0 -s 10240 -q
	run c_msgs -p "${P_STARTTLS[main]}" -c 1 -d "$DUR" -m 0 -s 10240 "${AUTH[@]}" -q
	run a_msgs_pipe -M plain -p "$P_SINK" -c 1 -d "$DUR" -m 0 -s 10240 -L -q
	run c_msgs_pipe -p "${P_STARTTLS[main]}" -c 1 -d "$DUR" -m 0 -s 10240 -L "${AUTH[@]}" -q
	[ "$NODELAY_DEMO" = 1 ] && run c_nodelay_pipe -p "${P_STARTTLS[nodelay]}" -c 1 -d "$DUR" -m 0 -s 10240 -L "${AUTH[@]}" -q
	# (d) large messages on one session
	run a_large -M plain -p "$P_SINK" -c 1 -d "$DUR" -m 0 -s "$LARGE" -q
	large_run d_large "$LARGE"
	run a_mid -M plain -p "$P_SINK" -c 1 -d "$DUR" -m 0 -s "$MID" -q
	large_run d_mid "$MID"
	# (e) TLS handshakes: openssl s_server x8 (same cert) vs authrelay
	run e_s_server -M handshake -p "$SS_PORTS" -c "$HS_CONC" -d "$DUR" -q
	run e_authrelay -M handshake -p "${P_TLS[main]}" -c "$HS_CONC" -d "$DUR" -q
done

# Regression check for finding 1 (RESULTS.md): a TLS record larger than
# the input window while the session waits. The probe passes when the
# reply, the 2500 NOOP replies and a new connection's greeting come; the
# auth mode uses a new unknown login each time (one 535 after
# failure_delay, 2 s).
if [ "$STALL_PROBE" = 1 ]; then
	for m in auth mail; do
		log "stall probe ($m) against the main daemon"
		pargs=("${P_STARTTLS[main]}" "$m")
		[ $m = mail ] && pargs+=("$USER_NAME" "$USER_PASS")
		timeout 60 python3 "$here/stall_probe.py" "${pargs[@]}" \
			> "$WORK/res/stall_probe.$m" 2>&1
		echo "$m rc=$? $(tr '\n' ' ' < "$WORK/res/stall_probe.$m")" \
			>> "$WORK/res/stall_probe"
	done
fi

# (f)/(g) idle authenticated TLS sessions. (f): one fresh daemon, three
# rounds of IDLE_N sessions: the first gives KiB per session, the others
# show whether memory is reused (no growth) or leaks. (g): BIG_N sessions
# on another fresh daemon.
idle_round() {	# scen n hold round
	local scen=$1 n=$2 hold=$3 round=$4 pid=${DPID[idle]} rss0 rss1 rss2 i out lg
	rss0=$(rss_kib "$pid")
	out=$WORK/res/$scen.$round.out
	: > "$out"
	timeout $((hold + 150)) "$LOADGEN" -M idle -p "${P_STARTTLS[idle]}" \
		-c "$n" -R 200 -T "$hold" -t 60 -G 90 "${AUTH[@]}" >"$out" 2>&1 &
	lg=$!
	PIDS+=("$lg")
	for i in $(seq 1 1500); do	# up to 150 s
		grep -q '^IDLE_READY' "$out" && break
		kill -0 "$lg" 2>/dev/null || break
		sleep 0.1
	done
	sleep 0.3
	rss1=$(rss_kib "$pid")
	wait "$lg"
	echo "rc=$?" >> "$out"
	sleep 0.5
	rss2=$(rss_kib "$pid")
	echo "round=$round n=$n rss_before_kib=$rss0 rss_open_kib=$rss1 rss_after_close_kib=$rss2 $(grep '^IDLE_READY' "$out" | head -1) $(grep '^RESULT' "$out")" >> "$WORK/res/$scen"
}
if [ "$IDLE_N" -gt 0 ]; then
	start_daemon idle
	for r in 1 2 3; do
		log "idle: $IDLE_N sessions, round $r/3"
		idle_round f_idle "$IDLE_N" 1 "$r"
	done
	stop_daemon idle
fi
if [ "$BIG_N" -gt 0 ]; then
	log "idle: $BIG_N sessions"
	start_daemon idle
	idle_round g_idle "$BIG_N" 2 1
	stop_daemon idle
fi

# --------------------------------------------------------------------------
# Summary

median() {	# scen field -> median of the field over the runs
	grep -o "[ ]$2=[0-9.]*" "$WORK/res/$1" 2>/dev/null | cut -d= -f2 |
		sort -g | awk '{v[NR]=$1} END {if (NR == 0) print "n/a";
		else if (NR % 2) print v[(NR+1)/2];
		else printf "%.3f\n", (v[NR/2] + v[NR/2+1]) / 2}'
}
errs() {	# scen -> "runs with errors" and the error keys seen
	local f=$WORK/res/$1
	[ -f "$f" ] || { echo "-"; return; }
	awk '{for (i = 1; i <= NF; i++) {
		if ($i ~ /^errors=/) { split($i, a, "="); if (a[2] > 0) bad++ }
		if ($i ~ /^errkeys=/ && $i != "errkeys=-") keys[substr($i, 9)]++ } }
		END { printf "%d/%d runs with errors", bad, NR;
		for (k in keys) printf " [%s]", k; print "" }' "$f"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "n/a") print "n/a"; else printf "%.2f", a / b }'; }

{
	echo "authrelay benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), $(openssl version)"
	echo "daemon: copy of $DAEMON_SRC built $DAEMON_BUILT (sha256 $(sha256sum "$DAEMON" | cut -c1-12)); source tree at git $GIT_AT_START (at the start; daemon sources proxy/ common/ pam/: $GIT_SRC_STATE)"
	echo "runs: $RUNS x ${DUR}s per scenario, interleaved; medians; load average at the start of each run: $(awk '{printf "%s ", $1}' "$WORK/res/loadavg")"
	echo "config: threads = 2, workers = 4, cache_ttl default (60s; b_nocache: 0), RSA-2048 cert, TLSv1.3"
	echo
	echo "openssl speed: $(cat "$WORK/res/speed_rsa") (RSA-2048, one core); $(cat "$WORK/res/speed_aes256") $(cat "$WORK/res/speed_aes128") (16 KiB blocks, one core)"
	echo
	a=$(median a_sessions sess_per_s); b=$(median b_sessions sess_per_s)
	bn=$(median b_nocache sess_per_s)
	hs=$(median e_s_server sess_per_s); he=$(median e_authrelay sess_per_s)
	echo "(a) smtp-sink alone, new plaintext session per 10 KB message, $CONC concurrent:"
	echo "      $a sessions/s, message p50 $(median a_sessions p50_ms) ms p99 $(median a_sessions p99_ms) ms; $(errs a_sessions)"
	echo "(b) authrelay, new STARTTLS session + AUTH PLAIN + one 10 KB message, $CONC concurrent:"
	echo "      cache on : $b sessions/s, setup (connect to 235) p50 $(median b_sessions setup_p50_ms) ms p99 $(median b_sessions setup_p99_ms) ms, message p50 $(median b_sessions p50_ms) ms p99 $(median b_sessions p99_ms) ms; $(errs b_sessions)"
	echo "      cache off: $bn sessions/s, setup p50 $(median b_nocache setup_p50_ms) ms p99 $(median b_nocache setup_p99_ms) ms, message p50 $(median b_nocache p50_ms) ms p99 $(median b_nocache p99_ms) ms; $(errs b_nocache)"
	echo "      ratios: b/e(s_server handshakes) $(ratio "$b" "$hs"), b_nocache/e(s_server) $(ratio "$bn" "$hs"), b/e(authrelay handshakes only) $(ratio "$b" "$he"), b_nocache/e(authrelay) $(ratio "$bn" "$he"), b/a $(ratio "$b" "$a")"
	echo "    one client alone (connect to 235, median of the single sessions of (c)): plaintext to smtp-sink (to EHLO reply) $(median a_msgs setup_p50_ms) ms; authrelay $(median c_msgs setup_p50_ms) ms$([ "$NODELAY_DEMO" = 1 ] && echo "; authrelay with TCP_NODELAY shim $(median c_nodelay_pipe setup_p50_ms) ms")"
	am=$(median a_msgs msgs_per_s); cm=$(median c_msgs msgs_per_s)
	ap=$(median a_msgs_pipe msgs_per_s); cp=$(median c_msgs_pipe msgs_per_s)
	cn=$(median c_nodelay_pipe msgs_per_s)
	echo "(c) one session, 10 KB messages back to back (MAIL, RCPT, DATA one at a time):"
	echo "      smtp-sink alone: $am msg/s (p50 $(median a_msgs p50_ms) ms, p99 $(median a_msgs p99_ms) ms); authrelay: $cm msg/s (p50 $(median c_msgs p50_ms) ms, p99 $(median c_msgs p99_ms) ms); ratio $(ratio "$cm" "$am"); $(errs c_msgs)"
	echo "    the same with PIPELINING (MAIL+RCPT+DATA in one write):"
	echo "      smtp-sink alone: $ap msg/s (p50 $(median a_msgs_pipe p50_ms) ms); authrelay: $cp msg/s (p50 $(median c_msgs_pipe p50_ms) ms, p99 $(median c_msgs_pipe p99_ms) ms); ratio $(ratio "$cp" "$ap"); $(errs c_msgs_pipe)"
	[ "$NODELAY_DEMO" = 1 ] && echo "      authrelay with TCP_NODELAY shim: $cn msg/s (p50 $(median c_nodelay_pipe p50_ms) ms, p99 $(median c_nodelay_pipe p99_ms) ms); ratio $(ratio "$cn" "$ap"); $(errs c_nodelay_pipe)"
	al=$(median a_large mb_per_s); dl=$(median d_large mb_per_s)
	ami=$(median a_mid mb_per_s); dmi=$(median d_mid mb_per_s)
	aes=$(cut -d= -f2 "$WORK/res/speed_aes256")
	echo "(d) one session, large messages (MB = 10^6 octets of message):"
	echo "      $LARGE octets: smtp-sink alone $al MB/s; authrelay $dl MB/s; ratio $(ratio "$dl" "$al"), vs AES-256-GCM one core $(ratio "$dl" "$aes"); $(errs d_large)"
	echo "      $MID octets: smtp-sink alone $ami MB/s; authrelay $dmi MB/s; ratio $(ratio "$dmi" "$ami"); $(errs d_mid)"
	echo "      daemon memory (VmRSS before -> VmHWM after, KiB): $LARGE: $(tr '\n' ' ' < "$WORK/res/d_large.mem" | sed 's/rss_before_kib=//g; s/ hwm_after_kib=/->/g')"
	echo "(e) TLS handshakes/s (full RSA-2048 handshakes, $HS_CONC concurrent, client closes when done):"
	echo "      $HS_SERVERS x openssl s_server: $hs/s (p50 $(median e_s_server setup_p50_ms) ms); authrelay implicit TLS port: $he/s (p50 $(median e_authrelay setup_p50_ms) ms); ratio $(ratio "$he" "$hs")"
	for s in f_idle g_idle; do
		[ -f "$WORK/res/$s" ] || continue
		echo "($([ $s = f_idle ] && echo f || echo g)) idle authenticated STARTTLS sessions, fresh daemon (VmRSS of the daemon; auth workers and kernel socket buffers not included):"
		awk '{ delete v; for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
			est = v["established"]; d = v["rss_open_kib"] - v["rss_before_kib"];
			printf "      round %s, %s sessions: established %s, failed %s, set up in %s s (setup p99 %s ms); RSS %s -> %s KiB (%+.1f KiB/session); after they closed %s KiB\n",
			v["round"], v["n"], est, v["failed"], v["setup_secs"], v["setup_p99_ms"], v["rss_before_kib"], v["rss_open_kib"],
			(est > 0 ? d / est : 0), v["rss_after_close_kib"] }' "$WORK/res/$s"
	done
	echo
	if [ -f "$WORK/res/stall_probe" ]; then
		echo "stall probe (finding 1) against the main daemon: $(awk '{ printf "%s %s; ", $1, ($2 == "rc=0" ? "passed" : "FAILED (" $2 ")") }' "$WORK/res/stall_probe")(details in res/stall_probe)"
	fi
	sp=$(median c_msgs_pipe p50_ms); su=$(median c_msgs setup_p50_ms)
	echo "delayed-ACK check (finding 2): pipelined message p50 $sp ms, one session's setup p50 $su ms: $(awk -v a="$sp" -v b="$su" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else if (a + 0 < 20 && b + 0 < 30) print "OK (under 20 / 30 ms)"; else print "SUSPECT: 40 ms delayed-ACK stalls back? (TCP_NODELAY)" }')"
	echo "daemons that ignored SIGTERM (shutdown_timeout = 2s) and were killed after 3 s: $(sort "$WORK/res/sigkilled" 2>/dev/null | uniq -c | awk '{printf "%s x %s %s; ", $1, $2, $3}')"
	echo "log lines per session (main daemon): $(awk -v s="$(grep -c ' connect ' "$WORK/main.log" 2>/dev/null)" 'END { if (s) printf "%.1f", NR / s; else print "n/a" }' "$WORK/main.log" 2>/dev/null)"
	echo "total time: $(($(date +%s) - T_START)) s"
} > "$WORK/summary.txt"
cat "$WORK/summary.txt"
log "summary in $WORK/summary.txt"
