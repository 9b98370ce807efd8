#!/bin/bash
# Build the libFuzzer harnesses in a build directory of their own and run
# each briefly on a copy of its seed corpus, then every committed
# reproducer of it as a regression input. A crash, a sanitizer report or
# a broken invariant fails that target.
#
#   tests/fuzz/run-ci.sh [BUILDDIR]
#
# BUILDDIR defaults to a new directory under /tmp. FUZZ_SECONDS (default
# 20) is each target's run time; CC defaults to clang. One line per
# target in BUILDDIR/fuzz-results: "PASS NAME" or "FAIL NAME" (.ci/run
# counts them); the exit status is non-zero if any target failed.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-$(mktemp -d /tmp/authrelay-fuzz.XXXXXX)}
SECONDS_EACH=${FUZZ_SECONDS:-20}
TARGETS="smtp_cmd sasl data_filter header proxy_proto config auth_proto
	smtp_reply smtp_session"

mkdir -p "$BUILD"
cd "$BUILD"
if [ ! -f Makefile ]; then
	[ -x "$SRC/configure" ] || (cd "$SRC" && autoreconf -fi)
	CC=${CC:-clang} "$SRC/configure" --enable-warnings --enable-fuzzing \
		>configure.log
fi
make -j"$(nproc)" fuzz >build.log 2>&1 || { tail -n 50 build.log; exit 1; }

results=$BUILD/fuzz-results
: >"$results"
failed=0
for t in $TARGETS; do
	bin=$BUILD/tests/fuzz/fuzz_$t
	work=$BUILD/fuzz-run/$t
	rm -rf "$work"
	mkdir -p "$work/corpus" "$work/artifacts"
	cp "$SRC/tests/fuzz/corpus/$t/"* "$work/corpus/"
	ok=yes
	# The session logs each step on stderr: closed for the run (the
	# invariants and libFuzzer keep their own copy).
	quiet=()
	[ "$t" = smtp_session ] && quiet=(-close_fd_mask=2)
	# -timeout: one input taking 10 s is a hang, and a failure.
	if ! timeout --kill-after=10 $((SECONDS_EACH + 60)) "$bin" "${quiet[@]}" \
		-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/artifacts/" \
		"$work/corpus" >"$work/fuzz.log" 2>&1; then
		ok=no
		echo "fuzz_$t: fuzzing failed; artifacts in $work/artifacts"
		grep -E 'invariant|ERROR|SUMMARY|runtime error' "$work/fuzz.log" |
			head -n 20 || true
	fi
	shopt -s nullglob
	repro=("$SRC/tests/fuzz/reproducers/$t/"*)
	shopt -u nullglob
	if [ ${#repro[@]} -gt 0 ] &&
	   ! timeout --kill-after=10 120 "$bin" -runs=1 "${repro[@]}" \
		>"$work/reproducers.log" 2>&1; then
		ok=no
		echo "fuzz_$t: a reproducer fails again"
		grep -E 'Running|invariant|ERROR|SUMMARY|runtime error' \
			"$work/reproducers.log" | head -n 20 || true
	fi
	stats=$(grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' \
		"$work/fuzz.log" | tr '\n' ' ' || true)
	if [ $ok = yes ]; then
		echo "PASS fuzz_$t" >>"$results"
		echo "PASS: fuzz_$t (${SECONDS_EACH}s, ${#repro[@]} reproducers) $stats"
	else
		echo "FAIL fuzz_$t" >>"$results"
		echo "FAIL: fuzz_$t"
		failed=$((failed + 1))
	fi
done
echo "fuzz: $(grep -c '^PASS' "$results") passed, $failed failed ($BUILD)"
[ $failed -eq 0 ]
