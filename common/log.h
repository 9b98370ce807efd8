/* Logging: structured journal records under systemd, one line per event
 * on stderr elsewhere. */
#ifndef AUTHRELAY_LOG_H
#define AUTHRELAY_LOG_H

#include <stdbool.h>
#include <stdarg.h>

enum log_level { LOG_LVL_ERR = 3, LOG_LVL_WARNING = 4, LOG_LVL_NOTICE = 5,
		 LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

/* ident: program name for stderr lines; decides journal vs stderr from
 * JOURNAL_STREAM (set by systemd when stderr is the journal). */
void log_init(const char *ident);
void log_set_debug(bool on);
/* Under systemd, a sink that writes a journal record (the daemon sets one
 * that uses sd_journal_send); without one, lines get a <N> prefix. */
typedef void log_journal_fn(enum log_level level, const char *msg);
void log_set_journal_sink(log_journal_fn *fn);
bool log_to_journal(void);
/* A tap that sees every message (debug ones only with debug on) before
 * it is written: authrelay --check keeps what the relay and the TLS
 * layer log as the reason of a failure. It returns true when the
 * message needs no other output. NULL removes it. */
typedef bool log_tap_fn(enum log_level level, const char *msg, void *ctx);
void log_set_tap(log_tap_fn *fn, void *ctx);

/* A line longer than this is cut (an audit record of a message with
 * many recipients is the longest). */
#define LOG_LINE_MAX 16384

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* Start-up and config errors only. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
