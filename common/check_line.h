/* The report of `authrelay --check`: one line per check on standard
 * output, "ok   WHAT: DETAIL", "warn WHAT: DETAIL" or "FAIL WHAT: DETAIL".
 * The daemon's pre-flight (proxy/preflight.c) and the auth worker's part
 * of it (authrelay-auth --check) write the same lines; each line is
 * flushed at once, so that the two processes' lines keep their order. */
#ifndef AUTHRELAY_CHECK_LINE_H
#define AUTHRELAY_CHECK_LINE_H

enum check_level { CHECK_OK, CHECK_WARN, CHECK_FAIL };

/* One line (control characters in it become '?'; at most 1024 octets). */
void check_line(enum check_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* FAIL lines written by this process so far. */
unsigned check_failures(void);

#endif
