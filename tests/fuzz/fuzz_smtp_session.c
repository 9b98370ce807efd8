/* The SMTP session state machine (proxy/smtp_session.c, smtp_auth.c,
 * smtp_tx.c) driven by fuzzed client input over a socketpair(), as
 * tests/unit/test_smtp_session.c drives it, with both of its peers in
 * this process and on the same event loop, so one input costs no fork:
 * - an auth worker that speaks the worker protocol (common/auth_proto.c)
 *   on the socket the session's auth pool asks the control channel for
 *   (ctl.h: SPAWN): "alice" with "s3cret-pw" is AUTH_OK (address
 *   alice@example.org), "tmp" is AUTH_TEMPFAIL, anything else
 *   AUTH_PERMFAIL;
 * - a scripted smarthost on 127.0.0.1 that relay.c connects to (plain,
 *   no AUTH; 8BITMIME, SMTPUTF8, PIPELINING): MAIL from a path holding "bad" is 553, RCPT to a local part
 *   starting "no" 550, "tmp" 451, "drop" closes the connection; a
 *   message holding "REJECT" is 554 at its end, any other is accepted
 *   "250 2.0.0 Ok: queued as FZ<n>".
 * The credential cache is off and failure_delay 0 (no timer to wait
 * for); max_failures_per_ip 4, max_recipients 3, max_message_size 2k and
 * max_bad_commands 10, so that the fuzzer reaches every limit.
 *
 * Input: octet 0 seeds the splits; bit 0 of octet 1 picks the listener
 * state (1: TLS assumed, the session's assume_tls test hook; 0: a
 * STARTTLS listener before STARTTLS, where STARTTLS starts a handshake
 * nobody can finish: no certificate); the rest is what the client sends.
 * Each input runs twice from the same start (the shared brute-force,
 * rate and dead-smarthost state cleared): whole, then in fuzzer-chosen
 * pieces with the loop run until it settles after each.
 *
 * Invariants beyond the sanitizers:
 * - the greeting, one "220 " line, comes before any input;
 * - every reply is one or more CRLF-ended lines of printable ASCII, at
 *   most 512 octets each (RFC 5321 §4.5.3.1.5), "DDD-text" lines then
 *   one "DDD text" (or "DDD") line, all of one code 200..559; a 4xx or
 *   5xx reply's text starts with an enhanced code of its class (RFC
 *   3463, "C.S.D ");
 * - no reply for input that completes no line: a piece holding no LF
 *   never brings a reply;
 * - splitting never changes the replies (up to a "220 2.0.0 Ready to
 *   start TLS": what follows belongs to TLS, and RFC 3207 §4.2 drops
 *   what the client pipelined after STARTTLS);
 * - as many 235 replies as AUTH_OK answers from the worker (no cache);
 * - the reply after a 354 (the end of data's) is 2xx exactly when the
 *   smarthost accepted the message: the 2xx ones are, in order, the
 *   smarthost's acceptances, and every acceptance reaches the client;
 * - what reaches the smarthost: command lines of at most 1000 octets
 *   without a control octet, message data without a bare CR or LF;
 * - the loop settles within a bounded number of turns after each piece,
 *   and the session is gone once the client has hung up. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "auth_client.h"
#include "auth_proto.h"
#include "auth_throttle.h"
#include "config.h"
#include "conn_limits.h"
#include "ctl.h"
#include "fuzz.h"
#include "log.h"
#include "rate_limit.h"
#include "relay_targets.h"
#include "settings.h"
#include "smtp_session.h"
#include "xalloc.h"

/* Loop turns without a timeout before the loop must have settled. */
#define SETTLE_TURNS 100000
/* What the client may get back for one input: far more than any input
 * of libFuzzer's default -max_len earns. */
#define OUT_MAX (1 << 20)
#define SH_LINE_MAX 2048
#define SH_ACCEPTED_MAX 64
#define REPLY_LINE_MAX 512
#define STARTTLS_READY "220 2.0.0 Ready to start TLS\r\n"

static sd_event *ev;
static struct settings *st;
static struct auth_pool *pool;
static unsigned live_sessions;
static const char *smarthost_name;
static bool trace;

/* What one run saw, for the invariants; the peers count into it. */
struct run {
	char *out;
	size_t len, cap;
	unsigned auth_ok;
	unsigned accepted;
	char accepted_line[SH_ACCEPTED_MAX][64];
};
static struct run *cur;

/* --- the auth worker: auth_proto on the socket SPAWN brings --- */

struct fake_worker {
	int fd;
	sd_event_source *io;
};

static void worker_free(struct fake_worker *w)
{
	sd_event_source_disable_unref(w->io);
	close(w->fd);
	free(w);
}

static void worker_answer(const struct auth_request *req,
			  struct auth_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->id = req->id;
	if (strcmp(req->user, "alice") == 0 &&
	    strcmp(req->password, "s3cret-pw") == 0) {
		rep->result = AUTH_OK;
		snprintf(rep->user, sizeof(rep->user), "alice");
		snprintf(rep->address[0], sizeof(rep->address[0]),
			 "alice@example.org");
		rep->n_address = 1;
		if (cur != NULL)
			cur->auth_ok++;
	} else if (strcmp(req->user, "tmp") == 0) {
		rep->result = AUTH_TEMPFAIL;
		snprintf(rep->reason, sizeof(rep->reason), "directory down");
	} else {
		rep->result = AUTH_PERMFAIL;
		snprintf(rep->reason, sizeof(rep->reason), "bad password");
	}
}

static int on_worker_io(sd_event_source *src, int fd, uint32_t revents,
			void *userdata)
{
	unsigned char buf[AUTH_PROTO_MAX];
	struct auth_request req;
	struct auth_reply rep;
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	ssize_t len;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		worker_free(userdata);
		return 0;
	}
	FUZZ_CHECK(auth_request_decode(buf, (size_t)n, &req) == 0,
		   "the auth pool sent a request that does not decode "
		   "(%zd octets)", n);
	worker_answer(&req, &rep);
	len = auth_reply_encode(&rep, buf, sizeof(buf));
	FUZZ_CHECK(len > 0, "reply does not encode");
	/* the pool may have let the worker go meanwhile */
	(void)!send(fd, buf, (size_t)len, MSG_NOSIGNAL);
	return 0;
}

/* The supervisor's end of the control channel: SPAWN starts a worker on
 * the socket it carries; KILL and the rest are dropped (a killed
 * worker's socket is closed by the pool, which ends it here). */
static int on_ctl_io(sd_event_source *src, int fd, uint32_t revents,
		     void *userdata)
{
	char msg[CTL_MSG_MAX + 1];
	int wfd = -1;
	ssize_t n = ctl_recv(fd, msg, sizeof(msg), &wfd);

	if (n <= 0)
		return 0;
	if (wfd >= 0 && strncmp(msg, "SPAWN ", 6) == 0) {
		struct fake_worker *w = xcalloc(1, sizeof(*w));

		w->fd = wfd;
		if (sd_event_add_io(ev, &w->io, wfd, EPOLLIN, on_worker_io,
				    w) < 0)
			worker_free(w);
	} else if (wfd >= 0) {
		close(wfd);
	}
	return 0;
}

/* --- the smarthost --- */

struct sh_conn {
	int fd;
	sd_event_source *io;
	char line[SH_LINE_MAX];
	size_t len;
	bool data;
	/* data: at a line start, the line so far is ".", last octet CR,
	 * how much of "REJECT" was just seen */
	bool bol, dot, cr;
	unsigned match;
	bool reject;
	unsigned rcpts;		/* accepted in this transaction */
};

static void sh_free(struct sh_conn *c)
{
	sd_event_source_disable_unref(c->io);
	close(c->fd);
	free(c);
}

/* The relay may be gone already (aborted): then nobody hears it. */
static void sh_send(struct sh_conn *c, const char *s)
{
	(void)!send(c->fd, s, strlen(s), MSG_NOSIGNAL);
}

static void sh_end_of_data(struct sh_conn *c)
{
	char line[64];

	c->data = false;
	if (c->reject || cur == NULL) {
		sh_send(c, "554 5.6.0 Message refused\r\n");
		return;
	}
	FUZZ_CHECK(cur->accepted < SH_ACCEPTED_MAX, "too many messages");
	snprintf(line, sizeof(line), "250 2.0.0 Ok: queued as FZ%u\r\n",
		 cur->accepted + 1);
	memcpy(cur->accepted_line[cur->accepted++], line, strlen(line) + 1);
	sh_send(c, line);
}

/* One octet of message data (RFC 5321 §4.1.1.4): only CR LF "." CR LF
 * ends it, and the relay never sends a bare CR or LF. */
static void sh_data_octet(struct sh_conn *c, char o)
{
	static const char pat[] = "REJECT";

	FUZZ_CHECK(!c->cr || o == '\n', "bare CR in the message data "
		   "relayed (then 0x%02x)", (unsigned char)o);
	FUZZ_CHECK(o != '\n' || c->cr, "bare LF in the message data relayed");
	c->match = o == pat[c->match] ? c->match + 1 : o == pat[0];
	if (c->match == sizeof(pat) - 1)
		c->reject = true;
	if (o == '\n') {
		if (c->dot) {
			sh_end_of_data(c);
			return;
		}
		c->bol = true;
		c->cr = false;
		return;
	}
	c->dot = (c->bol && o == '.') || (c->dot && o == '\r');
	c->bol = false;
	c->cr = o == '\r';
}

/* A command line from the relay, without its CRLF; false once c is
 * freed. */
static bool sh_command(struct sh_conn *c, const char *l)
{
	if (strncasecmp(l, "EHLO ", 5) == 0) {
		sh_send(c, "250-smarthost.fuzz\r\n250-8BITMIME\r\n"
			"250-SMTPUTF8\r\n250-SIZE 10240\r\n"
			"250 PIPELINING\r\n");
	} else if (strncasecmp(l, "MAIL FROM:", 10) == 0) {
		c->rcpts = 0;
		sh_send(c, strstr(l, "bad") != NULL ?
			"553 5.1.8 Sender refused\r\n" :
			"250 2.1.0 Sender ok\r\n");
	} else if (strncasecmp(l, "RCPT TO:<", 9) == 0) {
		const char *p = l + 9;

		if (strncasecmp(p, "drop", 4) == 0) {
			sh_free(c);
			return false;
		}
		if (strncasecmp(p, "no", 2) != 0 &&
		    strncasecmp(p, "tmp", 3) != 0)
			c->rcpts++;
		sh_send(c, strncasecmp(p, "no", 2) == 0 ?
			"550 5.1.1 No such user\r\n" :
			strncasecmp(p, "tmp", 3) == 0 ?
			"451 4.2.0 Try later\r\n" :
			"250 2.1.5 Recipient ok\r\n");
	} else if (strcasecmp(l, "DATA") == 0 && c->rcpts == 0) {
		/* RFC 2920 §3.1: DATA pipelined behind recipients that
		 * were all refused is refused. */
		sh_send(c, "554 5.5.1 No valid recipients\r\n");
	} else if (strcasecmp(l, "DATA") == 0) {
		c->data = true;
		c->bol = true;
		c->dot = c->cr = c->reject = false;
		c->match = 0;
		sh_send(c, "354 Go ahead\r\n");
	} else if (strcasecmp(l, "RSET") == 0) {
		c->rcpts = 0;
		sh_send(c, "250 2.0.0 Reset\r\n");
	} else if (strcasecmp(l, "QUIT") == 0) {
		sh_send(c, "221 2.0.0 Bye\r\n");
	} else {
		sh_send(c, "502 5.5.1 Not here\r\n");
	}
	return true;
}

/* Feed what came; false once c is freed. */
static bool sh_input(struct sh_conn *c, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (c->data) {
			sh_data_octet(c, buf[i]);
			continue;
		}
		if (buf[i] != '\n') {
			FUZZ_CHECK(c->len < SH_LINE_MAX - 1,
				   "the relay sent a command line of over "
				   "%d octets", SH_LINE_MAX);
			c->line[c->len++] = buf[i];
			continue;
		}
		FUZZ_CHECK(c->len > 0 && c->line[c->len - 1] == '\r',
			   "a command line relayed without CR LF");
		c->len--;
		FUZZ_CHECK(c->len <= 998, "a command line relayed of %zu "
			   "octets", c->len);
		FUZZ_CHECK(!fuzz_has_control(c->line, c->len), "a control "
			   "octet in a command relayed: %.*s", (int)c->len,
			   c->line);
		c->line[c->len] = '\0';
		c->len = 0;
		if (!sh_command(c, c->line))
			return false;
	}
	return true;
}

static int on_sh_io(sd_event_source *src, int fd, uint32_t revents,
		    void *userdata)
{
	struct sh_conn *c = userdata;
	char buf[4096];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		sh_free(c);
		return 0;
	}
	sh_input(c, buf, (size_t)n);
	return 0;
}

static int on_sh_accept(sd_event_source *src, int fd, uint32_t revents,
			void *userdata)
{
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct sh_conn *c;

	if (cfd < 0)
		return 0;
	/* Replies to pipelined commands are separate small writes: without
	 * this, Nagle holds the second one back for a delayed ACK, and the
	 * loop looks settled while a reply is still on its way. */
	(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
			 sizeof(int));
	c = xcalloc(1, sizeof(*c));
	c->fd = cfd;
	if (sd_event_add_io(ev, &c->io, cfd, EPOLLIN, on_sh_io, c) < 0) {
		sh_free(c);
		return 0;
	}
	sh_send(c, "220 smarthost.fuzz ESMTP\r\n");
	return 0;
}

static unsigned smarthost_start(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			 0);

	if (lfd < 0 || bind(lfd, (void *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 64) < 0 || getsockname(lfd, (void *)&sin, &len) < 0 ||
	    sd_event_add_io(ev, NULL, lfd, EPOLLIN, on_sh_accept, NULL) < 0) {
		perror("fuzz_smtp_session: smarthost socket");
		abort();
	}
	return ntohs(sin.sin_port);
}

/* --- the session's side --- */

static void joined(struct smtp_session *s, void *ctx)
{
	live_sessions++;
}

static void gone(struct smtp_session *s, void *ctx)
{
	live_sessions--;
}

static void setup(void)
{
	struct config_errors errs = { 0 };
	char text[1024];
	int n, ctl[2];
	unsigned port;

	signal(SIGPIPE, SIG_IGN);
	log_init("fuzz_smtp_session");
	if (sd_event_new(&ev) < 0)
		abort();
	port = smarthost_start();
	n = snprintf(text, sizeof(text),
		     "[server]\nhostname = relay.fuzz\n"
		     "listen = 127.0.0.1:2525\nmax_message_size = 2k\n"
		     "max_recipients = 3\nmax_bad_commands = 10\n"
		     "[tls]\ncert = /nonexistent/cert.pem\n"
		     "key = /nonexistent/key.pem\n"
		     "[auth]\ncache_ttl = 0\nfailure_delay = 0\n"
		     "max_failures_per_ip = 4\nworkers = 1\n"
		     "[relay]\nsmarthost = 127.0.0.1:%u\ntls = none\n", port);
	st = xcalloc(1, sizeof(*st));
	st->cfg = config_load_mem("fuzz.conf", text, (size_t)n, false, &errs);
	FUZZ_CHECK(st->cfg != NULL, "the config: %s",
		   errs.n > 0 ? errs.msg[0] : "?");
	atomic_store(&st->refs, 1);
	/* No certificate: STARTTLS may start, no handshake ends. */
	st->ssl_ctx = SSL_CTX_new(TLS_server_method());
	st->relay_targets = relay_targets_resolve(st->cfg, &errs);
	FUZZ_CHECK(st->ssl_ctx != NULL && st->relay_targets != NULL &&
		   st->relay_targets->n == 1, "the settings");
	smarthost_name = st->relay_targets->t[0].name;
	/* worker_spawn() reads the current settings */
	atomic_fetch_add(&st->refs, 1);
	settings_publish(st);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0 ||
	    sd_event_add_io(ev, NULL, ctl[1], EPOLLIN, on_ctl_io, NULL) < 0)
		abort();
	fcntl(ctl[0], F_SETFL, fcntl(ctl[0], F_GETFL) | O_NONBLOCK);
	ctl_client_set(ctl[0], false);
	pool = auth_pool_new(ev, 1);
}

/* Run the loop until nothing is left to do at once. Every peer is on
 * this loop and loopback delivers at once, so nothing is in flight
 * then; the session's timers (command timeout and the like) are far. */
static void settle(void)
{
	for (int i = 0; i < SETTLE_TURNS; i++) {
		int r = sd_event_run(ev, 0);

		FUZZ_CHECK(r >= 0, "sd_event_run: %s", strerror(-r));
		if (r == 0)
			return;
	}
	FUZZ_CHECK(false, "the loop still busy after %d turns", SETTLE_TURNS);
}

static void collect(int fd, struct run *r)
{
	for (;;) {
		ssize_t n;

		if (r->cap - r->len < 4096) {
			FUZZ_CHECK(r->cap < OUT_MAX, "over %d octets of replies",
				   OUT_MAX);
			r->cap = r->cap ? r->cap * 2 : 8192;
			r->out = xrealloc(r->out, r->cap);
		}
		n = recv(fd, r->out + r->len, r->cap - r->len, MSG_DONTWAIT);
		if (n <= 0)
			return;
		r->len += (size_t)n;
	}
}

/* Final reply lines ("DDD " or a bare "DDD") in out[0..len), up to a
 * STARTTLS 220. */
static unsigned count_replies(const char *out, size_t len)
{
	unsigned n = 0;

	for (size_t i = 0; i + 3 < len; ) {
		const char *eol = memchr(out + i, '\n', len - i);
		size_t l;

		if (eol == NULL)
			break;
		l = (size_t)(eol - (out + i)) + 1;
		if (out[i + 3] == ' ' || out[i + 3] == '\r')
			n++;
		if (l == sizeof(STARTTLS_READY) - 1 &&
		    memcmp(out + i, STARTTLS_READY, l) == 0)
			break;
		i += l;
	}
	return n;
}

/* Send piece, retrying while the socket is full; false if the session
 * has hung up. */
static bool send_all(int fd, const uint8_t *p, size_t n)
{
	for (int turn = 0; n > 0 && turn < SETTLE_TURNS; turn++) {
		ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0 && errno == EAGAIN) {
			settle();
			continue;
		}
		if (w < 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	FUZZ_CHECK(n == 0, "the session stopped reading for good");
	return true;
}

static void run(const uint8_t *in, size_t len, bool assume_tls,
		struct fuzz_splits *splits, struct run *r)
{
	struct smtp_session_host host = {
		.event = ev, .auth = pool, .joined = joined, .gone = gone,
		.assume_tls = assume_tls,
	};
	struct sockaddr_storage addr = { 0 };
	struct sockaddr_in *sin = (void *)&addr;
	size_t off = 0;
	int sv[2];

	memset(r, 0, sizeof(*r));
	cur = r;
	auth_throttle_clear();
	rate_limit_clear();
	relay_target_set_dead(smarthost_name, 0);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
		   "socketpair: %s", strerror(errno));
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* server.c counts the connection before the session exists */
	FUZZ_CHECK(limits_connect(&addr, UINT_MAX, UINT_MAX) == LIMITS_OK,
		   "connection limits");
	atomic_fetch_add(&st->refs, 1);
	FUZZ_CHECK(smtp_session_new(&host, st, sv[1], &addr, LISTEN_STARTTLS)
		   != NULL, "smtp_session_new failed");
	settle();
	collect(sv[0], r);
	FUZZ_CHECK(r->len > 4 && memcmp(r->out, "220 ", 4) == 0 &&
		   memchr(r->out, '\n', r->len) == r->out + r->len - 1,
		   "the greeting: got \"%.*s\", want one 220 line",
		   (int)r->len, r->out);
	while (off < len) {
		size_t n = splits ? fuzz_splits_next(splits, len - off) :
			   len - off;
		unsigned before = count_replies(r->out, r->len);
		bool sent = send_all(sv[0], in + off, n);

		settle();
		collect(sv[0], r);
		FUZZ_CHECK(memchr(in + off, '\n', n) != NULL ||
			   count_replies(r->out, r->len) == before,
			   "a reply to input that completes no line (octets "
			   "%zu..%zu)", off, off + n);
		off += n;
		if (!sent)
			break;
	}
	shutdown(sv[0], SHUT_WR);
	settle();
	collect(sv[0], r);
	close(sv[0]);
	settle();
	FUZZ_CHECK(live_sessions == 0, "%u sessions left after the client "
		   "hung up", live_sessions);
	cur = NULL;
}

/* Is l (without CRLF, n octets) a well-formed reply line? Its code in
 * *code_r, *last_r for "DDD " and "DDD". */
static void check_line(const char *l, size_t n, int *code_r, bool *last_r)
{
	int code;

	FUZZ_CHECK(n + 2 <= REPLY_LINE_MAX, "a reply line of %zu octets", n + 2);
	FUZZ_CHECK(n >= 3 && l[0] >= '2' && l[0] <= '5' && l[1] >= '0' &&
		   l[1] <= '5' && l[2] >= '0' && l[2] <= '9' &&
		   (n == 3 || l[3] == ' ' || l[3] == '-'),
		   "not a reply line: \"%.*s\"", (int)n, l);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(l[i] >= 0x20 && l[i] < 0x7f, "octet 0x%02x in the "
			   "reply \"%.*s\"", (unsigned char)l[i], (int)n, l);
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	*last_r = n == 3 || l[3] == ' ';
	/* RFC 3463 §2: class.subject.detail, class of the reply's. */
	if (code >= 400) {
		const char *e = l + 4, *end = l + n;
		const char *p = e + 2;
		int parts = 2;

		FUZZ_CHECK(n >= 9 && e[0] == l[0] && e[1] == '.',
			   "no enhanced code in \"%.*s\"", (int)n, l);
		for (; p < end && *p != ' '; p++) {
			if (*p == '.')
				parts++;
			FUZZ_CHECK((*p >= '0' && *p <= '9') ||
				   (*p == '.' && p[-1] != '.'), "enhanced "
				   "code in \"%.*s\"", (int)n, l);
		}
		FUZZ_CHECK(parts == 3 && p[-1] != '.' && e[2] != '.',
			   "enhanced code in \"%.*s\"", (int)n, l);
	}
	*code_r = code;
}

/* The replies of one run, up to a STARTTLS 220: well formed, 235 only
 * for AUTH_OK, the end of data's 2xx the smarthost's acceptances. */
static size_t check_replies(const struct run *r)
{
	const char *o = r->out;
	size_t i = 0;
	int multi = 0;			/* code of an unfinished reply */
	bool after_354 = false;
	unsigned n235 = 0, n_accept = 0;

	while (i < r->len) {
		const char *eol = memchr(o + i, '\n', r->len - i);
		size_t n;
		int code;
		bool last;

		FUZZ_CHECK(eol != NULL && eol > o + i && eol[-1] == '\r',
			   "output not ended by CR LF at octet %zu", i);
		n = (size_t)(eol - (o + i)) - 1;
		check_line(o + i, n, &code, &last);
		FUZZ_CHECK(multi == 0 || multi == code, "a reply of %d "
			   "continued with %d", multi, code);
		multi = last ? 0 : code;
		if (last && code == 235)
			n235++;
		if (last && after_354) {
			after_354 = false;
			if (code / 100 == 2) {
				FUZZ_CHECK(n_accept < r->accepted &&
					   strncmp(o + i,
						   r->accepted_line[n_accept],
						   n + 2) == 0,
					   "the end of data got \"%.*s\", the "
					   "smarthost accepted %u", (int)n,
					   o + i, r->accepted);
				n_accept++;
			}
		} else if (last && code == 354) {
			after_354 = true;
		}
		i += n + 2;
		if (n + 2 == sizeof(STARTTLS_READY) - 1 &&
		    memcmp(o + i - n - 2, STARTTLS_READY, n + 2) == 0)
			return i;	/* TLS's from here on */
	}
	FUZZ_CHECK(multi == 0, "a reply of %d never finished", multi);
	FUZZ_CHECK(n235 == r->auth_ok, "%u 235 replies, %u AUTH_OK", n235,
		   r->auth_ok);
	FUZZ_CHECK(n_accept == r->accepted, "the smarthost accepted %u "
		   "messages, the client heard of %u", r->accepted, n_accept);
	return i;
}

/* The session logs every step on stderr: run with -close_fd_mask=2
 * (run-ci.sh does) to keep only libFuzzer's and the invariants' words.
 * FUZZ_SMTP_SESSION_TRACE=1 prints what the client got for each input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_keep_stderr();
	trace = getenv("FUZZ_SMTP_SESSION_TRACE") != NULL;
	setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_splits splits;
	struct run whole, split;
	size_t a, b;
	bool assume_tls;

	if (size < 2)
		return 0;
	fuzz_splits_init(&splits, data[0]);
	assume_tls = data[1] & 1;
	run(data + 2, size - 2, assume_tls, NULL, &whole);
	run(data + 2, size - 2, assume_tls, &splits, &split);
	a = check_replies(&whole);
	b = check_replies(&split);
	if (trace)
		fprintf(fuzz_report(), "--- replies (%s)\n%.*s", assume_tls ?
			"TLS assumed" : "STARTTLS listener", (int)whole.len,
			whole.out);
	FUZZ_CHECK(a == b && memcmp(whole.out, split.out, a) == 0,
		   "splitting changed the replies:\n--- whole\n%.*s--- split\n"
		   "%.*s", (int)a, whole.out, (int)b, split.out);
	free(whole.out);
	free(split.out);
	return 0;
}
