/* loadgen: a small SMTP submission load generator for the authrelay
 * benchmark (tests/bench/run.sh). One process, one thread, non-blocking
 * sockets and epoll, OpenSSL 3.
 *
 * Modes (-M):
 *   smtp       connect, 220, EHLO, STARTTLS (or implicit TLS with -i), EHLO,
 *              AUTH PLAIN, then -m messages of -s octets (MAIL, RCPT, DATA,
 *              dot-stuffed CRLF body, "."), QUIT.
 *   plain      the same without TLS and AUTH (a bare smarthost baseline).
 *   idle       open -c sessions up to a successful AUTH, hold them -T
 *              seconds (or until SIGUSR1), then QUIT. Prints
 *              "IDLE_READY ..." once all are
 *              open (for measuring the server's memory per session).
 *   handshake  connect, TLS handshake (implicit TLS), close: the TLS
 *              handshake rate of whatever listens.
 *
 * Build: gcc -O2 -g -Wall -Wextra -o loadgen loadgen.c -lssl -lcrypto
 *
 * Every loop is bounded in count; the run is bounded in time (-d plus the
 * grace -G; idle: ramp-up + -T + grace). Exit status: 0 when every session
 * went as expected, 1 on any protocol error, timeout or unexpected reply,
 * 2 on usage or setup errors. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

enum mode { MODE_SMTP, MODE_PLAIN, MODE_IDLE, MODE_HANDSHAKE };
static const char *const mode_names[] = { "smtp", "plain", "idle",
					  "handshake" };

/* The reply a session waits for. */
enum expect {
	X_NONE, X_GREETING, X_EHLO1, X_STARTTLS, X_EHLO2, X_AUTH, X_MAIL,
	X_RCPT, X_DATA, X_DOT, X_QUIT,
};
static const char *const expect_names[] = {
	"none", "greeting", "EHLO", "STARTTLS", "EHLO-TLS", "AUTH", "MAIL",
	"RCPT", "DATA", "DOT", "QUIT",
};

enum phase { PH_FREE, PH_CONNECTING, PH_HANDSHAKE, PH_ACTIVE, PH_HOLD,
	     PH_TICKET };

#define IN_CAP 4096
#define CMD_CAP 1536
#define XQ_CAP 4
#define MAX_PORTS 16
#define MAX_ERRKEYS 64
#define MAX_SAMPLES (4u * 1024 * 1024)
#define EPOLL_BATCH 256
#define DRIVE_STEPS 64		/* work per session per wake-up */
#define WRITE_STEPS 64		/* writes per flush */
#define READ_STEPS 16		/* reads per wake-up */
#define TICK_MS 50

struct sess {
	int fd;
	uint32_t gen;
	SSL *ssl;
	enum phase phase;
	uint32_t events;	/* registered with epoll */
	bool want_out;		/* the last I/O call would block on writing */
	bool again;		/* on the again list */
	bool counted_setup;	/* in n_in_setup */
	bool got_ticket;	/* -S: a session ticket arrived */
	char in[IN_CAP];
	size_t in_len;
	char cmd[CMD_CAP];
	size_t cmd_len, cmd_off;
	const char *data;	/* message wire octets (shared) */
	size_t data_len, data_off;
	enum expect xq[XQ_CAP];
	unsigned xhead, xn;
	bool ehlo_starttls, ehlo_auth_plain, ehlo_pipelining;
	unsigned msgs;		/* messages done in this session */
	double t_start, t_msg, t_progress;
	unsigned port_idx;
};

/* Options */
static enum mode mode = MODE_SMTP;
static const char *host = "127.0.0.1";
static unsigned ports[MAX_PORTS];
static unsigned n_ports;
static unsigned conc = 1;
static double duration = 5;
static unsigned long max_sessions;	/* 0: until -d */
static unsigned msgs_per_session = 1;	/* 0: until -d */
static size_t msg_size = 10240;
static bool implicit_tls;
static bool pipelining;
static const char *user = "alice";
static const char *password = "";
static const char *mail_from;
static const char *rcpt_to = "bob@example.com";
static const char *ehlo_name = "loadgen.example.org";
static double hold_secs = 10;
static unsigned ramp = 100;
static double step_timeout = 30;
static double grace = 60;
static bool quiet;
static bool verbose;	/* -v: trace every step to stderr */

/* State */
static int ep = -1;
static SSL_CTX *tls_ctx;
/* -S: the last session ticket of each slot, offered on the slot's next
 * connection (a client that reconnects), and how many were resumed. */
static bool resume;
static SSL_SESSION **saved_sess;
static unsigned long resumed;
static struct sess *sessions;
static struct sess **again, **again_snap;
static unsigned n_again;
static unsigned *free_slots;	/* slots to start a new session in */
static unsigned n_free;
static char *wire;		/* the message as sent after DATA, with ".\r\n" */
static size_t wire_len;
static char auth_plain_b64[1024];
static double t0, t_stop, t_hard, t_end;
static bool stopping;		/* no new sessions or messages */
static unsigned long started, completed, failed_sessions;
static unsigned long messages, message_octets;
static unsigned n_active, n_in_setup, n_hold;
static unsigned long next_port;
static char tls_desc[96];

static double *lat_msg, *lat_setup;
static size_t n_lat_msg, n_lat_setup;

static struct {
	char key[40];
	unsigned long n;
} errkeys[MAX_ERRKEYS];
static unsigned n_errkeys;
static unsigned long errors_total;

static volatile sig_atomic_t interrupted;
static volatile sig_atomic_t hold_over;	/* idle: SIGUSR1 ends the hold */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void count_error(const char *fmt, ...)
{
	char key[40];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	errors_total++;
	for (unsigned i = 0; i < n_errkeys; i++) {
		if (strcmp(errkeys[i].key, key) == 0) {
			errkeys[i].n++;
			return;
		}
	}
	if (n_errkeys < MAX_ERRKEYS) {
		snprintf(errkeys[n_errkeys].key, sizeof(errkeys[0].key), "%s",
			 key);
		errkeys[n_errkeys++].n = 1;
	} else {
		errkeys[MAX_ERRKEYS - 1].n++;	/* lumped in the last one */
	}
}

static void sample(double *arr, size_t *n, double v)
{
	if (*n < MAX_SAMPLES)
		arr[(*n)++] = v;
}

/* The message: headers the proxy accepts (From: is the user's address
 * for sender_check), then lines of 78 octets where every eighth one
 * starts with a dot, CRLF throughout, exactly size octets before
 * stuffing. Returns the wire form: dot-stuffed, ending "\r\n.\r\n". */
static void build_message(size_t size)
{
	char hdr[1024];
	int hl = snprintf(hdr, sizeof(hdr),
			  "From: <%s>\r\nTo: <%s>\r\nSubject: loadgen %zu octets\r\n"
			  "Message-ID: <loadgen.%ld@example.org>\r\n"
			  "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
			  "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n",
			  mail_from, rcpt_to, size, (long)getpid());
	size_t cap = size + size / 70 + 1024, o = 0, plain = 0;
	unsigned line = 0;

	if (hl < 0 || (size_t)hl >= sizeof(hdr))
		die("header too long");
	if (size < (size_t)hl + 2)
		die("-s must be at least %d", hl + 2);
	wire = malloc(cap + 8);
	if (wire == NULL)
		die("out of memory for a %zu octet message", size);
	memcpy(wire, hdr, (size_t)hl);
	o = plain = (size_t)hl;
	while (plain < size) {
		size_t left = size - plain;
		size_t body = left >= 80 ? 78 : left - 2;	/* plus CRLF */

		/* Never leave a remainder too short for a line of its own. */
		if (left >= 80 && left - 80 < 2)
			body = 76;
		if (left < 2) {
			/* Cannot happen: every line is at least CRLF. */
			die("message size arithmetic");
		}
		for (size_t i = 0; i < body; i++) {
			char ch = (char)('a' + (i + line) % 26);

			if (i == 0 && line % 8 == 0)
				ch = '.';
			if (i % 13 == 12)
				ch = ' ';
			if (i == 0 && ch == '.')
				wire[o++] = '.';	/* stuffing */
			wire[o++] = ch;
		}
		wire[o++] = '\r';
		wire[o++] = '\n';
		plain += body + 2;
		line++;
		if (o + 100 > cap)
			die("message buffer overflow");
	}
	memcpy(wire + o, ".\r\n", 3);
	o += 3;
	wire_len = o;
}

/* Sessions and I/O */

static void set_events(struct sess *s, uint32_t ev)
{
	struct epoll_event e = { .events = ev,
				 .data.u64 = ((uint64_t)s->gen << 32) |
					     (uint64_t)(s - sessions) };

	if (ev == s->events)
		return;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
	s->events = ev;
}

static void push_expect(struct sess *s, enum expect x)
{
	if (s->xn >= XQ_CAP)
		die("internal: expect queue full");
	s->xq[(s->xhead + s->xn) % XQ_CAP] = x;
	s->xn++;
}

static enum expect pop_expect(struct sess *s)
{
	enum expect x;

	if (s->xn == 0)
		return X_NONE;
	x = s->xq[s->xhead];
	s->xhead = (s->xhead + 1) % XQ_CAP;
	s->xn--;
	return x;
}

static void send_cmd(struct sess *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->cmd_off > 0 && s->cmd_off == s->cmd_len)
		s->cmd_off = s->cmd_len = 0;
	va_start(ap, fmt);
	n = vsnprintf(s->cmd + s->cmd_len, CMD_CAP - s->cmd_len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= CMD_CAP - s->cmd_len)
		die("internal: command buffer overflow");
	s->cmd_len += (size_t)n;
}

static void sess_close(struct sess *s, bool ok);
static void start_session(struct sess *s);

static void sess_fail(struct sess *s, const char *fmt, ...)
{
	char key[40];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	count_error("%s", key);
	sess_close(s, false);
}

static bool may_start_more(void)
{
	if (stopping)
		return false;
	if (mode == MODE_IDLE)
		return started < conc;
	return max_sessions == 0 || started < max_sessions;
}

static void sess_close(struct sess *s, bool ok)
{
	if (s->phase == PH_FREE)
		return;
	if (s->counted_setup) {
		s->counted_setup = false;
		n_in_setup--;
	}
	if (s->phase == PH_HOLD)
		n_hold--;
	if (s->ssl != NULL) {
		if (ok)
			(void)SSL_shutdown(s->ssl);	/* one try */
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd >= 0) {
		(void)epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
	}
	s->fd = -1;
	s->phase = PH_FREE;
	s->gen++;
	n_active--;
	if (ok)
		completed++;
	else
		failed_sessions++;
	ERR_clear_error();
	/* Keep the concurrency: the main loop starts a new session in this
	 * slot (never from here: no recursion on instant failures). Idle
	 * mode ramps up from the main loop instead. */
	if (mode != MODE_IDLE)
		free_slots[n_free++] = (unsigned)(s - sessions);
}

static void start_session(struct sess *s)
{
	struct sockaddr_in sin;
	int one = 1, r;
	/* -S: a slot keeps its port (a server's ticket key is its own) */
	unsigned port = resume ? ports[(size_t)(s - sessions) % n_ports]
			       : ports[next_port++ % n_ports];
	struct epoll_event e;

	uint32_t gen = s->gen;	/* kept: stale events are told apart by it */

	memset(s, 0, offsetof(struct sess, in));
	s->gen = gen;
	s->fd = -1;
	s->in_len = 0;
	s->cmd_len = s->cmd_off = 0;
	s->data = NULL;
	s->data_len = s->data_off = 0;
	s->xhead = s->xn = 0;
	s->ehlo_starttls = s->ehlo_auth_plain = s->ehlo_pipelining = false;
	s->msgs = 0;
	s->t_start = s->t_progress = now();
	started++;
	n_active++;
	n_in_setup++;
	s->counted_setup = true;
	s->phase = PH_CONNECTING;

	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		sess_fail(s, "socket:%s", strerrorname_np(errno));
		return;
	}
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		die("-h wants an IPv4 address: %s", host);
	e.events = EPOLLOUT;
	e.data.u64 = ((uint64_t)s->gen << 32) | (uint64_t)(s - sessions);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e) < 0)
		die("epoll_ctl add: %s", strerror(errno));
	s->events = EPOLLOUT;
	r = connect(s->fd, (struct sockaddr *)&sin, sizeof(sin));
	if (r < 0 && errno != EINPROGRESS) {
		sess_fail(s, "connect:%s", strerrorname_np(errno));
		return;
	}
	/* Completion (or failure) is reported by EPOLLOUT. */
}

static void start_tls(struct sess *s)
{
	s->ssl = SSL_new(tls_ctx);
	if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
		die("SSL_new failed");
	SSL_set_connect_state(s->ssl);
	(void)SSL_set_tlsext_host_name(s->ssl, "localhost");
	if (resume) {
		SSL_set_app_data(s->ssl, s);
		if (saved_sess[s - sessions] != NULL)
			(void)SSL_set_session(s->ssl, saved_sess[s - sessions]);
	}
	s->phase = PH_HANDSHAKE;
}

/* -S: keep the newest ticket of the slot (the callback owns it: 1). */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct sess *s = SSL_get_app_data(ssl);

	if (s == NULL)
		return 0;
	SSL_SESSION_free(saved_sess[s - sessions]);
	saved_sess[s - sessions] = sess;
	s->got_ticket = true;
	return 1;
}

/* >0 octets, 0 would block (want_out set), -1 error, -2 EOF. */
static ssize_t io_read(struct sess *s, char *buf, size_t cap)
{
	if (s->ssl != NULL) {
		size_t n = 0;
		int r, err;

		ERR_clear_error();
		r = SSL_read_ex(s->ssl, buf, cap, &n);
		if (r == 1)
			return (ssize_t)n;
		err = SSL_get_error(s->ssl, r);
		if (err == SSL_ERROR_WANT_READ) {
			s->want_out = false;
			return 0;
		}
		if (err == SSL_ERROR_WANT_WRITE) {
			s->want_out = true;
			return 0;
		}
		if (err == SSL_ERROR_ZERO_RETURN)
			return -2;
		if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			return -2;	/* EOF without close_notify */
		return -1;
	}
	for (int i = 0; i < 4; i++) {
		ssize_t n = recv(s->fd, buf, cap, MSG_DONTWAIT);

		if (n > 0)
			return n;
		if (n == 0)
			return -2;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			s->want_out = false;
			return 0;
		}
		return -1;
	}
	return 0;
}

static ssize_t io_write(struct sess *s, const char *buf, size_t len)
{
	if (s->ssl != NULL) {
		size_t n = 0;
		int r, err;

		ERR_clear_error();
		r = SSL_write_ex(s->ssl, buf, len, &n);
		if (r == 1)
			return (ssize_t)n;
		err = SSL_get_error(s->ssl, r);
		if (err == SSL_ERROR_WANT_WRITE) {
			s->want_out = true;
			return 0;
		}
		if (err == SSL_ERROR_WANT_READ) {
			s->want_out = false;
			return 0;
		}
		return -1;
	}
	for (int i = 0; i < 4; i++) {
		ssize_t n = send(s->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			s->want_out = true;
			return 0;
		}
		return -1;
	}
	return 0;
}

/* 1 all written, 0 blocked, 2 step limit, -1 error. */
static int flush_out(struct sess *s)
{
	for (int i = 0; i < WRITE_STEPS; i++) {
		const char *p;
		size_t len;
		ssize_t n;
		bool is_cmd = s->cmd_off < s->cmd_len;

		if (is_cmd) {
			p = s->cmd + s->cmd_off;
			len = s->cmd_len - s->cmd_off;
		} else if (s->data != NULL && s->data_off < s->data_len) {
			p = s->data + s->data_off;
			len = s->data_len - s->data_off;
			if (len > 256 * 1024)
				len = 256 * 1024;
		} else {
			s->cmd_off = s->cmd_len = 0;
			s->data = NULL;
			return 1;
		}
		n = io_write(s, p, len);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		s->t_progress = now();
		if (is_cmd)
			s->cmd_off += (size_t)n;
		else
			s->data_off += (size_t)n;
	}
	return 2;	/* more to write: come back (again list) */
}

static bool out_pending(const struct sess *s)
{
	return s->cmd_off < s->cmd_len ||
	       (s->data != NULL && s->data_off < s->data_len);
}

static void start_message(struct sess *s)
{
	s->t_msg = now();
	send_cmd(s, "MAIL FROM:<%s>\r\n", mail_from);
	push_expect(s, X_MAIL);
	if (pipelining && s->ehlo_pipelining) {
		send_cmd(s, "RCPT TO:<%s>\r\n", rcpt_to);
		push_expect(s, X_RCPT);
		send_cmd(s, "DATA\r\n");
		push_expect(s, X_DATA);
	}
}

static void after_setup(struct sess *s)
{
	if (s->counted_setup) {
		s->counted_setup = false;
		n_in_setup--;
	}
	sample(lat_setup, &n_lat_setup, now() - s->t_start);
	if (tls_desc[0] == '\0' && s->ssl != NULL)
		snprintf(tls_desc, sizeof(tls_desc), "%s %s",
			 SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl));
}

static void next_message_or_quit(struct sess *s)
{
	bool more = msgs_per_session == 0 ? !stopping
					   : s->msgs < msgs_per_session;

	if (more) {
		start_message(s);
	} else {
		send_cmd(s, "QUIT\r\n");
		push_expect(s, X_QUIT);
	}
}

/* 1 go on, 0 stop parsing (phase changed), -1 session closed. */
static int on_reply(struct sess *s, int code)
{
	enum expect x = pop_expect(s);

	s->t_progress = now();
	if (verbose)
		fprintf(stderr, "[%ld] +%.3f ms %s -> %d\n",
			(long)(s - sessions), (s->t_progress - s->t_start) * 1e3,
			expect_names[x], code);
	switch (x) {
	case X_GREETING:
		if (code != 220)
			break;
		send_cmd(s, "EHLO %s\r\n", ehlo_name);
		push_expect(s, s->ssl != NULL ? X_EHLO2 : X_EHLO1);
		return 1;
	case X_EHLO1:
		if (code != 250)
			break;
		if (mode == MODE_PLAIN) {
			after_setup(s);
			next_message_or_quit(s);
			return 1;
		}
		if (!s->ehlo_starttls) {
			sess_fail(s, "EHLO:no-STARTTLS");
			return -1;
		}
		send_cmd(s, "STARTTLS\r\n");
		push_expect(s, X_STARTTLS);
		return 1;
	case X_STARTTLS:
		if (code != 220)
			break;
		if (s->in_len > 0) {
			sess_fail(s, "STARTTLS:extra-plaintext");
			return -1;
		}
		s->ehlo_starttls = s->ehlo_auth_plain = false;
		s->ehlo_pipelining = false;
		start_tls(s);
		return 0;
	case X_EHLO2:
		if (code != 250)
			break;
		if (!s->ehlo_auth_plain) {
			sess_fail(s, "EHLO:no-AUTH-PLAIN");
			return -1;
		}
		send_cmd(s, "AUTH PLAIN %s\r\n", auth_plain_b64);
		push_expect(s, X_AUTH);
		return 1;
	case X_AUTH:
		if (code != 235)
			break;
		after_setup(s);
		if (mode == MODE_IDLE) {
			s->phase = PH_HOLD;
			n_hold++;
			return 0;
		}
		next_message_or_quit(s);
		return 1;
	case X_MAIL:
		if (code != 250)
			break;
		if (!(pipelining && s->ehlo_pipelining)) {
			send_cmd(s, "RCPT TO:<%s>\r\n", rcpt_to);
			push_expect(s, X_RCPT);
		}
		return 1;
	case X_RCPT:
		if (code != 250 && code != 251)
			break;
		if (!(pipelining && s->ehlo_pipelining)) {
			send_cmd(s, "DATA\r\n");
			push_expect(s, X_DATA);
		}
		return 1;
	case X_DATA:
		if (code != 354)
			break;
		s->data = wire;
		s->data_len = wire_len;
		s->data_off = 0;
		push_expect(s, X_DOT);
		return 1;
	case X_DOT:
		if (code != 250)
			break;
		s->msgs++;
		messages++;
		message_octets += msg_size;
		sample(lat_msg, &n_lat_msg, now() - s->t_msg);
		next_message_or_quit(s);
		return 1;
	case X_QUIT:
		if (code != 221)
			break;
		sess_close(s, true);
		return -1;
	case X_NONE:
		sess_fail(s, "unexpected-reply:%d", code);
		return -1;
	}
	sess_fail(s, "%s:%d", expect_names[x], code);
	return -1;
}

static void ehlo_keyword(struct sess *s, const char *kw, size_t len)
{
	if (len >= 8 && strncasecmp(kw, "STARTTLS", 8) == 0)
		s->ehlo_starttls = true;
	else if (len >= 10 && strncasecmp(kw, "PIPELINING", 10) == 0)
		s->ehlo_pipelining = true;
	else if (len >= 5 && strncasecmp(kw, "AUTH", 4) == 0 &&
		 (kw[4] == ' ' || kw[4] == '=') &&
		 memmem(kw, len, "PLAIN", 5) != NULL)
		s->ehlo_auth_plain = true;
}

/* Parse complete reply lines in s->in. 1 go on, 0 stop, -1 closed. */
static int parse_replies(struct sess *s)
{
	size_t off = 0;
	int ret = 1;

	for (unsigned i = 0; i < 256 && ret == 1; i++) {
		char *line = s->in + off;
		size_t avail = s->in_len - off;
		char *lf = memchr(line, '\n', avail);
		size_t len;
		int code;

		if (lf == NULL)
			break;
		len = (size_t)(lf - line);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		off += (size_t)(lf - line) + 1;
		if (len < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' ||
		    line[2] > '9' ||
		    (len > 3 && line[3] != ' ' && line[3] != '-')) {
			sess_fail(s, "malformed-reply:%s", expect_names[
					  s->xn ? s->xq[s->xhead] : X_NONE]);
			return -1;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		       (line[2] - '0');
		if (s->xn > 0 && (s->xq[s->xhead] == X_EHLO1 ||
				  s->xq[s->xhead] == X_EHLO2) && len > 4)
			ehlo_keyword(s, line + 4, len - 4);
		if (len > 3 && line[3] == '-')
			continue;
		/* Consume what was parsed before acting: STARTTLS checks
		 * for octets after its reply. */
		memmove(s->in, s->in + off, s->in_len - off);
		s->in_len -= off;
		off = 0;
		ret = on_reply(s, code);
	}
	if (ret == -1)
		return -1;
	if (off > 0) {
		memmove(s->in, s->in + off, s->in_len - off);
		s->in_len -= off;
	}
	if (s->in_len >= IN_CAP) {
		sess_fail(s, "reply-line-too-long");
		return -1;
	}
	return ret;
}

static const char *current_stage(const struct sess *s)
{
	switch (s->phase) {
	case PH_CONNECTING:
		return "connect";
	case PH_HANDSHAKE:
		return "tls-handshake";
	case PH_HOLD:
		return "idle";
	case PH_TICKET:
		return "ticket";
	default:
		return expect_names[s->xn ? s->xq[s->xhead] : X_NONE];
	}
}

static void queue_again(struct sess *s)
{
	if (!s->again) {
		s->again = true;
		again[n_again++] = s;
	}
}

/* Run a session as far as it goes without blocking. */
static void drive(struct sess *s, uint32_t revents)
{
	for (int step = 0; step < DRIVE_STEPS; step++) {
		int r;

		switch (s->phase) {
		case PH_FREE:
			return;
		case PH_CONNECTING: {
			int err = 0;
			socklen_t l = sizeof(err);

			if (!(revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
				return;
			if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err,
				       &l) < 0)
				err = errno;
			if (err != 0) {
				sess_fail(s, "connect:%s", strerrorname_np(err));
				return;
			}
			s->t_progress = now();
			if (mode == MODE_HANDSHAKE || implicit_tls) {
				start_tls(s);
			} else {
				s->phase = PH_ACTIVE;
				push_expect(s, X_GREETING);
			}
			continue;
		}
		case PH_HANDSHAKE:
			ERR_clear_error();
			r = SSL_do_handshake(s->ssl);
			if (r == 1) {
				s->t_progress = now();
				if (verbose)
					fprintf(stderr, "[%ld] +%.3f ms TLS up\n",
						(long)(s - sessions),
						(s->t_progress - s->t_start) * 1e3);
				if (resume && SSL_session_reused(s->ssl))
					resumed++;
				if (mode == MODE_HANDSHAKE) {
					after_setup(s);
					if (resume && !s->got_ticket) {
						/* the ticket follows the
						 * handshake, full or resumed
						 * (a TLS 1.3 ticket is used
						 * once): read until it came */
						s->phase = PH_TICKET;
						continue;
					}
					sess_close(s, true);
					return;
				}
				s->phase = PH_ACTIVE;
				if (implicit_tls) {
					push_expect(s, X_GREETING);
				} else {
					send_cmd(s, "EHLO %s\r\n", ehlo_name);
					push_expect(s, X_EHLO2);
				}
				continue;
			}
			switch (SSL_get_error(s->ssl, r)) {
			case SSL_ERROR_WANT_READ:
				set_events(s, EPOLLIN);
				return;
			case SSL_ERROR_WANT_WRITE:
				set_events(s, EPOLLOUT);
				return;
			default:
				sess_fail(s, "tls-handshake:%s",
					  ERR_peek_error() ? "error" : "eof");
				return;
			}
		case PH_HOLD: {
			char buf[512];
			ssize_t n = io_read(s, buf, sizeof(buf));

			if (n == 0) {
				set_events(s, s->want_out ? EPOLLOUT : EPOLLIN);
				return;
			}
			if (n > 0 && n >= 3)
				sess_fail(s, "idle:reply-%.3s", buf);
			else
				sess_fail(s, "idle:%s", n == -2 ? "eof" : "error");
			return;
		}
		case PH_TICKET: {
			char buf[512];
			ssize_t n = io_read(s, buf, sizeof(buf));

			if (s->got_ticket) {
				sess_close(s, true);
				return;
			}
			if (n >= 0) {	/* data (a greeting) or would block */
				if (n == 0) {
					set_events(s, s->want_out ? EPOLLOUT
								  : EPOLLIN);
					return;
				}
				continue;
			}
			sess_fail(s, "ticket:%s", n == -2 ? "eof" : "error");
			return;
		}
		case PH_ACTIVE:
			break;
		}

		/* PH_ACTIVE: write what is queued, then read replies (also
		 * while a write is blocked: an early error reply ends it). */
		{
			uint32_t ev = 0;
			bool got = false;
			int gone = 0;

			if (out_pending(s)) {
				r = flush_out(s);
				if (r < 0) {
					sess_fail(s, "write:%s", current_stage(s));
					return;
				}
				if (r == 2) {
					queue_again(s);
					return;
				}
				if (r == 0)
					ev |= s->want_out ? EPOLLOUT : EPOLLIN;
			}
			if (s->xn == 0) {
				if (!out_pending(s)) {
					sess_fail(s, "internal-state");
					return;
				}
				set_events(s, ev);
				return;
			}
			for (int i = 0; i < READ_STEPS; i++) {
				ssize_t n;

				if (s->in_len >= IN_CAP) {
					sess_fail(s, "reply-line-too-long");
					return;
				}
				n = io_read(s, s->in + s->in_len,
					    IN_CAP - s->in_len);
				if (n == 0) {
					ev |= s->want_out ? EPOLLOUT : EPOLLIN;
					break;
				}
				if (n < 0) {
					gone = (int)n;
					break;
				}
				s->in_len += (size_t)n;
				got = true;
			}
			if (got) {
				/* Replies first: the last one (221) may come
				 * with the end of the connection. */
				r = parse_replies(s);
				if (r < 0)
					return;
			}
			if (gone != 0) {
				sess_fail(s, "%s:%s",
					  gone == -2 ? "eof" : "read-error",
					  current_stage(s));
				return;
			}
			if (got)
				continue;	/* new output, TLS, or hold */
			set_events(s, ev);
			return;
		}
	}
	queue_again(s);	/* used up its steps: continue next turn */
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *arr, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return arr[i < n ? i : n - 1];
}

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen [options]\n"
		"  -M MODE   smtp (default) | plain | idle | handshake\n"
		"  -h HOST   IPv4 address (default 127.0.0.1)\n"
		"  -p PORTS  port, or ports separated by commas (round robin)\n"
		"  -c N      concurrent sessions (idle: sessions to hold)\n"
		"  -d SECS   start new sessions for this long (default 5)\n"
		"  -n N      or: this many sessions in all\n"
		"  -m M      messages per session (default 1; 0: until -d)\n"
		"  -s OCTETS message size (default 10240)\n"
		"  -i        implicit TLS (port 465 style) instead of STARTTLS\n"
		"  -L        pipeline MAIL/RCPT/DATA when PIPELINING is offered\n"
		"  -S        TLS session resumption: each slot offers the last\n"
		"            ticket it got (handshake mode waits for it)\n"
		"  -u USER -w PASSWORD   AUTH PLAIN credentials\n"
		"  -f FROM   envelope and From: address (default USER@example.com)\n"
		"  -r RCPT   recipient (default bob@example.com)\n"
		"  -T SECS   idle: hold time once all sessions are open (10)\n"
		"  -R N      idle: sessions being set up at once (100)\n"
		"  -t SECS   per-step timeout (30)\n"
		"  -G SECS   grace after -d before giving up (60)\n"
		"  -q        only the RESULT line\n"
		"  -v        trace each reply with its time to stderr\n");
	exit(2);
}

static double parse_num(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		die("bad %s: %s", what, s);
	return v;
}

static void on_hold_over(int sig)
{
	(void)sig;
	hold_over = 1;
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

int main(int argc, char **argv)
{
	int opt;
	bool d_given = false;
	char from_buf[512];
	struct rlimit rl;

	while ((opt = getopt(argc, argv, "M:h:p:c:d:n:m:s:iLSu:w:f:r:T:R:t:G:qv")) != -1) {
		switch (opt) {
		case 'M': {
			bool found = false;

			for (unsigned i = 0; i < 4; i++)
				if (strcmp(optarg, mode_names[i]) == 0) {
					mode = (enum mode)i;
					found = true;
				}
			if (!found)
				die("unknown mode %s", optarg);
			break;
		}
		case 'h':
			host = optarg;
			break;
		case 'p': {
			char *save = NULL, *tok, *copy = strdup(optarg);

			for (tok = strtok_r(copy, ",", &save); tok != NULL;
			     tok = strtok_r(NULL, ",", &save)) {
				double v = parse_num(tok, "port");

				if (n_ports >= MAX_PORTS || v < 1 || v > 65535)
					die("bad -p %s", optarg);
				ports[n_ports++] = (unsigned)v;
			}
			free(copy);
			break;
		}
		case 'c':
			conc = (unsigned)parse_num(optarg, "-c");
			break;
		case 'd':
			duration = parse_num(optarg, "-d");
			d_given = true;
			break;
		case 'n':
			max_sessions = (unsigned long)parse_num(optarg, "-n");
			break;
		case 'm':
			msgs_per_session = (unsigned)parse_num(optarg, "-m");
			break;
		case 's':
			msg_size = (size_t)parse_num(optarg, "-s");
			break;
		case 'i':
			implicit_tls = true;
			break;
		case 'L':
			pipelining = true;
			break;
		case 'S':
			resume = true;
			break;
		case 'u':
			user = optarg;
			break;
		case 'w':
			password = optarg;
			break;
		case 'f':
			mail_from = optarg;
			break;
		case 'r':
			rcpt_to = optarg;
			break;
		case 'T':
			hold_secs = parse_num(optarg, "-T");
			break;
		case 'R':
			ramp = (unsigned)parse_num(optarg, "-R");
			break;
		case 't':
			step_timeout = parse_num(optarg, "-t");
			break;
		case 'G':
			grace = parse_num(optarg, "-G");
			break;
		case 'q':
			quiet = true;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || n_ports == 0 || conc == 0 || conc > 200000 ||
	    ramp == 0 || msg_size > 1024ul * 1024 * 1024)
		usage();
	if (mail_from == NULL) {
		snprintf(from_buf, sizeof(from_buf), "%s@example.com", user);
		mail_from = from_buf;
	}
	if (mode == MODE_IDLE && msgs_per_session == 0)
		msgs_per_session = 1;
	if (max_sessions > 0 && !d_given)
		duration = 0;	/* -n alone: until the count, bounded by -G */
	if (max_sessions == 0 && duration <= 0 && mode != MODE_IDLE)
		die("give -d or -n");

	/* One descriptor per session, and some. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < conc + 64) {
		rl.rlim_cur = rl.rlim_max < conc + 64 ? rl.rlim_max : conc + 64;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < conc + 64)
			die("need %u descriptors, limit is %lu (ulimit -n)",
			    conc + 64, (unsigned long)rl.rlim_cur);
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGUSR1, on_hold_over);

	{
		unsigned char raw[600];
		size_t ul = strlen(user), pl = strlen(password);

		if (ul + pl + 2 > sizeof(raw) / 4 * 3 - 3)
			die("user or password too long");
		raw[0] = '\0';
		memcpy(raw + 1, user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, password, pl);
		EVP_EncodeBlock((unsigned char *)auth_plain_b64, raw,
				(int)(ul + pl + 2));
	}
	if (mode == MODE_SMTP || mode == MODE_PLAIN)
		build_message(msg_size);

	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (tls_ctx == NULL)
		die("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
	/* Every session a full handshake, as a new client would do. */
	if (resume) {
		SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_CLIENT |
					       SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(tls_ctx, on_new_session);
	} else {
		SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET);
	}
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS |
			 SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	sessions = calloc(conc, sizeof(*sessions));
	again = calloc(conc, sizeof(*again));
	again_snap = calloc(conc, sizeof(*again_snap));
	free_slots = calloc(conc, sizeof(*free_slots));
	saved_sess = calloc(conc, sizeof(*saved_sess));
	lat_msg = malloc(MAX_SAMPLES * sizeof(double));
	lat_setup = malloc(MAX_SAMPLES * sizeof(double));
	if (sessions == NULL || again == NULL || again_snap == NULL ||
	    free_slots == NULL || saved_sess == NULL || lat_msg == NULL ||
	    lat_setup == NULL)
		die("out of memory");
	for (unsigned i = 0; i < conc; i++)
		sessions[i].fd = -1;

	t0 = now();
	t_stop = mode == MODE_IDLE ? 0 : t0 + duration;
	t_hard = mode == MODE_IDLE ? t0 + step_timeout + grace
				   : t0 + duration + grace;
	if (mode != MODE_IDLE)
		for (unsigned i = 0; i < conc && may_start_more(); i++)
			start_session(&sessions[i]);

	double t_ready = 0, t_last_tick = 0;
	unsigned idle_next = 0;
	bool idle_quitting = false;
	/* The loop ends when every session is done, or at t_hard. */
	for (unsigned long iter = 0; iter < 4000000000ul; iter++) {
		struct epoll_event evs[EPOLL_BATCH];
		double t = now();
		int n;

		if (interrupted) {
			count_error("interrupted");
			break;
		}
		if (t >= t_hard) {
			for (unsigned i = 0; i < conc; i++)
				if (sessions[i].phase != PH_FREE) {
					stopping = true;
					sess_fail(&sessions[i], "global-timeout:%s",
						  current_stage(&sessions[i]));
				}
			break;
		}
		if (t - t_last_tick >= TICK_MS / 1000.0) {
			t_last_tick = t;
			if (mode != MODE_IDLE && !stopping && t >= t_stop &&
			    duration > 0)
				stopping = true;
			for (unsigned i = 0; i < conc; i++) {
				struct sess *s = &sessions[i];

				if (s->phase == PH_FREE || s->phase == PH_HOLD)
					continue;
				if (t - s->t_progress > step_timeout)
					sess_fail(s, "timeout:%s",
						  current_stage(s));
			}
			if (mode == MODE_IDLE) {
				/* Ramp up, then hold, then QUIT. */
				while (!idle_quitting && idle_next < conc &&
				       n_in_setup < ramp)
					start_session(&sessions[idle_next++]);
				if (t_ready == 0 && idle_next == conc &&
				    n_in_setup == 0) {
					t_ready = t;
					printf("IDLE_READY established=%u failed=%lu "
					       "setup_secs=%.2f\n", n_hold,
					       failed_sessions, t - t0);
					fflush(stdout);
					t_hard = t + hold_secs + grace;
				}
				if (t_ready > 0 && !idle_quitting &&
				    (t - t_ready >= hold_secs || hold_over)) {
					idle_quitting = true;
					stopping = true;
					for (unsigned i = 0; i < conc; i++) {
						struct sess *s = &sessions[i];

						if (s->phase != PH_HOLD)
							continue;
						n_hold--;
						s->phase = PH_ACTIVE;
						s->t_progress = t;
						send_cmd(s, "QUIT\r\n");
						push_expect(s, X_QUIT);
						drive(s, 0);
					}
				}
			}
		}
		if (n_active == 0 && (mode != MODE_IDLE ||
				      (idle_next == conc && t_ready > 0)))
			break;
		n = epoll_wait(ep, evs, EPOLL_BATCH, n_again ? 0 : TICK_MS);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			uint32_t idx = (uint32_t)evs[i].data.u64;
			uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
			struct sess *s = &sessions[idx];

			if (s->gen != gen || s->phase == PH_FREE)
				continue;	/* stale: slot reused */
			drive(s, evs[i].events);
		}
		/* Sessions with work left over from their turn. */
		{
			unsigned na = n_again;

			memcpy(again_snap, again, na * sizeof(*again));
			n_again = 0;
			for (unsigned i = 0; i < na; i++) {
				struct sess *s = again_snap[i];

				s->again = false;
				if (s->phase != PH_FREE)
					drive(s, 0);
			}
		}
		/* New sessions in the slots that became free. */
		{
			unsigned nf = n_free;

			for (unsigned i = 0; i < nf && n_free > 0; i++) {
				if (!may_start_more()) {
					n_free = 0;
					break;
				}
				start_session(&sessions[free_slots[--n_free]]);
			}
		}
	}
	t_end = now();

	double elapsed = t_end - t0;
	if (mode == MODE_IDLE)
		elapsed = t_ready > 0 ? t_ready - t0 : elapsed;
	qsort(lat_msg, n_lat_msg, sizeof(double), cmp_double);
	qsort(lat_setup, n_lat_setup, sizeof(double), cmp_double);

	double sps = elapsed > 0 ? (double)completed / elapsed : 0;
	double mps = elapsed > 0 ? (double)messages / elapsed : 0;
	double mbps = elapsed > 0 ? (double)message_octets / elapsed / 1e6 : 0;
	char errs[1024] = "";
	size_t eo = 0;

	for (unsigned i = 0; i < n_errkeys && eo < sizeof(errs) - 64; i++)
		eo += (size_t)snprintf(errs + eo, sizeof(errs) - eo, "%s%s=%lu",
				       i ? "," : "", errkeys[i].key,
				       errkeys[i].n);
	if (!quiet) {
		printf("loadgen: mode=%s host=%s port=%u%s conc=%u %s "
		       "msgs/session=%u size=%zu%s\n",
		       mode_names[mode], host, ports[0],
		       n_ports > 1 ? "(+more)" : "", conc,
		       mode == MODE_PLAIN ? "plaintext"
		       : implicit_tls || mode == MODE_HANDSHAKE ? "implicit-tls"
		       : "starttls",
		       msgs_per_session, msg_size,
		       pipelining ? " pipelining" : "");
		printf("  elapsed    %.2f s%s\n", elapsed,
		       mode == MODE_IDLE ? " (ramp-up to all sessions open)" : "");
		printf("  sessions   %lu ok, %lu failed, %.1f /s\n", completed,
		       failed_sessions, sps);
		if (mode == MODE_SMTP || mode == MODE_PLAIN)
			printf("  messages   %lu, %.1f /s, %.2f MB/s of message "
			       "octets\n", messages, mps, mbps);
		if (n_lat_msg)
			printf("  latency    p50 %.2f ms, p99 %.2f ms per message "
			       "(MAIL FROM to the reply after the dot)\n",
			       pct(lat_msg, n_lat_msg, 0.5) * 1e3,
			       pct(lat_msg, n_lat_msg, 0.99) * 1e3);
		if (n_lat_setup)
			printf("  setup      p50 %.2f ms, p99 %.2f ms (connect "
			       "to %s)\n", pct(lat_setup, n_lat_setup, 0.5) * 1e3,
			       pct(lat_setup, n_lat_setup, 0.99) * 1e3,
			       mode == MODE_PLAIN ? "EHLO reply"
			       : mode == MODE_HANDSHAKE ? "handshake done"
			       : "235");
		if (tls_desc[0])
			printf("  tls        %s\n", tls_desc);
		printf("  errors     %s\n", errors_total ? errs : "none");
	}
	printf("RESULT mode=%s elapsed=%.3f sessions=%lu failed=%lu "
	       "sess_per_s=%.1f msgs=%lu msgs_per_s=%.1f mb_per_s=%.3f "
	       "p50_ms=%.3f p99_ms=%.3f setup_p50_ms=%.3f setup_p99_ms=%.3f "
	       "errors=%lu errkeys=%s resumed=%lu\n",
	       mode_names[mode], elapsed, completed, failed_sessions, sps,
	       messages, mps, mbps, pct(lat_msg, n_lat_msg, 0.5) * 1e3,
	       pct(lat_msg, n_lat_msg, 0.99) * 1e3,
	       pct(lat_setup, n_lat_setup, 0.5) * 1e3,
	       pct(lat_setup, n_lat_setup, 0.99) * 1e3, errors_total,
	       errors_total ? errs : "-", resumed);
	fflush(stdout);
	return errors_total ? 1 : 0;
}
