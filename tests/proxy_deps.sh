#!/bin/sh
# proxy/ as the design wants it (DESIGN.md, issue 9):
#  - the #include graph of its modules has no circle (a module is a .c
#    and its .h; an edge goes from a module to every proxy/ header its
#    files include);
#  - the network daemon links neither libpam nor libldap.
# Run by make check with AUTHRELAY_SRCDIR and AUTHRELAY_BUILDDIR set; by
# hand: tests/proxy_deps.sh SRCDIR BUILDDIR.
set -eu

src=${1:-${AUTHRELAY_SRCDIR:-.}}
build=${2:-${AUTHRELAY_BUILDDIR:-.}}
fail=0

edges=$(mktemp)
trap 'rm -f "$edges" "$edges.err"' EXIT

for f in "$src"/proxy/*.c "$src"/proxy/*.h; do
	from=$(basename "$f"); from=${from%.*}; from=${from%_int}
	sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)\.h".*/\1/p' "$f" |
	while read -r to; do
		[ -f "$src/proxy/$to.h" ] || continue	# common/, autoconf.h
		to=${to%_int}
		[ "$to" = "$from" ] && continue
		echo "$from $to"
	done
done | sort -u > "$edges"

n=$(wc -l < "$edges")
if [ "$n" -eq 0 ]; then
	echo "proxy_deps: no #include edges found under $src/proxy" >&2
	exit 1
fi
# tsort reports every circle it meets on stderr.
if ! tsort "$edges" > /dev/null 2> "$edges.err" || [ -s "$edges.err" ]; then
	echo "proxy_deps: the #include graph of proxy/ has a circle:" >&2
	cat "$edges.err" >&2
	fail=1
else
	echo "proxy_deps: $n #include edges between proxy/ modules, no circle"
fi

bin="$build/proxy/authrelay"
if [ ! -x "$bin" ]; then
	echo "proxy_deps: $bin not built" >&2
	exit 1
fi
needed=$(LC_ALL=C readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
if [ -z "$needed" ]; then
	echo "proxy_deps: cannot read the libraries $bin needs" >&2
	exit 1
fi
for lib in $needed; do
	case $lib in
	libpam*|libldap*|liblber*)
		echo "proxy_deps: $bin links $lib" >&2
		fail=1
		;;
	esac
done
[ $fail -eq 0 ] && echo "proxy_deps: authrelay links:" $needed
exit $fail
