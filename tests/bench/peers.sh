#!/bin/bash
# Issue 14's targets A-D measured side by side with the peers, in one go
# (RESULTS.md "Issue 14, third round"). Everything on 127.0.0.1, started
# and stopped here, each in its own directory under the work directory:
#
#   slapd         1,000 users (uid=userN, plus alice), group "senders"
#   smtp-sink     the smarthost of every server below
#   authrelay     backend = ldap (search + bind as the user), require_group,
#                 sender check (default), cache_ttl 60 s (default),
#                 threads = 2, workers = 4; one instance with an RSA-2048
#                 certificate, one with ECDSA P-256; STARTTLS and implicit
#                 TLS listeners; tickets on (default)
#   Dovecot 2.3   dovecot-submissiond, passdb ldap with auth_bind (search,
#                 then bind as the user), userdb static, relay to the sink
#   Postfix 3.7   smtpd with STARTTLS and Dovecot SASL (a second dovecot,
#                 auth service only, socket in the work directory), queue
#                 in the work directory, relayhost the sink
#   openssl s_server  x8 RSA, x8 ECDSA (one connection at a time each)
#   HAProxy 2.6   tcp mode, forwarding to the sink (B and BL's baseline)
#
# Server CPU = utime + stime of the server's whole process tree (and of
# the children it reaped: cutime + cstime) from /proc, over each run;
# slapd's CPU is reported on its own. Each scenario runs RUNS times,
# interleaved; medians. Scenarios (RESULTS.md for what each one is):
#   A  new STARTTLS session + AUTH PLAIN + one 10 KiB message + QUIT,
#      CONC_A concurrent: CPU per session; bare TLS handshakes on
#      authrelay's implicit-TLS port and on s_server (RSA, ECDSA, and
#      resumed with a ticket: loadgen -S); smtp-sink alone on the same
#      session in plaintext without AUTH (what the SMTP part costs the
#      leanest server, against the 15 % of a handshake the target leaves)
#   B  1 KiB messages on 8 open sessions: CPU per message (smtp-sink
#      alone: its own CPU per message, plaintext; HAProxy in tcp mode
#      forwarding the plaintext dialogue to the sink: its own CPU)
#   BL the same with a client that pipelines MAIL, RCPT and DATA
#      (loadgen -L), as mail clients do where PIPELINING is offered
#   C  5 MiB messages on 4 sessions: CPU per MB (10^6 octets)
#   D  IDLE_N idle authenticated TLS sessions: Pss of the process tree
#      per session (the sink's side not counted)
#
#   AUTHRELAY_BUILDDIR=/tmp/bN tests/bench/peers.sh   (about 10 minutes)
#
# RUNS [3] DUR [4] s per run, CONC_A [32], IDLE_N [500], BENCH_PORT
# [25500] (.. +40), BENCH_DIR (default a new /tmp/authrelay-peers.*),
# PEERS [1] (0: authrelay and the baselines only), ONLY [A B BL C D]
# (the scenarios to run, e.g. ONLY="B BL" with more RUNS for a closer
# look at one). BASE_BUILDDIR: a
# second authrelay build (the one before a change) run as a third
# instance (RSA) through A, B, C and D interleaved with the first, for
# ratios new/base within one go. Needs root (Postfix's
# master and Dovecot run as root and drop privileges themselves); the
# system's own dovecot and postfix services are not touched.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILDDIR=${AUTHRELAY_BUILDDIR:-/work/build-lead}
RUNS=${RUNS:-3} DUR=${DUR:-4} CONC_A=${CONC_A:-32} IDLE_N=${IDLE_N:-500}
PEERS=${PEERS:-1}
ONLY=" ${ONLY:-A B BL C D} "
want() { [[ $ONLY == *" $1 "* ]]; }
BASE_BUILDDIR=${BASE_BUILDDIR:-}
PORT=${BENCH_PORT:-25500}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/authrelay-peers.XXXXXX)}
BASE=dc=example,dc=com
SVC_DN=cn=authrelay,ou=services,$BASE
PASS='Al1ce-bench-secret'
T_START=$(date +%s)
HZ=$(getconf CLK_TCK)
PIDS=()
declare -A SRV=()	# server name -> pids of its tree roots

log() { printf '%s [%3ds] %s\n' "$(date +%T)" $(($(date +%s) - T_START)) "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
[ -x "$BUILDDIR/proxy/authrelay" ] || die "no $BUILDDIR/proxy/authrelay"

cleanup() {
	local p i
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for i in $(seq 1 30); do
		for p in "${PIDS[@]}"; do
			kill -0 "$p" 2>/dev/null && break
		done
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {	# port [tenths]
	local i
	for i in $(seq 1 "${2:-100}"); do
		ss -Htln "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

mkdir -p "$WORK/res" && chmod 755 "$WORK"
. "$here/lib.sh"
bench_setup "$WORK" || die "bench_setup failed"
LOADGEN=$WORK/loadgen
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-days 3 -subj /CN=localhost -keyout "$WORK/ec-key.pem" \
	-out "$WORK/ec-cert.pem" 2>/dev/null || die "ECDSA certificate"
chmod 644 "$WORK"/*.pem
cp "$BUILDDIR/proxy/authrelay" "$BUILDDIR/pam/authrelay-auth" "$WORK/"
if [ -n "$BASE_BUILDDIR" ]; then
	mkdir -p "$WORK/base"
	cp "$BASE_BUILDDIR/proxy/authrelay" "$BASE_BUILDDIR/pam/authrelay-auth" \
		"$WORK/base/" || die "no authrelay in $BASE_BUILDDIR"
fi

P_SINK=$PORT P_LDAP=$((PORT + 1))
P_AR_S=$((PORT + 2)) P_AR_T=$((PORT + 3))	# authrelay RSA: starttls, tls
P_EC_S=$((PORT + 4)) P_EC_T=$((PORT + 5))	# authrelay ECDSA
P_DOV=$((PORT + 6)) P_PF=$((PORT + 7))
P_BA_S=$((PORT + 8)) P_BA_T=$((PORT + 9))	# BASE_BUILDDIR's authrelay
SS_RSA=$(seq -s, $((PORT + 10)) $((PORT + 17)))
SS_EC=$(seq -s, $((PORT + 20)) $((PORT + 27)))
P_FWD=$((PORT + 30))	# HAProxy forwarding TCP to the sink

# --------------------------------------------------------------------------
# slapd

mkdir -p "$WORK/ldap/db"
cat > "$WORK/ldap/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile $WORK/ldap/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
sizelimit unlimited
database mdb
suffix "$BASE"
rootdn "cn=admin,$BASE"
rootpw admin-secret
directory $WORK/ldap/db
maxsize 268435456
index objectClass eq
index uid,member eq
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by dn.exact="$SVC_DN" read
	by self read
	by * none
CONF
{
	printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n' "$BASE"
	for ou in people groups services; do
		printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$BASE" "$ou"
	done
	printf 'dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: authrelay\nuserPassword: svc-secret\n\n' "$SVC_DN"
	for u in alice $(seq -f 'user%g' 1 999); do
		printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s@example.com\nuserPassword: %s\n\n' \
			"$u" "$BASE" "$u" "$u" "$u" "$u" "$PASS"
	done
	printf 'dn: cn=senders,ou=groups,%s\nobjectClass: groupOfNames\ncn: senders\n' "$BASE"
	for u in alice $(seq -f 'user%g' 1 999); do
		printf 'member: uid=%s,ou=people,%s\n' "$u" "$BASE"
	done
	echo
} > "$WORK/ldap/data.ldif"
slapadd -q -f "$WORK/ldap/slapd.conf" -l "$WORK/ldap/data.ldif" \
	>"$WORK/ldap/slapadd.log" 2>&1 || die "slapadd failed"
printf 'svc-secret\n' > "$WORK/ldap/bind.secret"
chmod 600 "$WORK/ldap/bind.secret"
/usr/sbin/slapd -d 0 -f "$WORK/ldap/slapd.conf" -h "ldap://127.0.0.1:$P_LDAP/" \
	>"$WORK/ldap/slapd.log" 2>&1 &
PIDS+=($!); SLAPD=$!
wait_port "$P_LDAP" || die "slapd did not start"

/usr/sbin/smtp-sink -u nobody -m 4000 "127.0.0.1:$P_SINK" 4096 \
	>"$WORK/smtp-sink.log" 2>&1 &
PIDS+=($!); SRV[sink]=$!

# The leanest relay there is: HAProxy in tcp mode forwards the octets to
# the sink and back, on two threads as authrelay (no TLS, no SMTP, no
# policy, no log). What relaying the same dialogue costs the kernel and
# a minimal event loop.
cat > "$WORK/haproxy.cfg" <<CONF
global
	nbthread 2
	maxconn 1000
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend fwd
	bind 127.0.0.1:$P_FWD
	default_backend sink
backend sink
	server sink 127.0.0.1:$P_SINK
CONF
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 </dev/null &
PIDS+=($!); SRV[fwd]=$!
wait_port "$P_FWD" || die "haproxy did not start"

for p in ${SS_RSA//,/ }; do
	openssl s_server -quiet -www -accept "127.0.0.1:$p" -cert "$WORK/cert.pem" \
		-key "$WORK/key.pem" >/dev/null 2>&1 </dev/null &
	PIDS+=($!); SRV[ss_rsa]+=" $!"
done
for p in ${SS_EC//,/ }; do
	openssl s_server -quiet -www -accept "127.0.0.1:$p" -cert "$WORK/ec-cert.pem" \
		-key "$WORK/ec-key.pem" >/dev/null 2>&1 </dev/null &
	PIDS+=($!); SRV[ss_ec]+=" $!"
done

# --------------------------------------------------------------------------
# authrelay: RSA and ECDSA instances

ar_conf() {	# name starttls-port tls-port cert key [binary directory]
	local bin=${6:-$WORK}
	cat > "$WORK/$1.conf" <<CONF
[server]
hostname = bench.example
listen = 127.0.0.1:$2 starttls
listen = 127.0.0.1:$3 tls
threads = 2
max_connections = 20000
max_connections_per_ip = 20000
shutdown_timeout = 2s
[tls]
cert = $4
key = $5
[auth]
backend = ldap
require_group = cn=senders,ou=groups,$BASE
worker_path = $bin/authrelay-auth
workers = 4
[ldap]
uri = ldap://127.0.0.1:$P_LDAP
base = $BASE
bind_dn = $SVC_DN
bind_password_file = $WORK/ldap/bind.secret
[relay]
smarthost = 127.0.0.1:$P_SINK
tls = none
CONF
	"$bin/authrelay" -t -c "$WORK/$1.conf" >/dev/null || die "$1: config check failed"
	"$bin/authrelay" -c "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 </dev/null &
	PIDS+=($!); SRV[$1]=$!
	wait_port "$3" || die "$1 did not start"
}
ar_conf ar_rsa "$P_AR_S" "$P_AR_T" "$WORK/cert.pem" "$WORK/key.pem"
ar_conf ar_ec "$P_EC_S" "$P_EC_T" "$WORK/ec-cert.pem" "$WORK/ec-key.pem"
[ -n "$BASE_BUILDDIR" ] &&
	ar_conf ar_base "$P_BA_S" "$P_BA_T" "$WORK/cert.pem" "$WORK/key.pem" "$WORK/base"

# --------------------------------------------------------------------------
# Dovecot submission, and Dovecot auth for Postfix

dovecot_conf() {	# dir protocols extra...
	local d=$WORK/$1
	mkdir -p "$d/run" "$d/state" "$d/home" && chmod 1777 "$d/home"
	cat > "$d/ldap.conf.ext" <<CONF
uris = ldap://127.0.0.1:$P_LDAP
dn = $SVC_DN
dnpass = svc-secret
auth_bind = yes
base = $BASE
pass_filter = (&(objectClass=inetOrgPerson)(uid=%u))
pass_attrs = uid=user
CONF
	cat > "$d/dovecot.conf" <<CONF
base_dir = $d/run
state_dir = $d/state
instance_name = bench-$1
log_path = $d/dovecot.log
protocols = $2
listen = 127.0.0.1
hostname = bench.example
ssl = yes
ssl_cert = <$WORK/cert.pem
ssl_key = <$WORK/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
default_process_limit = 2000
default_client_limit = 20000
default_vsz_limit = 1G
passdb {
  driver = ldap
  args = $d/ldap.conf.ext
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$d/home/%u
}
mail_location = maildir:~/Maildir
mail_max_userip_connections = 100000
$3
CONF
	dovecot -n -c "$d/dovecot.conf" >"$d/config.out" 2>&1 ||
		{ cat "$d/config.out" >&2; die "$1: dovecot config"; }
	dovecot -F -c "$d/dovecot.conf" >"$d/stderr.log" 2>&1 </dev/null &
	PIDS+=($!); SRV[$1]=$!
}

if [ "$PEERS" = 1 ]; then
	dovecot_conf dovecot submission "
submission_relay_host = 127.0.0.1
submission_relay_port = $P_SINK
submission_relay_ssl = no
service submission-login {
  inet_listener submission {
    address = 127.0.0.1
    port = $P_DOV
  }
}"
	wait_port "$P_DOV" || die "dovecot submission did not start"
	dovecot_conf pfauth none "
service auth {
  unix_listener $WORK/pfauth/auth-client {
    mode = 0666
  }
}"
	for i in $(seq 1 100); do [ -S "$WORK/pfauth/auth-client" ] && break; sleep 0.1; done

	# Postfix: its own config directory, queue and data directories
	pf=$WORK/postfix
	mkdir -p "$pf/conf" "$pf/queue" "$pf/data"
	chown postfix "$pf/data"
	cat > "$pf/conf/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.example
mydomain = example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_client_event_limit_exceptions = 127.0.0.0/8
relayhost = [127.0.0.1]:$P_SINK
smtp_tls_security_level = none
default_process_limit = 2000
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
smtpd_tls_cert_file = $WORK/cert.pem
smtpd_tls_key_file = $WORK/key.pem
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $WORK/pfauth/auth-client
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
message_size_limit = 52428800
CONF
	# Debian's master.cf with no chroot, and smtpd on our port only
	awk -v port="$P_PF" '
		/^smtp[ \t]+inet/ { print "127.0.0.1:" port " inet n - n - - smtpd"; next }
		/^[a-z]/ && NF >= 8 { $5 = "n" }
		{ print }' /etc/postfix/master.cf > "$pf/conf/master.cf"
	grep -q '^postlog' "$pf/conf/master.cf" ||
		echo 'postlog unix-dgram n - n - 1 postlogd' >> "$pf/conf/master.cf"
	postfix -c "$pf/conf" check >"$pf/check.log" 2>&1 ||
		{ cat "$pf/check.log" >&2; die "postfix check failed"; }
	/usr/lib/postfix/sbin/master -c "$pf/conf" -d >"$pf/master.log" 2>&1 </dev/null &
	PIDS+=($!); SRV[postfix]=$!
	wait_port "$P_PF" || { cat "$pf/master.log" >&2; die "postfix did not start"; }
fi

# --------------------------------------------------------------------------
# Measuring

# (/proc/PID/stat read with cat: a process may be gone between the glob
# and the read)
# ticks of the trees rooted at the given pids (self + reaped children):
# "total user system"
tree_ticks() {
	awk -v roots="$*" '
	{
		pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
		ppid[pid] = f[2]; u[pid] = f[12] + f[14]; k[pid] = f[13] + f[15]
	}
	END {
		split(roots, r, " "); for (i in r) in_tree[r[i]] = 1
		do { added = 0
			for (p in ppid) if (!(p in in_tree) && (ppid[p] in in_tree)) { in_tree[p] = 1; added = 1 }
		} while (added)
		for (p in in_tree) { su += u[p]; sk += k[p] }
		print su + sk, su + 0, sk + 0
	}' < <(cat /proc/[0-9]*/stat 2>/dev/null)
}
tree_pids() {
	awk -v roots="$*" '
	{
		pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
		ppid[pid] = f[2]
	}
	END {
		split(roots, r, " "); for (i in r) in_tree[r[i]] = 1
		do { added = 0
			for (p in ppid) if (!(p in in_tree) && (ppid[p] in in_tree)) { in_tree[p] = 1; added = 1 }
		} while (added)
		for (p in in_tree) print p
	}' < <(cat /proc/[0-9]*/stat 2>/dev/null)
}
tree_pss() {	# KiB
	local p s=0 v
	for p in $(tree_pids "$@"); do
		v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
		s=$((s + ${v:-0}))
	done
	echo $s
}
hwm_net() {	# VmHWM of authrelay's network process (KiB)
	local k
	for k in $(pgrep -P "$1"); do
		tr '\0' ' ' < "/proc/$k/cmdline" 2>/dev/null | grep -q '^authrelay: network' &&
			awk '/^VmHWM:/ {print $2}' "/proc/$k/status"
	done
}

# run SCEN SERVER UNIT loadgen-args: one run; appends to res/SCEN
# "cpu_ms_per_unit slapd_ms_per_unit rate errors resumed user_ms sys_ms"
run() {
	local scen=$1 srv=$2 unit=$3 out t0 t1 l0 l1 n el u0 u1 k0 k1
	shift 3
	read -r t0 u0 k0 < <(tree_ticks ${SRV[$srv]}); read -r l0 _ < <(tree_ticks "$SLAPD")
	out=$(timeout $((DUR + 60)) "$LOADGEN" "$@" -d "$DUR" -t 20 -G 30 -q 2>>"$WORK/res/$scen.err" |
		grep '^RESULT')
	read -r t1 u1 k1 < <(tree_ticks ${SRV[$srv]}); read -r l1 _ < <(tree_ticks "$SLAPD")
	echo "$out" >> "$WORK/res/$scen.out"
	val() { echo "$out" | grep -o " $1=[^ ]*" | cut -d= -f2; }
	el=$(val elapsed)
	case $unit in
	session) n=$(val sessions) ;;
	msg) n=$(val msgs) ;;
	mb) n=$(awk -v m="$(val mb_per_s)" -v e="$el" 'BEGIN { print m * e }') ;;
	esac
	awk -v t=$((t1 - t0)) -v l=$((l1 - l0)) -v hz="$HZ" -v n="${n:-0}" \
		-v el="${el:-0}" -v e="$(val errors)" -v rs="$(val resumed)" \
		-v us=$((u1 - u0)) -v ks=$((k1 - k0)) \
		'BEGIN { if (n <= 0) { print "nan nan 0", e, rs, "nan nan"; exit }
		printf "%.4f %.4f %.1f %s %s %.4f %.4f\n", t / hz * 1000 / n, l / hz * 1000 / n,
			n / el, e, rs, us / hz * 1000 / n, ks / hz * 1000 / n }' \
		>> "$WORK/res/$scen"
}

# on_all SCEN UNIT loadgen-args: one run on smtp-sink alone (plaintext, no
# AUTH), authrelay, the base build and the peers
on_all() {
	local scen=$1 unit=$2
	shift 2
	run "${scen}_sink" sink "$unit" -M plain -p "$P_SINK" "$@"
	[ "$unit" = msg ] && run "${scen}_fwd" fwd "$unit" -M plain -p "$P_FWD" "$@"
	run "${scen}_ar_rsa" ar_rsa "$unit" -p "$P_AR_S" "$@" "${AUTH[@]}"
	[ -n "$BASE_BUILDDIR" ] && run "${scen}_ar_base" ar_base "$unit" -p "$P_BA_S" "$@" "${AUTH[@]}"
	if [ "$PEERS" = 1 ]; then
		run "${scen}_dovecot" dovecot "$unit" -p "$P_DOV" "$@" "${AUTH[@]}"
		run "${scen}_postfix" postfix "$unit" -p "$P_PF" "$@" "${AUTH[@]}"
	fi
}

AUTH=(-u alice -w "$PASS")
A=(-c "$CONC_A" -m 1 -s 10240 "${AUTH[@]}")
HS=(-M handshake -c 8)
B=(-c 8 -m 0 -s 1024)
C=(-c 4 -m 0 -s 5242880)

# warm-up: one session each (workers, connections to slapd)
for p in "$P_AR_S" "$P_EC_S" $([ "$PEERS" = 1 ] && echo "$P_DOV $P_PF") \
	$([ -n "$BASE_BUILDDIR" ] && echo "$P_BA_S"); do
	"$LOADGEN" -p "$p" -c 1 -n 2 -m 1 "${AUTH[@]}" -t 10 -G 20 -q >/dev/null ||
		log "warm-up session on port $p failed"
done
hwm0=$(hwm_net "${SRV[ar_rsa]}")
echo "$(cat /proc/loadavg)" > "$WORK/res/loadavg"
for r in $(seq 1 "$RUNS"); do
	log "run $r/$RUNS"
	cat /proc/loadavg >> "$WORK/res/loadavg"
	if want A; then
		run A_ar_rsa ar_rsa session -p "$P_AR_S" "${A[@]}"
		run A_sink sink session -M plain -p "$P_SINK" -c "$CONC_A" -m 1 -s 10240
		[ -n "$BASE_BUILDDIR" ] && run A_ar_base ar_base session -p "$P_BA_S" "${A[@]}"
		run H_ar_rsa ar_rsa session -p "$P_AR_T" "${HS[@]}"
		run H_ss_rsa ss_rsa session -p "$SS_RSA" "${HS[@]}"
		run A_ar_ec ar_ec session -p "$P_EC_S" "${A[@]}"
		run H_ar_ec ar_ec session -p "$P_EC_T" "${HS[@]}"
		run H_ss_ec ss_ec session -p "$SS_EC" "${HS[@]}"
		run AS_ar_rsa ar_rsa session -p "$P_AR_S" "${A[@]}" -S
		run HS_ar_rsa ar_rsa session -p "$P_AR_T" "${HS[@]}" -S
		run HS_ss_rsa ss_rsa session -p "$SS_RSA" "${HS[@]}" -S
		if [ "$PEERS" = 1 ]; then
			run A_dovecot dovecot session -p "$P_DOV" "${A[@]}"
			run A_postfix postfix session -p "$P_PF" "${A[@]}"
		fi
	fi
	want B && on_all B msg "${B[@]}"
	want BL && on_all BL msg "${B[@]}" -L
	want C && on_all C mb "${C[@]}"
done
hwm1=$(hwm_net "${SRV[ar_rsa]}")

# D: IDLE_N idle authenticated sessions per server, Pss of the tree
idle() {	# name port
	local out=$WORK/res/D_$1.out lg i p0 p1
	p0=$(tree_pss ${SRV[$1]})
	timeout 200 "$LOADGEN" -M idle -p "$2" -c "$IDLE_N" -R 50 -T 3 -t 60 \
		-G 90 "${AUTH[@]}" >"$out" 2>&1 &
	lg=$!
	for i in $(seq 1 1500); do
		grep -q '^IDLE_READY' "$out" && break
		kill -0 "$lg" 2>/dev/null || break
		sleep 0.1
	done
	sleep 0.5
	p1=$(tree_pss ${SRV[$1]})
	wait "$lg"
	echo "$1 pss_before_kib=$p0 pss_open_kib=$p1 $(grep '^IDLE_READY' "$out" | head -1)" >> "$WORK/res/D"
}
if want D; then
	log "idle sessions: $IDLE_N per server"
	idle ar_rsa "$P_AR_S"
	[ -n "$BASE_BUILDDIR" ] && idle ar_base "$P_BA_S"
	[ "$PEERS" = 1 ] && { idle dovecot "$P_DOV"; idle postfix "$P_PF"; }
fi

# --------------------------------------------------------------------------
# Summary

med() {	# scen column -> median
	awk -v c="$2" '$c != "nan" { print $c }' "$WORK/res/$1" 2>/dev/null | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2];
		else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
runs() { awk '{ printf "%s%s", (NR > 1 ? " " : ""), $1 } END { print "" }' "$WORK/res/$1" 2>/dev/null; }
errs() { awk '{ s += $4 } END { print s + 0 }' "$WORK/res/$1" 2>/dev/null; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "n/a") print "n/a"; else printf "%.2f", a / b }'; }
line() {	# label scen unit
	printf '  %-44s %8s ms/%s  (user %s, system %s; runs: %s; %s/s; slapd %s ms; errors %s%s)\n' "$1" \
		"$(med "$2" 1)" "$3" "$(med "$2" 6)" "$(med "$2" 7)" "$(runs "$2")" "$(med "$2" 3)" "$(med "$2" 2)" \
		"$(errs "$2")" "$(awk '$5 > 0 { r = 1 } END { if (r) printf "; resumed" }' "$WORK/res/$2" 2>/dev/null)"
}
lines_all() {	# SCEN unit: on_all's servers but the base build
	line "smtp-sink alone (plaintext, its own CPU)" "${1}_sink" "$2"
	[ "$2" = msg ] && line "HAProxy forwarding TCP to the sink (plaintext)" "${1}_fwd" "$2"
	line "authrelay" "${1}_ar_rsa" "$2"
	if [ "$PEERS" = 1 ]; then
		line "Dovecot submission" "${1}_dovecot" "$2"
		line "Postfix + Dovecot SASL" "${1}_postfix" "$2"
	fi
}
{
	echo "authrelay and peers, $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; kernel $(uname -r); $(openssl version)"
	echo "authrelay: $BUILDDIR (sha256 $(sha256sum "$WORK/authrelay" | cut -c1-12)); $(dovecot --version | cut -d' ' -f1) ; postfix $(postconf -d -h mail_version 2>/dev/null)"
	echo "runs: $RUNS x ${DUR}s, interleaved, medians; load average at each run's start: $(awk '{ printf "%s ", $1 }' "$WORK/res/loadavg")"
	echo "server CPU (utime+stime of the whole process tree) per unit; slapd's CPU per unit in brackets"
	echo
	echo "A  new session: STARTTLS + AUTH PLAIN + one 10 KiB message + QUIT, $CONC_A concurrent; TLS handshakes 8 concurrent"
	line "authrelay RSA-2048, session" A_ar_rsa session
	line "authrelay RSA, handshake only (implicit TLS)" H_ar_rsa session
	line "openssl s_server RSA, handshake" H_ss_rsa session
	line "authrelay ECDSA P-256, session" A_ar_ec session
	line "authrelay ECDSA, handshake only" H_ar_ec session
	line "openssl s_server ECDSA, handshake" H_ss_ec session
	line "authrelay RSA, session resumed (ticket)" AS_ar_rsa session
	line "authrelay RSA, handshake resumed" HS_ar_rsa session
	line "openssl s_server RSA, handshake resumed" HS_ss_rsa session
	if [ "$PEERS" = 1 ]; then
		line "Dovecot submission (RSA), session" A_dovecot session
		line "Postfix + Dovecot SASL (RSA), session" A_postfix session
	fi
	line "smtp-sink alone, plaintext session, no AUTH" A_sink session
	for k in "RSA A_ar_rsa H_ar_rsa H_ss_rsa" "ECDSA A_ar_ec H_ar_ec H_ss_ec" "RSA-resumed AS_ar_rsa HS_ar_rsa HS_ss_rsa"; do
		set -- $k
		echo "  ratio $1: session / own handshake $(ratio "$(med "$2" 1)" "$(med "$3" 1)"), session / s_server handshake $(ratio "$(med "$2" 1)" "$(med "$4" 1)") (target <= 1.15)"
	done
	# What 1.15 x a handshake leaves for the whole SMTP part of a
	# session, against what the sink alone spends on a plaintext one.
	for k in "RSA H_ar_rsa" "ECDSA H_ar_ec"; do
		set -- $k
		awk -v h="$(med "$2" 1)" -v p="$(med A_sink 1)" -v n="$1" 'BEGIN { if (h + 0 > 0 && p + 0 > 0)
			printf "  %s: 0.15 x own handshake = %.3f ms for all of the SMTP part; smtp-sink spends %.3f ms on a plaintext session (%.1f x that)\n", n, 0.15 * h, p, p / (0.15 * h) }'
	done
	[ "$PEERS" = 1 ] && echo "  ratio Dovecot / authrelay $(ratio "$(med A_dovecot 1)" "$(med A_ar_rsa 1)"), Postfix / authrelay $(ratio "$(med A_postfix 1)" "$(med A_ar_rsa 1)")"
	echo "B  1 KiB messages on 8 open sessions"
	lines_all B msg
	echo "  ratio authrelay / smtp-sink $(ratio "$(med B_ar_rsa 1)" "$(med B_sink 1)") (target: 0.07 ms, about 2 x), authrelay / HAProxy forwarding $(ratio "$(med B_ar_rsa 1)" "$(med B_fwd 1)")"
	echo "BL the same with a client that pipelines MAIL, RCPT and DATA (RFC 2920; loadgen -L)"
	lines_all BL msg
	echo "  ratio authrelay / smtp-sink $(ratio "$(med BL_ar_rsa 1)" "$(med BL_sink 1)"), authrelay / HAProxy forwarding $(ratio "$(med BL_ar_rsa 1)" "$(med BL_fwd 1)")"
	echo "C  5 MiB messages on 4 sessions, per MB (10^6 octets)"
	lines_all C MB
	echo "  authrelay network process VmHWM before A-C and after: $hwm0 -> $hwm1 KiB (target 1.0 ms/MB, memory flat)"
	echo "D  $IDLE_N idle authenticated TLS sessions, Pss of the server's process tree"
	awk '{ delete v; for (i = 2; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
		e = v["established"] + 0
		printf "  %-44s %8.1f KiB/session (%s -> %s KiB, %d established, %s failed)\n", $1,
			(e > 0 ? (v["pss_open_kib"] - v["pss_before_kib"]) / e : 0),
			v["pss_before_kib"], v["pss_open_kib"], e, v["failed"] }' "$WORK/res/D" 2>/dev/null
	if [ -n "$BASE_BUILDDIR" ]; then
		echo "BASE  $BASE_BUILDDIR (sha256 $(sha256sum "$WORK/base/authrelay" | cut -c1-12)), RSA, in the same runs"
		line "base build: A session" A_ar_base session
		line "base build: B per message" B_ar_base msg
		line "base build: BL per message (pipelining)" BL_ar_base msg
		line "base build: C per MB" C_ar_base MB
		for k in A_ar_rsa:A_ar_base B_ar_rsa:B_ar_base BL_ar_rsa:BL_ar_base C_ar_rsa:C_ar_base; do
			echo "  ratio new / base ${k%%_*}: $(ratio "$(med "${k%%:*}" 1)" "$(med "${k#*:}" 1)")"
		done
	fi
	echo "total time: $(($(date +%s) - T_START)) s"
} > "$WORK/summary.txt"
cat "$WORK/summary.txt"
log "raw results in $WORK/res"
