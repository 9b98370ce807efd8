#!/bin/bash
# Install what the demo needs, build authrelay, and run a demo on
# 127.0.0.1:
#   - a throwaway slapd (127.0.0.1:1389) with demo users and a group,
#   - a local smarthost (127.0.0.1:2525) that keeps each message it
#     receives as a file in a folder,
#   - authrelay on 1587 (STARTTLS) and 1465 (implicit TLS), authenticating
#     against the slapd, letting members of cn=mail-senders send as their
#     own mail addresses.
# Packages: only those in contrib/demo/packages. No system service is
# started while they install (a policy-rc.d is in place), and any unit
# they enabled at boot is disabled again: the demo's daemons run in the
# foreground of this script only. authrelay's network process runs as
# the system user "authrelay", created (systemd-sysusers) if missing.
# Ctrl-C stops it all; apart from that user, nothing outside the demo
# folder is changed.
#   run.sh                 install, build, run
#   run.sh --install-only  install the packages and stop
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
demo=${AUTHRELAY_DEMO_DIR:-/tmp/authrelay-demo}
base="dc=example,dc=com"

# Units of the given packages that are enabled at boot: disabled.
disable_units() {
	local pkg unit
	for pkg in "$@"; do
		dpkg -L "$pkg" 2>/dev/null |
			grep -E '^/(usr/)?lib/systemd/system/[^/]+\.(service|socket|timer|path)$' |
			while read -r unit; do
				unit=${unit##*/}
				if [ "$(systemctl is-enabled "$unit" 2>/dev/null)" = enabled ]; then
					echo "demo: disabling $unit (installed by the demo)"
					systemctl disable --quiet "$unit" 2>/dev/null || true
				fi
			done
		# SysV init scripts (Debian 12's slapd has only one; systemd
		# runs it through its generator): their start links go.
		dpkg -L "$pkg" 2>/dev/null | grep -E '^/etc/init\.d/[^/]+$' |
			while read -r script; do
				echo "demo: disabling ${script##*/} at boot (installed by the demo)"
				update-rc.d "${script##*/}" disable >/dev/null 2>&1 || true
			done
	done
}

install_packages() {
	local pkgs=() missing=() p policy=/usr/sbin/policy-rc.d restore=
	mapfile -t pkgs < <(grep -v -E '^[[:space:]]*(#|$)' "$top/contrib/demo/packages")
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	echo "demo: installing ${#missing[@]} packages: ${missing[*]}"
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' > "$policy"
		chmod +x "$policy"
		restore=yes
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}"
	disable_units "${missing[@]}"
	[ -z "$restore" ] || rm -f "$policy"
}

echo "authrelay demo: the first run installs packages and builds authrelay"
echo "(about 2 to 5 minutes); later runs start in a few seconds."
if [ "$(id -u)" = 0 ] && [ -z "${AUTHRELAY_NO_APT:-}" ]; then
	install_packages
fi
[ "${1:-}" != --install-only ] || exit 0
if [ "$(id -u)" = 0 ] && ! getent passwd authrelay >/dev/null; then
	if command -v systemd-sysusers >/dev/null; then
		systemd-sysusers "$top/units/authrelay.sysusers"
	else	# the same user, where systemd is not installed
		useradd --system --user-group --home-dir /nonexistent \
			--no-create-home --shell /usr/sbin/nologin authrelay
	fi
fi

cd "$top"
[ -x configure ] || autoreconf -fi
mkdir -p build
cd build
[ -f Makefile ] || ../configure --enable-warnings >/dev/null
make -j2 >/dev/null

rm -rf "$demo"
mkdir -p "$demo/ldap/db" "$demo/mail"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$demo/key.pem" -out "$demo/cert.pem" 2>/dev/null

# The directory: a service account for searches, three users (carol is
# not in the senders group), one group.
echo "demo-service" > "$demo/ldap.secret"
chmod 600 "$demo/ldap.secret"
cat > "$demo/ldap/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile $demo/ldap/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "$base"
rootdn "cn=admin,$base"
rootpw demo-admin
directory $demo/ldap/db
maxsize 16777216
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by dn.exact="cn=authrelay,ou=services,$base" read
	by self read
	by * none
CONF
cat > "$demo/ldap/demo.ldif" <<LDIF
dn: $base
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,$base
objectClass: organizationalUnit
ou: people

dn: ou=groups,$base
objectClass: organizationalUnit
ou: groups

dn: ou=services,$base
objectClass: organizationalUnit
ou: services

dn: cn=authrelay,ou=services,$base
objectClass: person
cn: authrelay
sn: service
userPassword: demo-service

LDIF
for u in alice bob carol; do
	cat >> "$demo/ldap/demo.ldif" <<LDIF
dn: uid=$u,ou=people,$base
objectClass: inetOrgPerson
uid: $u
cn: $u
sn: $u
mail: $u@example.com
userPassword: $u-demo

LDIF
done
cat >> "$demo/ldap/demo.ldif" <<LDIF
dn: cn=mail-senders,ou=groups,$base
objectClass: groupOfNames
cn: mail-senders
member: uid=alice,ou=people,$base
member: uid=bob,ou=people,$base
LDIF
slapadd -f "$demo/ldap/slapd.conf" -l "$demo/ldap/demo.ldif" >/dev/null 2>&1

cat > "$demo/authrelay.conf" <<CONF
[server]
hostname = localhost
listen = 127.0.0.1:1587 starttls
listen = 127.0.0.1:1465 tls

[tls]
cert = $demo/cert.pem
key = $demo/key.pem

[auth]
backend = ldap
worker_path = $top/build/pam/authrelay-auth
require_group = cn=mail-senders,ou=groups,$base
failure_delay = 1s

[ldap]
uri = ldap://127.0.0.1:1389
base = $base
bind_dn = cn=authrelay,ou=services,$base
bind_password_file = $demo/ldap.secret
user_filter = (&(objectClass=inetOrgPerson)(uid=%u))
group_membership = member
address_attributes = mail

[relay]
smarthost = 127.0.0.1:2525
tls = none

[policy]
sender_check = both
CONF

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

/usr/sbin/slapd -f "$demo/ldap/slapd.conf" -h "ldap://127.0.0.1:1389/" -d 0 \
	> "$demo/ldap/slapd.log" 2>&1 &
pids+=($!)
/usr/bin/python3 "$top/contrib/demo/sink.py" --port 2525 --folder "$demo/mail" &
pids+=($!)
for _ in $(seq 50); do
	ldapsearch -x -H ldap://127.0.0.1:1389 -b "" -s base >/dev/null 2>&1 && break
	sleep 0.1
done

"$top/build/proxy/authrelay" -c "$demo/authrelay.conf" &
pids+=($!)
# Ready when it greets on its STARTTLS port (at most 30 s).
ready=
for _ in $(seq 300); do
	kill -0 "${pids[-1]}" 2>/dev/null || break
	if { exec 3<>/dev/tcp/127.0.0.1/1587; } 2>/dev/null; then
		read -r -t 2 greeting <&3 || greeting=
		exec 3<&-
		case $greeting in 220*) ready=yes; break ;; esac
	fi
	sleep 0.1
done
if [ -z "$ready" ]; then
	echo "demo: authrelay did not become ready; see the messages above" >&2
	exit 1
fi

cat <<MSG

authrelay demo (ready)
  submission: 127.0.0.1:1587 (STARTTLS), 127.0.0.1:1465 (implicit TLS)
  directory:  ldap://127.0.0.1:1389 ($base)
  users:      alice / alice-demo, bob / bob-demo (may send);
              carol / carol-demo (not in cn=mail-senders: refused)
  mail kept:  $demo/mail
Send a test message from another terminal:
  swaks --server 127.0.0.1:1587 --tls --auth LOGIN \\
        --auth-user alice --auth-password alice-demo \\
        --from alice@example.com --to bob@example.com
Ctrl-C stops the demo.

MSG
wait "${pids[-1]}"
