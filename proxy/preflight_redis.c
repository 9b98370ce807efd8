#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "check_line.h"
#include "preflight_redis.h"
#include "settings.h"
#include "shared_state.h"

#define MIN_TIMEOUT_USEC 1000000ULL

/* A command's reply: NULL if it went well, else why (in buf). */
static const char *ask(redisContext *c, char *buf, size_t size,
		       const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (r == NULL) {
		snprintf(buf, size, "%s", c->errstr[0] ? c->errstr :
			 "no answer");
		return buf;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(buf, size, "%.*s", (int)r->len, r->str);
		freeReplyObject(r);
		return buf;
	}
	freeReplyObject(r);
	return NULL;
}

void preflight_check_shared_state(const struct settings *st)
{
	const struct shared_params *p = st->shared;
	uint64_t usec = st->cfg->shared_state_timeout_usec;
	struct timeval tv;
	redisContext *c;
	char why[256];
	const char *err = NULL, *step = "connect";

	if (p == NULL)
		return;
	if (usec < MIN_TIMEOUT_USEC)
		usec = MIN_TIMEOUT_USEC;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	c = p->host != NULL ? redisConnectWithTimeout(p->host, (int)p->port, tv)
			    : redisConnectUnixWithTimeout(p->path, tv);
	if (c == NULL || c->err != 0) {
		check_line(CHECK_FAIL, "shared_state %s: cannot connect: %s",
			   p->display, c != NULL ? c->errstr : "out of memory");
		redisFree(c);
		return;
	}
	redisSetTimeout(c, tv);
	if (p->password != NULL) {
		step = "AUTH";
		err = p->user != NULL ?
		      ask(c, why, sizeof(why), "AUTH %s %s", p->user,
			  p->password) :
		      ask(c, why, sizeof(why), "AUTH %s", p->password);
	}
	if (err == NULL && p->db != 0) {
		step = "SELECT";
		err = ask(c, why, sizeof(why), "SELECT %u", p->db);
	}
	if (err == NULL) {
		step = "PING";
		err = ask(c, why, sizeof(why), "PING");
	}
	if (err != NULL)
		check_line(CHECK_FAIL, "shared_state %s: %s: %s%s", p->display,
			   step, err, strncmp(err, "NOAUTH", 6) == 0 ||
			   strncmp(err, "WRONGPASS", 9) == 0 ?
			   " (check shared_state_password_file)" : "");
	else
		check_line(CHECK_OK, "shared_state %s: connected%s, database "
			   "%u answers", p->display,
			   p->password != NULL ? ", password accepted" : "",
			   p->db);
	redisFree(c);
}
