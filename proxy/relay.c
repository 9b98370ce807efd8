#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "audit.h"
#include "auth_proto.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "relay_int.h"
#include "relay_targets.h"
#include "settings.h"
#include "smtp_reply.h"
#include "strbuf.h"
#include "tls.h"
#include "xalloc.h"

/* RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with CRLF. */
#define RELAY_LINE_MAX 510
#define RELAY_IN_BUF 2048
/* A smarthost that failed is skipped for this long. */
#define RELAY_DEAD_USEC (60 * USEC_PER_SEC)
#define RELAY_CLOSE_GRACE_USEC (5 * USEC_PER_SEC)

static void relay_try_next(struct relay *r);

const struct relay_target *relay_cur_target(const struct relay *r)
{
	return &r->st->relay_targets->t[r->target];
}

bool relay_pipelining(const struct relay *r)
{
	return r->conn != NULL && r->caps.pipelining && r->retry_mail == NULL &&
	       (r->state == R_READY || r->state == R_CMD);
}

const char *relay_host(const struct relay *r)
{
	return r->target < r->st->relay_targets->n ? relay_cur_target(r)->name :
	       "(none)";
}

const struct smtp_ehlo_caps *relay_caps(const struct relay *r)
{
	return &r->caps;
}

const char *relay_tls_version(const struct relay *r)
{
	return r->conn != NULL ? conn_tls_version(r->conn) : NULL;
}

bool relay_authenticated(const struct relay *r)
{
	return r->authenticated;
}

static void relay_free(struct relay *r)
{
	sd_event_source_disable_unref(r->connect_io);
	sd_event_source_disable_unref(r->connect_timer);
	sd_event_source_disable_unref(r->kick);
	relay_cache_forget(r);
	if (r->fd >= 0)
		close(r->fd);
	conn_free(&r->conn);
	free(r->login);
	free(r->address);
	free(r->client_ip);
	free(r->session_id);
	settings_put(&r->st);
	sd_event_unref(r->event);
	free(r);
}

static void reply_set(struct relay_reply *rep, int code, const char *enh,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reply_set(struct relay_reply *rep, int code, const char *enh,
		      const char *fmt, ...)
{
	va_list ap;

	rep->code = code;
	snprintf(rep->enhanced, sizeof(rep->enhanced), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(rep->text, sizeof(rep->text), fmt, ap);
	va_end(ap);
}

/* Report to the session; the session may free r in its callback, so
 * this is the last thing a caller does with r. */
void relay_report(struct relay *r, enum relay_event ev,
		  const struct relay_reply *rep)
{
	if (r->cb != NULL)
		r->cb(r, ev, rep, r->ctx);
}

static void relay_failed(struct relay *r)
{
	struct relay_reply rep;

	r->state = R_DEAD;
	reply_set(&rep, 451, r->fail_enh != NULL ? r->fail_enh : "4.4.1", "%s",
		  r->fail_reason);
	if (r->cb == NULL) {
		relay_free(r);
		return;
	}
	relay_report(r, RELAY_EV_FAILED, &rep);
}

/* Something went wrong with the connection: drop it (never sending what
 * is queued), then try the next smarthost if still setting up, or report
 * the failure. Safe from within a conn callback: the rest happens on
 * CONN_EV_CLOSED. */
void relay_fail(struct relay *r, const char *fmt, ...)
{
	va_list ap;

	if (r->state == R_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(r->fail_reason, sizeof(r->fail_reason), fmt, ap);
	va_end(ap);
	if (r->cb != NULL)
		log_warn("session=%s smarthost %s: %s", r->session_id,
			 relay_host(r), r->fail_reason);
	if (r->conn != NULL) {
		r->state = R_DEAD;
		conn_abort(r->conn);
		return;
	}
	if (r->setting_up && r->cb != NULL) {
		relay_try_next(r);
		return;
	}
	relay_failed(r);
}

void relay_sent(struct relay *r, enum relay_state next, uint64_t timeout)
{
	r->state = next;
	smtp_reply_reset(&r->parse);
	conn_set_deadline(r->conn, timeout);
}

void relay_send_line(struct relay *r, enum relay_state next,
		     uint64_t timeout, const char *fmt, ...)
{
	char buf[2048];
	struct strbuf sb;
	va_list ap;

	/* Whatever is already buffered came before this command was sent:
	 * a reply nobody asked for yet, which must not be taken for this
	 * command's (CVE-2020-8794 class). */
	if (r->inflight == 0 &&
	    line_reader_pending(conn_input(r->conn)) > 0) {
		relay_fail(r, "reply before the command");
		return;
	}
	strbuf_init(&sb, buf, sizeof(buf));
	va_start(ap, fmt);
	strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	strbuf_add(&sb, "\r\n");
	if (strbuf_truncated(&sb)) {
		explicit_bzero(buf, sizeof(buf));
		relay_fail(r, "command too long");
		return;
	}
	conn_write(r->conn, strbuf_str(&sb), strbuf_len(&sb));
	explicit_bzero(buf, sizeof(buf));
	if (next == R_CMD && r->inflight++ > 0) {
		/* Pipelined behind commands still in flight: the reply
		 * being read belongs to an earlier one. */
		conn_set_deadline(r->conn, timeout);
		return;
	}
	relay_sent(r, next, timeout);
}

/* Session set-up */

void relay_after_ehlo(struct relay *r)
{
	const struct config *cfg = r->cfg;

	if (cfg->relay_tls == RELAY_TLS_STARTTLS && !conn_is_tls(r->conn)) {
		if (!r->caps.starttls) {
			/* Never a silent downgrade to plaintext. */
			relay_fail(r, "STARTTLS not offered");
			return;
		}
		relay_send_line(r, R_STARTTLS, cfg->command_timeout_usec, "STARTTLS");
		return;
	}
	if ((cfg->relay_auth_user != NULL || cfg->relay_auth_sender) &&
	    !r->authenticated) {
		relay_auth_start(r);
		return;
	}
	if (cfg->xclient && r->caps.xclient && !r->xclient_done) {
		char line[3 * AUTH_USER_MAX + 300];
		struct strbuf sb;

		/* Postfix XCLIENT_README: the smarthost logs and applies
		 * policy to the real client. */
		strbuf_init(&sb, line, sizeof(line));
		strbuf_add(&sb, "XCLIENT LOGIN=");
		relay_xtext(&sb, r->login);
		strbuf_printf(&sb, " ADDR=%s",
			      strchr(r->client_ip, ':') ? "IPV6:" : "");
		relay_xtext(&sb, r->client_ip);
		strbuf_add(&sb, " NAME=[UNAVAILABLE]");
		r->xclient_done = true;
		relay_send_line(r, R_XCLIENT, cfg->command_timeout_usec, "%s",
			  strbuf_str(&sb));
		return;
	}
	r->state = R_READY;
	r->setting_up = false;
	conn_set_deadline(r->conn, 0);
	relay_target_set_dead(relay_cur_target(r)->name, 0);
	if (r->target > 0 || (r->tried & ~1ULL) != 0)
		metrics_smarthost(relay_host(r), METRICS_SMARTHOST_FAILOVER);
	log_info("session=%s smarthost %s ready%s%s", r->session_id,
		 relay_host(r), conn_is_tls(r->conn) ? ", TLS" : "",
		 r->authenticated ? ", authenticated" : "");
	if (relay_cache_resend(r))
		return;
	relay_report(r, RELAY_EV_READY, NULL);
}

static void send_ehlo(struct relay *r)
{
	memset(&r->caps, 0, sizeof(r->caps));
	relay_send_line(r, R_EHLO, r->cfg->command_timeout_usec, "EHLO %s",
		  r->cfg->hostname);
}

/* A complete reply arrived in state r->state. */
static void on_reply(struct relay *r)
{
	const struct config *cfg = r->cfg;
	int code = r->reply.code;

	switch (r->state) {
	case R_GREETING:
		if (code != 220) {
			relay_fail(r, "greeting %d %s", code, r->reply.text);
			return;
		}
		send_ehlo(r);
		return;
	case R_EHLO:
		if (code != 250) {
			relay_fail(r, "EHLO refused: %d %s", code, r->reply.text);
			return;
		}
		relay_after_ehlo(r);
		return;
	case R_STARTTLS:
		if (code != 220) {
			relay_fail(r, "STARTTLS refused: %d %s", code,
				   r->reply.text);
			return;
		}
		r->state = R_HANDSHAKE;
		conn_start_tls_client(r->conn, r->st->relay_ssl_ctx,
				      relay_cur_target(r)->host, cfg->relay_tls_verify);
		conn_set_deadline(r->conn, cfg->relay_connect_timeout_usec);
		return;
	case R_AUTH:
	case R_AUTH_LOGIN_USER:
	case R_AUTH_LOGIN_PASS:
	case R_AUTH_OAUTH:
	case R_AUTH_OAUTH_ERR:
		relay_auth_reply(r);
		return;
	case R_XCLIENT:
		if (code != 220) {
			/* Not authorized for XCLIENT: go on without it. */
			log_warn("session=%s smarthost %s refused XCLIENT: %d %s",
				 r->session_id, relay_host(r), code,
				 r->reply.text);
			relay_after_ehlo(r);
			return;
		}
		/* XCLIENT restarts the session: greet again. Our AUTH is
		 * not repeated: with LOGIN= the smarthost already takes the
		 * session as the user's (Postfix XCLIENT_README), and a
		 * second AUTH would be refused. */
		send_ehlo(r);
		return;
	case R_PARKING:
		relay_cache_parked(r);
		return;
	case R_CMD:
		if (r->retry_mail != NULL && relay_cache_mail_failed(r))
			return;
		/* RFC 2920 §3.1: the replies come in the order of the
		 * commands; DATA is the last of a group, so a 354 leaves
		 * nothing in flight. */
		if (--r->inflight > 0) {
			if (code == 354) {
				relay_fail(r, "354 before the last reply");
				return;
			}
			smtp_reply_reset(&r->parse);
			relay_report(r, RELAY_EV_REPLY, &r->reply);
			return;
		}
		r->state = code == 354 ? R_DATA : R_READY;
		conn_set_deadline(r->conn, 0);
		relay_report(r, RELAY_EV_REPLY, &r->reply);
		return;
	case R_DOT:
		r->state = R_READY;
		conn_set_deadline(r->conn, 0);
		relay_report(r, RELAY_EV_REPLY, &r->reply);
		return;
	default:
		/* A reply nobody asked for (CVE-2020-8794 class). */
		relay_fail(r, "unexpected reply %d", code);
		return;
	}
}

/* One reply line; 1 when the reply is complete, 0 for more, -1 bad. */
static int reply_line(struct relay *r, const char *line, size_t len)
{
	const char *text;
	enum smtp_reply_status st = smtp_reply_line(&r->parse, line, len,
						    &text);

	if (st == SMTP_REPLY_BAD)
		return -1;
	if (r->parse.lines > 1 && r->state == R_EHLO)
		smtp_ehlo_keyword(text, &r->caps);
	if (st == SMTP_REPLY_MORE)
		return 0;
	r->reply.code = r->parse.code;
	memcpy(r->reply.enhanced, r->parse.enhanced, sizeof(r->reply.enhanced));
	memcpy(r->reply.text, r->parse.text, sizeof(r->reply.text));
	return 1;
}

_Static_assert(sizeof(((struct relay_reply *)0)->text) ==
	       sizeof(((struct smtp_reply *)0)->text) &&
	       sizeof(((struct relay_reply *)0)->enhanced) ==
	       sizeof(((struct smtp_reply *)0)->enhanced),
	       "relay_reply and smtp_reply hold the same text");

static void on_input(struct relay *r)
{
	struct line_reader *lr = conn_input(r->conn);

	for (;;) {
		enum line_status ls;
		char *line;
		size_t len;
		int done;

		if (r->state == R_DEAD)
			return;
		ls = line_reader_next(lr, &line, &len);
		if (ls == LINE_NONE)
			return;
		if (r->state == R_CLOSING)
			continue;
		if (ls == LINE_TOO_LONG) {
			relay_fail(r, "reply line over 512 octets");
			return;
		}
		if (r->state == R_READY || r->state == R_DATA ||
		    r->state == R_HANDSHAKE || r->state == R_CONNECTING ||
		    r->state == R_IDLE) {
			relay_fail(r, "reply without a command");
			return;
		}
		done = reply_line(r, line, len);
		if (done < 0) {
			relay_fail(r, "malformed reply");
			return;
		}
		if (done > 0)
			on_reply(r);
		/* on_reply may have started TLS: what follows in the buffer
		 * is gone, as it must be (RFC 3207 §4.2, client side). */
		if (r->state == R_HANDSHAKE)
			return;
	}
}

/* The handshake with the smarthost failed (its certificate, or TLS
 * itself): a record with the session and client it was for. */
static void tls_failed(struct relay *r, const struct conn *c)
{
	const char *why = conn_tls_error(c);

	if (why == NULL)
		why = "connection closed";
	audit(LOG_LVL_WARNING, "tls-failure", "session", r->session_id,
	      "client", r->client_ip, "peer", "smarthost",
	      "smarthost", relay_host(r), "reason", why, NULL);
	snprintf(r->fail_reason, sizeof(r->fail_reason),
		 "TLS handshake failed: %s", why);
}

static void on_conn_event(struct conn *c, enum conn_event ev, void *ctx)
{
	struct relay *r = ctx;

	switch (ev) {
	case CONN_EV_INPUT:
		on_input(r);
		break;
	case CONN_EV_FLUSHED:
		/* Cleared on any flush: the write that filled the buffer may
		 * also have ended the message (then no DRAINED is due, but
		 * the next message must not start "full"). */
		if (r->data_full) {
			r->data_full = false;
			if (r->state == R_DATA)
				relay_report(r, RELAY_EV_DRAINED, NULL);
		}
		break;
	case CONN_EV_TLS_READY:
		if (r->cfg->relay_tls == RELAY_TLS_TLS) {
			/* Implicit TLS (RFC 8314): the greeting comes now. */
			r->state = R_GREETING;
			smtp_reply_reset(&r->parse);
			conn_set_deadline(r->conn, r->cfg->command_timeout_usec);
		} else {
			/* RFC 3207 §4.2: start over with EHLO. */
			send_ehlo(r);
		}
		break;
	case CONN_EV_TIMEOUT:
		if (r->state == R_IDLE) {
			relay_cache_expired(r);
			break;
		}
		relay_fail(r, "timeout");
		break;
	case CONN_EV_CLOSED:
		if (r->state == R_HANDSHAKE && r->cb != NULL)
			tls_failed(r, c);
		conn_free(&r->conn);
		if (r->state == R_CLOSING || r->cb == NULL) {
			relay_free(r);
			return;
		}
		if (r->state != R_DEAD && r->state != R_HANDSHAKE)
			snprintf(r->fail_reason, sizeof(r->fail_reason),
				 "connection lost");
		if (relay_cache_retry(r))
			return;
		if (r->setting_up) {
			relay_try_next(r);
			return;
		}
		relay_failed(r);
		break;
	case CONN_EV_PROXY_HEADER:
	case CONN_EV_PROXY_FAILED:
		break;	/* never asked for towards a smarthost */
	}
}

/* Connecting */

static void connect_cleanup(struct relay *r)
{
	r->connect_io = sd_event_source_disable_unref(r->connect_io);
	sd_event_source_set_enabled(r->connect_timer, SD_EVENT_OFF);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

static void connected(struct relay *r)
{
	int fd = r->fd;

	metrics_smarthost(relay_host(r), METRICS_SMARTHOST_CONNECT);
	r->connect_io = sd_event_source_disable_unref(r->connect_io);
	sd_event_source_set_enabled(r->connect_timer, SD_EVENT_OFF);
	r->fd = -1;
	r->conn = conn_new(r->event, fd, RELAY_IN_BUF, RELAY_LINE_MAX,
			   on_conn_event, r);
	if (r->conn == NULL) {
		relay_fail(r, "cannot set up connection");
		return;
	}
	if (r->cfg->relay_tls == RELAY_TLS_TLS) {
		r->state = R_HANDSHAKE;
		conn_start_tls_client(r->conn, r->st->relay_ssl_ctx,
				      relay_cur_target(r)->host,
				      r->cfg->relay_tls_verify);
		conn_set_deadline(r->conn, r->cfg->relay_connect_timeout_usec);
	} else {
		r->state = R_GREETING;
		smtp_reply_reset(&r->parse);
		conn_set_deadline(r->conn, r->cfg->command_timeout_usec);
	}
}

static int on_connect_io(sd_event_source *s, int fd, uint32_t revents,
			 void *userdata)
{
	struct relay *r = userdata;
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		log_info("session=%s smarthost %s: connect: %s", r->session_id,
			 relay_host(r), strerror(err));
		connect_cleanup(r);
		r->addr++;
		relay_connect(r);
		return 0;
	}
	connected(r);
	return 0;
}

static int on_connect_timeout(sd_event_source *s, uint64_t usec,
			      void *userdata)
{
	struct relay *r = userdata;

	log_info("session=%s smarthost %s: connect timed out", r->session_id,
		 relay_host(r));
	connect_cleanup(r);
	r->addr++;
	relay_connect(r);
	return 0;
}

/* Try the current target's next address, or move on to the next target. */
void relay_connect(struct relay *r)
{
	const struct relay_targets *ts = r->st->relay_targets;

	for (;;) {
		const struct relay_target *t;
		uint64_t now = 0;

		if (r->target >= ts->n) {
			if (r->pass == 0) {
				/* Every live one failed: try those marked
				 * dead too, rather than give up unasked. */
				r->pass = 1;
				r->target = 0;
				r->addr = 0;
				continue;
			}
			r->setting_up = false;
			if (r->fail_reason[0] == '\0')
				snprintf(r->fail_reason, sizeof(r->fail_reason),
					 "no smarthost reachable");
			relay_failed(r);
			return;
		}
		t = &ts->t[r->target];
		sd_event_now(r->event, CLOCK_MONOTONIC, &now);
		if (r->addr == 0) {
			uint64_t bit = 1ULL << (r->target % 64);
			bool skip = r->pass == 0 ? relay_target_is_dead(t->name, now)
						 : (r->tried & bit) != 0;

			if (skip) {
				/* Pass 0 takes the live ones, pass 1 the
				 * ones skipped as dead. */
				r->target++;
				continue;
			}
			r->tried |= bit;
		}
		if (r->addr >= t->n_addrs) {
			metrics_smarthost(t->name, METRICS_SMARTHOST_FAILURE);
			if (t->n_addrs > 0 || r->pass == 0)
				relay_target_set_dead(t->name, now + RELAY_DEAD_USEC);
			r->target++;
			r->addr = 0;
			continue;
		}
		r->fd = socket(t->addrs[r->addr].ss_family,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (r->fd < 0) {
			r->addr++;
			continue;
		}
		r->state = R_CONNECTING;
		if (connect(r->fd, (const struct sockaddr *)&t->addrs[r->addr],
			    t->lens[r->addr]) == 0) {
			connected(r);
			return;
		}
		if (errno != EINPROGRESS) {
			log_info("session=%s smarthost %s: connect: %s",
				 r->session_id, t->name, strerror(errno));
			connect_cleanup(r);
			r->addr++;
			continue;
		}
		if (sd_event_add_io(r->event, &r->connect_io, r->fd, EPOLLOUT,
				    on_connect_io, r) < 0) {
			connect_cleanup(r);
			r->addr++;
			continue;
		}
		sd_event_source_set_time_relative(r->connect_timer,
						  r->cfg->relay_connect_timeout_usec);
		sd_event_source_set_enabled(r->connect_timer, SD_EVENT_ONESHOT);
		return;
	}
}

/* The current target failed during set-up: mark it and go on. */
static void relay_try_next(struct relay *r)
{
	uint64_t now = 0;

	sd_event_now(r->event, CLOCK_MONOTONIC, &now);
	relay_target_set_dead(relay_cur_target(r)->name, now + RELAY_DEAD_USEC);
	metrics_smarthost(relay_host(r), METRICS_SMARTHOST_FAILURE);
	conn_free(&r->conn);
	connect_cleanup(r);
	r->target++;
	r->addr = 0;
	r->authenticated = false;
	r->xclient_done = false;
	relay_connect(r);
}

void relay_set_identity(struct relay *r, const struct relay_identity *id)
{
	free(r->login);
	free(r->address);
	free(r->client_ip);
	free(r->session_id);
	r->login = xstrdup(id->login);
	r->address = id->address ? xstrdup(id->address) : NULL;
	r->client_ip = xstrdup(id->client_ip);
	r->session_id = xstrdup(id->session_id);
}

static int on_kick(sd_event_source *s, void *userdata)
{
	struct relay *r = userdata;

	if (r->conn == NULL)
		relay_connect(r);
	else if (r->state == R_READY)	/* taken from the cache */
		relay_report(r, RELAY_EV_READY, NULL);
	return 0;
}

struct relay *relay_open(sd_event *event, struct relay_cache *cache,
			 struct settings *st,
			 const struct relay_identity *id,
			 relay_callback *cb, void *ctx)
{
	struct relay *r = cache != NULL ?
			  relay_cache_take(cache, st, id, cb, ctx) : NULL;

	if (r != NULL)
		return r;
	r = xcalloc(1, sizeof(*r));
	relay_cache_adopt(cache, r);

	r->event = sd_event_ref(event);
	atomic_fetch_add(&st->refs, 1);
	r->st = st;
	r->cfg = st->cfg;
	r->cb = cb;
	r->ctx = ctx;
	r->fd = -1;
	relay_set_identity(r, id);
	r->setting_up = true;
	r->state = R_CONNECTING;
	if (sd_event_add_time_relative(event, &r->connect_timer,
				       CLOCK_MONOTONIC, UINT64_MAX / 2, 0,
				       on_connect_timeout, r) < 0 ||
	    sd_event_add_defer(event, &r->kick, on_kick, r) < 0) {
		relay_free(r);
		return NULL;
	}
	sd_event_source_set_enabled(r->connect_timer, SD_EVENT_OFF);
	/* Connect from the loop: the callback never runs inside this call. */
	sd_event_source_set_enabled(r->kick, SD_EVENT_ONESHOT);
	return r;
}

void relay_abort(struct relay **rp)
{
	struct relay *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	r->cb = NULL;
	r->ctx = NULL;
	if (r->conn != NULL) {
		/* Freed on CONN_EV_CLOSED: this may run inside one of the
		 * connection's own callbacks. */
		r->state = R_DEAD;
		conn_abort(r->conn);
		return;
	}
	relay_free(r);
}

void relay_close(struct relay **rp)
{
	struct relay *r = *rp;

	if (r == NULL)
		return;
	if (r->state != R_READY || r->conn == NULL) {
		relay_abort(rp);
		return;
	}
	*rp = NULL;
	r->cb = NULL;
	r->ctx = NULL;
	if (!relay_cache_park(r))
		relay_quit(r);
}

void relay_quit(struct relay *r)
{
	conn_write(r->conn, "QUIT\r\n", 6);
	r->state = R_CLOSING;
	conn_close_after_flush(r->conn);
	conn_set_deadline(r->conn, RELAY_CLOSE_GRACE_USEC);
}
