#!/bin/sh
# The integration suite as an automake test (tests/Makefile.am, TESTS).
# Runs pytest on this directory against the build tree named by
# AUTHRELAY_BUILDDIR (set by make check); works from a VPATH build with a
# read-only source tree (make distcheck).
#
#   AUTHRELAY_INTEGRATION=skip  exit 77 (SKIP) without running anything
#   AUTHRELAY_JUNIT=FILE        where to write the JUnit XML (default
#                               $AUTHRELAY_BUILDDIR/tests/integration-junit.xml)
#   extra arguments go to pytest (-k, -x, a test file ...)
set -u

here=$(cd "$(dirname "$0")" && pwd)
: "${AUTHRELAY_BUILDDIR:=$(cd "$here/../.." && pwd)}"
export AUTHRELAY_BUILDDIR

if [ "${AUTHRELAY_INTEGRATION:-}" = skip ]; then
	echo "SKIP: AUTHRELAY_INTEGRATION=skip"
	exit 77
fi

# Debian's python3 and python3-pytest, whatever python3 is first on PATH.
py=/usr/bin/python3
if ! "$py" -c 'import pytest' 2>/dev/null; then
	case "${CI:-}" in
	true|1|yes)
		echo "FAIL: $py cannot import pytest (apt-get install python3-pytest)"
		exit 1 ;;
	esac
	echo "SKIP: $py cannot import pytest (apt-get install python3-pytest)"
	exit 77
fi

junit=${AUTHRELAY_JUNIT:-$AUTHRELAY_BUILDDIR/tests/integration-junit.xml}
mkdir -p "$(dirname "$junit")"

set --  -p no:cacheprovider -rA --junitxml="$junit" "$@"
# A hard bound per test on top of the suite's own bounded waits.
if "$py" -c 'import pytest_timeout' 2>/dev/null; then
	set -- --timeout=180 "$@"
fi

cd "$here" || exit 99
PYTHONDONTWRITEBYTECODE=1 exec "$py" -m pytest "$@"
