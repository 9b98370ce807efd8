# Shared by profile.sh and idle_mem.sh: the tools, an RSA-2048
# certificate and a pam_wrapper user (alice) in the work directory $1.
bench_setup() {
	local work=$1 libdir=/usr/lib/x86_64-linux-gnu
	mkdir -p "$work/pam.d" && chmod 1777 "$work" &&
	make -s -f bench.mk -C "$(dirname "${BASH_SOURCE[0]}")" OUT="$work" \
		>/dev/null || return 1
	openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj /CN=localhost \
		-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
	echo "alice:Al1ce-bench-secret:authrelay" > "$work/passdb"
	printf 'auth required %s passdb=%s\naccount required %s passdb=%s\n' \
		"$libdir/pam_wrapper/pam_matrix.so" "$work/passdb" \
		"$libdir/pam_wrapper/pam_matrix.so" "$work/passdb" \
		> "$work/pam.d/authrelay"
}
