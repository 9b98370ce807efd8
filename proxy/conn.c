#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "proxy_proto.h"
#include "run_queue.h"
#include "xalloc.h"

/* Output past this stops the session from reading more commands until
 * the client has read its replies (pipelining backpressure). */
#define CONN_OUTPUT_HIGH 16384
/* Output past this is a broken invariant of the caller's backpressure:
 * the connection is aborted rather than grown. */
#define CONN_OUTPUT_MAX (4 * 1024 * 1024)
/* Reads per wake-up, so one busy client cannot starve the others. */
#define CONN_READS_PER_RUN 8

enum conn_state {
	CONN_PROXY_HEADER,	/* reading the PROXY protocol header */
	CONN_PLAIN,
	CONN_TLS_WAIT_FLUSH,	/* STARTTLS reply still being written */
	CONN_HANDSHAKE,
	CONN_TLS,
	CONN_DEAD,
};

struct conn {
	sd_event *event;
	int fd;
	sd_event_source *io, *timer;
	struct run_queue *queue;	/* this loop's: runs soon, see schedule() */
	struct run_entry run;
	/* The deadline is kept here and the timer moved only when it must
	 * fire sooner: a session pushes it on at every command, and a timer
	 * moved every time would cost a timerfd_settime() each. */
	uint64_t deadline;		/* CLOCK_MONOTONIC usec; 0: none */
	uint64_t timer_at;		/* when the armed timer fires */
	bool timer_armed;
	enum conn_state state;
	SSL *ssl;
	SSL_CTX *tls_ctx;		/* for the handshake to come */
	bool tls_client;
	bool tls_verify;
	char *tls_host;			/* client: expected peer name */
	uint32_t handshake_events;
	uint32_t events;		/* what epoll watches for */
	bool reading;
	bool closing;
	bool read_wants_write;		/* SSL_read returned WANT_WRITE */
	bool write_wants_read;		/* SSL_write returned WANT_READ */
	struct line_reader in;
	size_t in_size;			/* the input buffer's usual size */
	char *out;
	size_t out_off, out_len, out_cap;
	conn_callback *cb;
	void *ctx;
	struct proxy_proto_result proxy;
	const char *proxy_error;
	char tls_error[200];		/* why the handshake failed */
};

static void conn_run(struct conn *c);
static void conn_update_events(struct conn *c);

/* What a connection's event queued (its own reply, the other side of
 * the relay) runs before the loop waits again: one epoll_wait per event,
 * not one per connection touched. c may be gone after conn_run(). */
static void run_and_drain(struct conn *c, void (*fn)(struct conn *c))
{
	struct run_queue *q = c->queue;

	run_queue_hold(q);
	fn(c);
	run_queue_drain(q);
	run_queue_put(q);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	run_and_drain(userdata, conn_run);
	return 0;
}

static void on_run(struct run_entry *e)
{
	conn_run(RUN_ENTRY_OWNER(e, struct conn, run));
}

static void arm_timer(struct conn *c, uint64_t at)
{
	sd_event_source_set_time(c->timer, at);
	sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
	c->timer_at = at;
	c->timer_armed = true;
}

static void conn_timeout(struct conn *c)
{
	uint64_t now;

	c->timer_armed = false;
	if (c->state == CONN_DEAD || c->deadline == 0)
		return;
	if (sd_event_now(c->event, CLOCK_MONOTONIC, &now) >= 0 &&
	    now < c->deadline) {
		arm_timer(c, c->deadline);	/* it was pushed on */
		return;
	}
	c->deadline = 0;
	c->cb(c, CONN_EV_TIMEOUT, c->ctx);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	run_and_drain(userdata, conn_timeout);
	return 0;
}

/* What epoll watches the socket for; a change only when it is one. */
static void watch(struct conn *c, uint32_t ev)
{
	if (ev != c->events && sd_event_source_set_io_events(c->io, ev) >= 0)
		c->events = ev;
}

static void schedule(struct conn *c)
{
	if (c->state != CONN_DEAD)
		run_queue_add(c->queue, &c->run);
}

struct conn *conn_new(sd_event *event, int fd, size_t in_cap, size_t max_line,
		      conn_callback *cb, void *ctx)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	int one = 1;

	/* SMTP is question and answer: a reply must not wait for the
	 * peer's delayed ACK of the previous write (Nagle). Fails harmlessly
	 * on a socket that is not TCP. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	c->event = sd_event_ref(event);
	c->fd = fd;
	c->cb = cb;
	c->ctx = ctx;
	c->reading = true;
	c->state = CONN_PLAIN;
	line_reader_init(&c->in, in_cap, max_line);
	c->in_size = in_cap;
	c->run.run = on_run;
	c->queue = run_queue_get(event);
	c->events = EPOLLIN;
	if (c->queue == NULL ||
	    sd_event_add_io(event, &c->io, fd, EPOLLIN, on_io, c) < 0 ||
	    sd_event_add_time_relative(event, &c->timer, CLOCK_MONOTONIC,
				       UINT64_MAX / 2, 0, on_timer, c) < 0) {
		/* Only fails on ENOMEM or fd exhaustion of epoll. */
		log_err("cannot register connection with the event loop");
		conn_free(&c);	/* closes fd */
		return NULL;
	}
	sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
	return c;
}

void conn_free(struct conn **cp)
{
	struct conn *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	if (c->queue != NULL) {
		run_queue_remove(c->queue, &c->run);
		run_queue_put(c->queue);
	}
	if (c->ssl != NULL) {
		if (c->state == CONN_TLS)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->tls_ctx != NULL)
		SSL_CTX_free(c->tls_ctx);
	free(c->tls_host);
	if (c->fd >= 0)
		close(c->fd);
	line_reader_free(&c->in);
	free(c->out);
	sd_event_unref(c->event);
	free(c);
}

struct line_reader *conn_input(struct conn *c)
{
	return &c->in;
}

void conn_set_input_size(struct conn *c, size_t size)
{
	bool had_room = line_reader_room(&c->in) > 0;

	line_reader_set_size(&c->in, size);
	/* What epoll watches changes only with room to read into, and then
	 * at the next run. (Sessions change size as a reply goes out: the
	 * run that writes it comes anyway, and arming EPOLLOUT for output
	 * about to be written would cost two epoll_ctl per message.) */
	if (c->reading && had_room != (line_reader_room(&c->in) > 0))
		schedule(c);
}

void conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->state == CONN_DEAD || c->closing)
		return;
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (len > CONN_OUTPUT_MAX - (c->out_len - c->out_off)) {
		log_err("connection output over %u octets: aborted",
			CONN_OUTPUT_MAX);
		conn_abort(c);
		return;
	}
	if (c->out_len + len > c->out_cap) {
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off,
				c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		if (c->out_len + len > c->out_cap) {
			size_t cap = c->out_cap ? c->out_cap : 512;

			while (cap < c->out_len + len)
				cap *= 2;
			c->out = xrealloc(c->out, cap);
			c->out_cap = cap;
		}
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	schedule(c);
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	conn_write(c, buf, (size_t)n);
}

size_t conn_output_pending(const struct conn *c)
{
	return c->out_len - c->out_off;
}

bool conn_output_full(const struct conn *c)
{
	return conn_output_pending(c) >= CONN_OUTPUT_HIGH;
}

void conn_set_reading(struct conn *c, bool on)
{
	bool was = c->reading;

	c->reading = on;
	/* Already reading, with epoll watching for input and nothing read
	 * ahead by OpenSSL: input will wake the connection; a run now
	 * would only find the socket empty. */
	if (on && was && (c->events & EPOLLIN) &&
	    (c->ssl == NULL || !SSL_has_pending(c->ssl)))
		return;
	schedule(c);
}

void conn_expect_proxy_header(struct conn *c)
{
	if (c->state != CONN_PLAIN)
		return;
	c->state = CONN_PROXY_HEADER;
	schedule(c);
}

const struct proxy_proto_result *conn_proxy_result(const struct conn *c)
{
	return &c->proxy;
}

const char *conn_proxy_error(const struct conn *c)
{
	return c->proxy_error;
}

/* Peek at what came, and take exactly the header once it is complete:
 * nothing of the client's own first octets (a TLS ClientHello) is
 * consumed. The socket is watched edge-triggered meanwhile, as peeked
 * octets stay readable. The callback may free c. */
static void conn_proxy_read(struct conn *c)
{
	unsigned char buf[PROXY_PROTO_MAX];
	enum proxy_proto_status st;
	size_t hlen = 0;
	ssize_t n;

	n = recv(c->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		      errno == EINTR)) {
		watch(c, EPOLLIN | EPOLLET);
		return;
	}
	if (n <= 0) {
		c->proxy_error = n == 0 ? "closed" : strerror(errno);
		goto failed;
	}
	st = proxy_proto_parse(buf, (size_t)n, &hlen, &c->proxy);
	if (st == PROXY_PROTO_NEED_MORE) {
		if ((size_t)n >= sizeof(buf)) {
			c->proxy_error = "header too long";
			goto failed;
		}
		watch(c, EPOLLIN | EPOLLET);
		return;
	}
	if (st == PROXY_PROTO_INVALID) {
		c->proxy_error = "no valid PROXY header";
		goto failed;
	}
	if (recv(c->fd, buf, hlen, MSG_DONTWAIT) != (ssize_t)hlen) {
		c->proxy_error = "short read";
		goto failed;
	}
	c->state = CONN_PLAIN;
	conn_update_events(c);
	c->cb(c, CONN_EV_PROXY_HEADER, c->ctx);
	return;
failed:
	c->state = CONN_PLAIN;
	c->closing = true;
	c->reading = false;
	conn_update_events(c);
	c->cb(c, CONN_EV_PROXY_FAILED, c->ctx);
}

void conn_start_tls(struct conn *c, SSL_CTX *ctx)
{
	if (c->state != CONN_PLAIN)
		return;
	/* RFC 3207 §4.2 / CVE-2011-0411: plaintext pipelined behind
	 * STARTTLS must not be taken as coming over TLS. */
	line_reader_clear(&c->in);
	SSL_CTX_up_ref(ctx);
	c->tls_ctx = ctx;
	c->state = CONN_TLS_WAIT_FLUSH;
	schedule(c);
}

void conn_start_tls_client(struct conn *c, SSL_CTX *ctx, const char *host,
			   bool verify)
{
	if (c->state != CONN_PLAIN)
		return;
	c->tls_client = true;
	c->tls_verify = verify;
	c->tls_host = xstrdup(host);
	conn_start_tls(c, ctx);
}

bool conn_is_tls(const struct conn *c)
{
	return c->state == CONN_TLS;
}

const char *conn_tls_error(const struct conn *c)
{
	return c->tls_error[0] != '\0' ? c->tls_error : NULL;
}

const char *conn_tls_version(const struct conn *c)
{
	return c->state == CONN_TLS ? SSL_get_version(c->ssl) : NULL;
}

const char *conn_tls_cipher(const struct conn *c)
{
	return c->state == CONN_TLS ? SSL_get_cipher_name(c->ssl) : NULL;
}

void conn_set_deadline(struct conn *c, uint64_t usec)
{
	uint64_t now;

	if (c->state == CONN_DEAD)
		return;
	if (usec == 0) {
		c->deadline = 0;	/* an armed timer finds none, and stops */
		return;
	}
	if (sd_event_now(c->event, CLOCK_MONOTONIC, &now) < 0)
		now = 0;
	c->deadline = now + usec;
	if (!c->timer_armed || c->timer_at > c->deadline)
		arm_timer(c, c->deadline);
}

void conn_close_after_flush(struct conn *c)
{
	c->closing = true;
	c->reading = false;
	schedule(c);
}

void conn_abort(struct conn *c)
{
	c->out_off = c->out_len = 0;
	if (c->state == CONN_TLS_WAIT_FLUSH || c->state == CONN_HANDSHAKE)
		c->state = CONN_PLAIN;
	c->closing = true;
	c->reading = false;
	schedule(c);
}

/* The end: the callback frees c, so nothing may touch it after this. */
static void conn_dead(struct conn *c)
{
	c->state = CONN_DEAD;
	sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
	sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
	c->timer_armed = false;
	c->deadline = 0;
	run_queue_remove(c->queue, &c->run);
	c->cb(c, CONN_EV_CLOSED, c->ctx);
}

static void log_ssl_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e == 0) {
		log_debug("%s: connection closed (%s)", what,
			  errno ? strerror(errno) : "eof");
		return;
	}
	ERR_error_string_n(e, buf, sizeof(buf));
	/* A peer that hangs up without close_notify is common and
	 * harmless: the session's own records tell the story. */
	if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		log_debug("%s: %s", what, buf);
	else
		log_info("%s: %s", what, buf);
	ERR_clear_error();
}

/* Why the handshake failed, for the session's or the relay's record
 * (conn_tls_error): OpenSSL's reason, or how the peer went away. */
static void set_tls_error(struct conn *c)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(c->tls_error, sizeof(c->tls_error),
			 "connection closed (%s)",
			 errno ? strerror(errno) : "eof");
	else
		ERR_error_string_n(e, c->tls_error, sizeof(c->tls_error));
	ERR_clear_error();
	log_debug("TLS handshake failed: %s", c->tls_error);
}

/* 1 done, 0 in progress, -1 failed. */
static int conn_handshake(struct conn *c)
{
	int r, err;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->state = CONN_TLS;
		return 1;
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ) {
		c->handshake_events = EPOLLIN;
		return 0;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		c->handshake_events = EPOLLOUT;
		return 0;
	}
	if (c->tls_client && c->tls_verify &&
	    SSL_get_verify_result(c->ssl) != X509_V_OK) {
		snprintf(c->tls_error, sizeof(c->tls_error),
			 "certificate verification: %s",
			 X509_verify_cert_error_string(
				 SSL_get_verify_result(c->ssl)));
		ERR_clear_error();
		return -1;
	}
	set_tls_error(c);
	return -1;
}

static int conn_begin_tls(struct conn *c)
{
	c->ssl = SSL_new(c->tls_ctx);
	SSL_CTX_free(c->tls_ctx);
	c->tls_ctx = NULL;
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		log_ssl_error("TLS setup failed");
		return -1;
	}
	if (c->tls_client) {
		struct in6_addr a6;
		struct in_addr a4;
		bool is_ip = inet_pton(AF_INET, c->tls_host, &a4) == 1 ||
			     inet_pton(AF_INET6, c->tls_host, &a6) == 1;

		SSL_set_connect_state(c->ssl);
		/* RFC 6066 §3: no IP addresses in SNI. */
		if (!is_ip)
			(void)SSL_set_tlsext_host_name(c->ssl, c->tls_host);
		if (c->tls_verify) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);

			if (is_ip)
				X509_VERIFY_PARAM_set1_ip_asc(vp, c->tls_host);
			else
				SSL_set1_host(c->ssl, c->tls_host);
			SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
		}
	} else {
		SSL_set_accept_state(c->ssl);
	}
	c->state = CONN_HANDSHAKE;
	return 0;
}

/* -1 error; 0 otherwise (all written or would block). */
static int conn_flush(struct conn *c)
{
	c->read_wants_write = false;
	while (c->out_off < c->out_len) {
		size_t len = c->out_len - c->out_off;
		ssize_t n;

		if (c->ssl != NULL) {
			int r, err;

			ERR_clear_error();
			c->write_wants_read = false;
			r = SSL_write(c->ssl, c->out + c->out_off,
				      len > INT32_MAX ? INT32_MAX : (int)len);
			if (r <= 0) {
				err = SSL_get_error(c->ssl, r);
				if (err == SSL_ERROR_WANT_WRITE)
					return 0;
				if (err == SSL_ERROR_WANT_READ) {
					c->write_wants_read = true;
					return 0;
				}
				log_ssl_error("TLS write failed");
				return -1;
			}
			n = r;
		} else {
			n = send(c->fd, c->out + c->out_off, len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return 0;
				if (errno == EINTR)
					continue;
				log_debug("write failed: %s", strerror(errno));
				return -1;
			}
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

/* 1 new input, 0 none, -1 closed or error. */
static int conn_read(struct conn *c)
{
	int got = 0;

	for (int i = 0; i < CONN_READS_PER_RUN; i++) {
		size_t avail;
		char *p = line_reader_space(&c->in, &avail);
		ssize_t n;

		if (avail == 0)
			break;
		if (c->ssl != NULL) {
			int r, err;

			ERR_clear_error();
			errno = 0;
			r = SSL_read(c->ssl, p,
				     avail > INT32_MAX ? INT32_MAX : (int)avail);
			if (r <= 0) {
				err = SSL_get_error(c->ssl, r);
				if (err == SSL_ERROR_WANT_READ)
					break;
				if (err == SSL_ERROR_WANT_WRITE) {
					c->read_wants_write = true;
					break;
				}
				if (err != SSL_ERROR_ZERO_RETURN)
					log_ssl_error("TLS read failed");
				return got ? got : -1;
			}
			n = r;
		} else {
			n = recv(c->fd, p, avail, MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				if (errno == EINTR)
					continue;
				return got ? got : -1;
			}
			if (n == 0)
				return got ? got : -1;
		}
		line_reader_commit(&c->in, (size_t)n);
		got = 1;
		/* A short read took all the socket had; OpenSSL reads ahead
		 * (tls.c), so with nothing left in its buffer the socket was
		 * drained too. Asking again would only return EAGAIN: the
		 * level-triggered epoll reports what comes later. */
		if (c->ssl == NULL ? (size_t)n < avail
				   : !SSL_has_pending(c->ssl))
			break;
	}
	/* What OpenSSL already read (or decrypted) raises no epoll event:
	 * come back for it, but only while there is room for it. With the
	 * buffer full the session must consume first; it asks for more with
	 * conn_set_reading(). Re-arming regardless would spin this thread's
	 * loop forever (queued work runs before anything else). */
	if (c->ssl != NULL && c->reading && SSL_has_pending(c->ssl) &&
	    line_reader_room(&c->in) > 0)
		schedule(c);
	return got;
}

static void conn_update_events(struct conn *c)
{
	uint32_t ev = 0;

	if (c->state == CONN_HANDSHAKE) {
		ev = c->handshake_events;
	} else {
		if (c->reading && !c->closing &&
		    c->state != CONN_TLS_WAIT_FLUSH &&
		    line_reader_room(&c->in) > 0)
			ev |= EPOLLIN;
		/* Output with a run queued is written by that run (a reply
		 * of the session's to the input just read): EPOLLOUT only
		 * for what a full socket holds back. */
		if ((c->out_off < c->out_len && !c->run.queued) ||
		    c->read_wants_write)
			ev |= EPOLLOUT;
		if (c->write_wants_read)
			ev |= EPOLLIN;
	}
	watch(c, ev);
}

/* Between commands a connection holds no I/O buffer of its own (with
 * SSL_MODE_RELEASE_BUFFERS, OpenSSL holds none of its either): idle
 * sessions are what a server mostly keeps. */
static void conn_idle_release(struct conn *c)
{
	if (c->state != CONN_PLAIN && c->state != CONN_TLS)
		return;
	if (c->out_off == c->out_len && c->out != NULL) {
		free(c->out);
		c->out = NULL;
		c->out_off = c->out_len = c->out_cap = 0;
	}
	/* Not during DATA (a bigger buffer asked for): the stream goes on. */
	if (c->in.next_cap == c->in_size &&
	    (c->ssl == NULL || !SSL_has_pending(c->ssl)))
		line_reader_release(&c->in);
}

static void conn_run(struct conn *c)
{
	bool had_output = c->out_off < c->out_len;
	int r;

	if (c->state == CONN_DEAD)
		return;
	if (c->state == CONN_PROXY_HEADER) {
		conn_proxy_read(c);
		return;
	}
	if (c->state == CONN_HANDSHAKE) {
		r = conn_handshake(c);
		if (r != 0)
			metrics_tls_handshake(c->tls_client, r > 0);
		if (r < 0) {
			conn_dead(c);
			return;
		}
		if (r == 0) {
			conn_update_events(c);
			return;
		}
		c->cb(c, CONN_EV_TLS_READY, c->ctx);
		if (c->state == CONN_DEAD)
			return;
		had_output = c->out_off < c->out_len;
	}
	if (conn_flush(c) < 0) {
		conn_dead(c);
		return;
	}
	if (c->out_off == c->out_len) {
		if (c->closing) {
			/* close_notify (RFC 8446 §6.1): the peer tells the
			 * end from a cut connection, and a client keeps the
			 * session ticket it would drop after a cut. One try:
			 * the peer's close_notify is not waited for. */
			if (c->state == CONN_TLS) {
				ERR_clear_error();
				(void)SSL_shutdown(c->ssl);
				ERR_clear_error();
			}
			conn_dead(c);
			return;
		}
		if (c->state == CONN_TLS_WAIT_FLUSH) {
			if (conn_begin_tls(c) < 0) {
				conn_dead(c);
				return;
			}
			conn_run(c);
			return;
		}
		if (had_output) {
			c->cb(c, CONN_EV_FLUSHED, c->ctx);
			if (c->closing || c->out_off < c->out_len ||
			    c->state == CONN_TLS_WAIT_FLUSH) {
				schedule(c);
				conn_update_events(c);
				return;
			}
		}
	}
	if (c->reading && !c->closing && c->state != CONN_TLS_WAIT_FLUSH) {
		r = conn_read(c);
		if (r > 0) {
			c->cb(c, CONN_EV_INPUT, c->ctx);
			/* Whatever the session did (replies, STARTTLS, close)
			 * is carried out on the next run. */
		} else if (r < 0) {
			conn_dead(c);
			return;
		}
	}
	conn_idle_release(c);
	conn_update_events(c);
}
