#include "autoconf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static const char *log_ident = "authrelay";
static bool log_journal;
static bool log_debug_on;
static log_journal_fn *journal_sink;
static log_tap_fn *tap;
static void *tap_ctx;
static pid_t log_pid;	/* the line prefix's; one getpid() per process */

static bool stderr_is_journal(void)
{
	/* systemd sets JOURNAL_STREAM=dev:ino for the stream it connected;
	 * only trust it if stderr is still that stream. */
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (e == NULL || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

static void log_forked(void)
{
	log_pid = getpid();
}

void log_init(const char *ident)
{
	static bool registered;

	log_ident = ident;
	log_journal = stderr_is_journal();
	log_pid = getpid();
	if (!registered && pthread_atfork(NULL, NULL, log_forked) == 0)
		registered = true;
}

void log_set_debug(bool on)
{
	log_debug_on = on;
}

void log_set_journal_sink(log_journal_fn *fn)
{
	journal_sink = fn;
}

void log_set_tap(log_tap_fn *fn, void *ctx)
{
	tap = fn;
	tap_ctx = ctx;
}

bool log_to_journal(void)
{
	return log_journal;
}

static const char *level_name(enum log_level level)
{
	switch (level) {
	case LOG_LVL_ERR: return "error";
	case LOG_LVL_WARNING: return "warning";
	case LOG_LVL_NOTICE: return "notice";
	case LOG_LVL_INFO: return "info";
	case LOG_LVL_DEBUG: return "debug";
	}
	return "info";
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];

	if (level == LOG_LVL_DEBUG && !log_debug_on)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One event, one line: never let a value break the line. */
	for (char *p = line; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (tap != NULL && tap(level, line, tap_ctx))
		return;
	if (log_journal && journal_sink != NULL) {
		journal_sink(level, line);
		return;
	}
	if (log_journal)
		fprintf(stderr, "<%d>%s\n", (int)level, line);
	else
		fprintf(stderr, "%s[%ld]: %s: %s\n", log_ident,
			(long)(log_pid != 0 ? log_pid : getpid()),
			level_name(level), line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}
