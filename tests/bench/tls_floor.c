/* tls_floor: the memory OpenSSL 3 itself holds per idle, established TLS
 * server connection, without the daemon (tests/bench/tls_floor.sh).
 *
 * The main process is a TLS server on 127.0.0.1 (non-blocking sockets,
 * epoll); a forked child is the client, so its memory is not counted. The
 * child opens N connections (at most HANDSHAKES_IN_FLIGHT in setup at a
 * time); on each the client sends "hello\r\n" and the server answers
 * "250 ok\r\n", as an SMTP session after AUTH that then waits for the
 * client. Once all N are idle the server samples its memory and compares
 * with a sample taken before the first of them (after the SSL_CTX was
 * set up and one warm-up connection was served and freed, so that
 * OpenSSL's lazily initialised global state is not counted):
 *   malloc_per_conn   glibc mallinfo2() bytes in use (uordblks + hblkhd)
 *   openssl_per_conn  bytes requested through OPENSSL_malloc and friends
 *                     and still live (CRYPTO_set_mem_functions wrappers)
 *   rss_per_conn      VmRSS of /proc/self/status (user memory only: the
 *                     kernel's socket buffers are not in it)
 * The wrappers put a 16-byte header in front of each block (its size and
 * allocation site), so malloc_per_conn is about 16 bytes per OpenSSL
 * block (openssl_blocks_per_conn) more than without them; -M runs without
 * the wrappers for malloc's figure as the daemon would see it.
 *
 * The server's TLS settings are the daemon's (proxy/tls.c): TLS 1.2
 * ciphers, options, mode flags, no session cache, one ticket per
 * handshake. Tickets are encrypted with OpenSSL's own per-SSL_CTX keys
 * instead of the daemon's key callback (proxy/tls_tickets.c); both only
 * use short-lived cipher contexts while a ticket is made, nothing that
 * stays with the connection.
 *
 *   tls_floor -c CERT.pem -k KEY.pem [-n N] [-p PORT] [-1.2] [-r] [-t]
 *             [-R] [-M] [-v]
 *
 *   -n N     connections (default 1000)
 *   -p PORT  listen on 127.0.0.1:PORT (default 25390)
 *   -1.2     TLS 1.2 (default TLS 1.3), client and server
 *   -r       without SSL_MODE_RELEASE_BUFFERS (the daemon sets it)
 *   -t       without session tickets (the daemon sends one)
 *   -R       SSL_CTX_set_read_ahead (the daemon sets it)
 *   -M       no allocation wrappers (openssl_* are then reported as -1)
 *   -v       also the OpenSSL allocation sites that hold the most per
 *            connection (top SITES_SHOWN, by file:line)
 *
 * Build: cc -O2 -g -Wall -Wextra -o tls_floor tls_floor.c -lssl -lcrypto
 *
 * Exit status: 0 success, 1 a connection or the client failed (or the
 * run took more than TIMEOUT_SEC), 2 usage or setup error. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define HANDSHAKES_IN_FLIGHT 100
#define TIMEOUT_SEC 60
#define MAX_CONNS 100000
#define EPOLL_BATCH 256
#define MAX_WAKEUPS 10000000L	/* epoll_wait calls per phase */
#define ACCEPT_BATCH 64
#define STEP_LIMIT 32		/* state changes per wake-up */
#define SITES 4096		/* allocation sites tracked (slot 0: others) */
#define SITE_PROBES 64
#define SITES_SHOWN 15

/* epoll data of the descriptors that are not connections */
#define EV_LISTEN UINT32_MAX
#define EV_CTL (UINT32_MAX - 1)

/* The exchange that makes a connection "used". */
static const char LINE_HELLO[] = "hello\r\n";
static const char LINE_OK[] = "250 ok\r\n";

/* The daemon's TLS 1.2 suites (proxy/tls.c TLS_DEFAULT_CIPHERS). */
#define CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct opts {
	size_t n;
	const char *cert, *key;
	unsigned port;
	int version;
	bool release_buffers, tickets, read_ahead, wrap, verbose;
};

static struct timespec deadline;

/* ---- OpenSSL's allocations ----
 * One thread only (OpenSSL 3.0 starts none), so plain counters. The
 * table of sites is static: it must not allocate what it measures. */

struct hdr {
	size_t size;
	uint32_t site;
	uint32_t magic;
};
/* malloc returns 16-byte aligned blocks; a 16-byte header keeps the
 * block handed to OpenSSL just as aligned. */
_Static_assert(sizeof(struct hdr) == 16, "header must keep alignment 16");
#define HDR_MAGIC 0x7f5a11ceu

struct site {
	const char *file;
	int line;
	bool used;
	long long bytes, blocks;
};

static struct site sites[SITES];
static long long site_base_bytes[SITES], site_base_blocks[SITES];
static long long os_bytes, os_blocks;

/* The slot of file:line, 0 when the table is full. File names are the
 * string literals of OPENSSL_FILE: one pointer per source file. */
static uint32_t site_of(const char *file, int line)
{
	uintptr_t h = ((uintptr_t)file >> 3) * 31 + (unsigned)line;

	for (unsigned i = 0; i < SITE_PROBES; i++) {
		uint32_t slot = 1 + (uint32_t)((h + i) % (SITES - 1));
		struct site *s = &sites[slot];

		if (!s->used) {
			s->used = true;
			s->file = file;
			s->line = line;
			return slot;
		}
		if (s->file == file && s->line == line)
			return slot;
	}
	return 0;
}

static void account(uint32_t site, long long bytes, long long blocks)
{
	os_bytes += bytes;
	os_blocks += blocks;
	sites[site].bytes += bytes;
	sites[site].blocks += blocks;
}

static void *os_malloc(size_t n, const char *file, int line)
{
	struct hdr *h;

	/* As CRYPTO_malloc: nothing for 0 bytes. */
	if (n == 0 || n > SIZE_MAX - sizeof(*h))
		return NULL;
	if ((h = malloc(sizeof(*h) + n)) == NULL)
		return NULL;
	h->size = n;
	h->site = site_of(file, line);
	h->magic = HDR_MAGIC;
	account(h->site, (long long)n, 1);
	return h + 1;
}

static struct hdr *hdr_of(void *p)
{
	struct hdr *h = (struct hdr *)p - 1;

	/* Every block OpenSSL frees came from os_malloc: the wrappers are
	 * in place before its first allocation. */
	if (h->magic != HDR_MAGIC) {
		fprintf(stderr, "tls_floor: free of a block not ours\n");
		abort();
	}
	return h;
}

static void os_free(void *p, const char *file, int line)
{
	struct hdr *h;

	(void)file;
	(void)line;
	if (p == NULL)
		return;
	h = hdr_of(p);
	account(h->site, -(long long)h->size, -1);
	h->magic = 0;
	free(h);
}

/* The block moves to the site that reallocated it. */
static void *os_realloc(void *p, size_t n, const char *file, int line)
{
	struct hdr *h, *nh;

	if (p == NULL)
		return os_malloc(n, file, line);
	if (n == 0) {
		os_free(p, file, line);
		return NULL;
	}
	if (n > SIZE_MAX - sizeof(*h))
		return NULL;
	h = hdr_of(p);
	if ((nh = realloc(h, sizeof(*nh) + n)) == NULL)
		return NULL;	/* the old block stays, as it was */
	account(nh->site, -(long long)nh->size, -1);
	nh->size = n;
	nh->site = site_of(file, line);
	account(nh->site, (long long)n, 1);
	return nh + 1;
}

/* ---- samples of the server's memory ---- */

struct sample {
	long long malloc_bytes, os_bytes, os_blocks, rss_kib;
};

/* VmRSS in KiB, -1 if unknown. read(2) into a static buffer, not stdio:
 * no allocation while sampling. */
static long long rss_kib(void)
{
	static char buf[8192];
	size_t len = 0;
	ssize_t r;
	char *p;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while (len < sizeof(buf) - 1 &&
	       (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	buf[len] = '\0';
	if ((p = strstr(buf, "\nVmRSS:")) == NULL)
		return -1;
	return strtoll(p + 7, NULL, 10);
}

static void take_sample(struct sample *s)
{
	struct mallinfo2 mi = mallinfo2();	/* all arenas */

	/* In use: chunks from the heaps plus mmap()ed ones. */
	s->malloc_bytes = (long long)(mi.uordblks + mi.hblkhd);
	s->os_bytes = os_bytes;
	s->os_blocks = os_blocks;
	s->rss_kib = rss_kib();
}

/* Open sockets of this process (the listener, the connections). */
static long count_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;
	char link[64];

	if (d == NULL)
		return -1;
	for (long i = 0; i < 2L * MAX_CONNS && (e = readdir(d)) != NULL;
	     i++) {
		ssize_t len = readlinkat(dirfd(d), e->d_name, link,
					 sizeof(link) - 1);

		if (len > 0) {
			link[len] = '\0';
			if (strncmp(link, "socket:", 7) == 0)
				n++;
		}
	}
	closedir(d);
	return n;
}

/* ---- connections, server and client alike ---- */

enum state { ST_FREE, ST_CONNECT, ST_HANDSHAKE, ST_RECV, ST_SEND, ST_IDLE };

struct conn {
	int fd;
	SSL *ssl;
	enum state st;
	uint32_t ev;		/* registered with epoll */
	size_t off;		/* of the line being sent or received */
	char buf[16];
};

struct side {
	bool server;
	SSL_CTX *ctx;
	int version;
	int epfd;
	struct conn *c;
	size_t n;		/* slots in c */
	size_t started, idle;	/* in this phase */
};

static bool past_deadline(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline.tv_sec ||
	       (now.tv_sec == deadline.tv_sec &&
		now.tv_nsec >= deadline.tv_nsec);
}

static int ms_left(void)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (deadline.tv_sec - now.tv_sec) * 1000LL +
	     (deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > 1000 ? 1000 : (int)ms;
}

static const char *who(const struct side *s)
{
	return s->server ? "server" : "client";
}

static void conn_close(struct conn *c)
{
	SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static int watch(struct side *s, struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev,
				 .data.u32 = (uint32_t)(c - s->c) };

	if (c->ev == ev)
		return 0;
	if (epoll_ctl(s->epfd, c->ev == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD,
		      c->fd, &e) < 0) {
		fprintf(stderr, "tls_floor: %s: epoll_ctl: %s\n", who(s),
			strerror(errno));
		return -1;
	}
	c->ev = ev;
	return 0;
}

static int conn_fail(struct side *s, struct conn *c, const char *what,
		     int ret)
{
	int err = SSL_get_error(c->ssl, ret);
	unsigned long e = ERR_get_error();
	char buf[256] = "";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else if (err == SSL_ERROR_SYSCALL)
		snprintf(buf, sizeof(buf), "%s",
			 ret == 0 ? "EOF" : strerror(errno));
	else if (err == SSL_ERROR_ZERO_RETURN)
		snprintf(buf, sizeof(buf), "closed by the peer");
	fprintf(stderr, "tls_floor: %s: connection %zu: %s: SSL error %d %s\n",
		who(s), (size_t)(c - s->c), what, err, buf);
	ERR_clear_error();
	return -1;
}

/* Moves c on as far as it goes without blocking. Server: handshake,
 * receive the hello, send the reply, idle; client: handshake, send,
 * receive, idle. 0, or -1 on an error. */
static int step(struct side *s, struct conn *c)
{
	const char *in = s->server ? LINE_HELLO : LINE_OK;
	const char *out = s->server ? LINE_OK : LINE_HELLO;
	size_t inlen = strlen(in), outlen = strlen(out);
	int r = 0;

	for (int i = 0; i < STEP_LIMIT; i++) {
		switch (c->st) {
		case ST_HANDSHAKE:
			if ((r = SSL_do_handshake(c->ssl)) != 1)
				break;
			if (SSL_version(c->ssl) != s->version) {
				fprintf(stderr, "tls_floor: %s: connection "
					"%zu: got %s\n", who(s),
					(size_t)(c - s->c),
					SSL_get_version(c->ssl));
				return -1;
			}
			c->st = s->server ? ST_RECV : ST_SEND;
			c->off = 0;
			continue;
		case ST_RECV:
			if ((r = SSL_read(c->ssl, c->buf + c->off,
					  (int)(inlen - c->off))) <= 0)
				break;
			c->off += (size_t)r;
			if (c->off < inlen)
				continue;
			if (memcmp(c->buf, in, inlen) != 0) {
				fprintf(stderr, "tls_floor: %s: connection "
					"%zu: unexpected line\n", who(s),
					(size_t)(c - s->c));
				return -1;
			}
			c->st = s->server ? ST_SEND : ST_IDLE;
			c->off = 0;
			continue;
		case ST_SEND:
			if ((r = SSL_write(c->ssl, out + c->off,
					   (int)(outlen - c->off))) <= 0)
				break;
			c->off += (size_t)r;
			if (c->off < outlen)
				continue;
			c->st = s->server ? ST_IDLE : ST_RECV;
			c->off = 0;
			continue;
		case ST_IDLE:
			s->idle++;
			/* Still watched: any event now is the peer closing
			 * early (or talking out of turn). */
			return watch(s, c, EPOLLIN);
		default:
			return -1;
		}
		switch (SSL_get_error(c->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			return watch(s, c, EPOLLIN);
		case SSL_ERROR_WANT_WRITE:
			return watch(s, c, EPOLLOUT);
		default:
			return conn_fail(s, c, c->st == ST_HANDSHAKE ?
					 "handshake" : c->st == ST_RECV ?
					 "read" : "write", r);
		}
	}
	fprintf(stderr, "tls_floor: %s: connection %zu: no progress\n",
		who(s), (size_t)(c - s->c));
	return -1;
}

static int tls_start(struct side *s, struct conn *c)
{
	if ((c->ssl = SSL_new(s->ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1) {
		fprintf(stderr, "tls_floor: %s: SSL_new failed\n", who(s));
		return -1;
	}
	if (s->server)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	c->st = ST_HANDSHAKE;
	return step(s, c);
}

static int conn_event(struct side *s, struct conn *c, uint32_t ev)
{
	int err = 0;
	socklen_t len = sizeof(err);

	switch (c->st) {
	case ST_CONNECT:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			fprintf(stderr, "tls_floor: client: connect: %s\n",
				strerror(err));
			return -1;
		}
		return tls_start(s, c);
	case ST_IDLE:
		fprintf(stderr, "tls_floor: %s: connection %zu: event %#x "
			"while idle (closed by the peer?)\n", who(s),
			(size_t)(c - s->c), ev);
		return -1;
	case ST_FREE:
		return 0;	/* nothing open in this slot */
	default:
		return step(s, c);
	}
}

/* ---- server ---- */

/* One wait of a side's loop, within the run's deadline: the events (0
 * after a signal), or -1 on timeout or error, said on stderr. */
static int wait_events(struct side *s, struct epoll_event *evs,
		       size_t target)
{
	int n;

	if (past_deadline()) {
		fprintf(stderr, "tls_floor: %s: timeout, %zu of %zu "
			"connections idle\n", who(s), s->idle, target);
		return -1;
	}
	n = epoll_wait(s->epfd, evs, EPOLL_BATCH, ms_left());
	if (n < 0 && errno == EINTR)
		return 0;
	if (n < 0)
		fprintf(stderr, "tls_floor: %s: epoll_wait: %s\n", who(s),
			strerror(errno));
	return n;
}

static int epoll_add(int epfd, int fd, uint32_t data)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u32 = data };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		fprintf(stderr, "tls_floor: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int accept_some(struct side *s, int lfd, size_t target)
{
	for (int i = 0; i < ACCEPT_BATCH && s->started < target; i++) {
		struct conn *c = &s->c[s->started];
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR || errno == ECONNABORTED)
				return 0;
			fprintf(stderr, "tls_floor: accept: %s\n",
				strerror(errno));
			return -1;
		}
		s->started++;
		c->fd = fd;
		if (tls_start(s, c) < 0)
			return -1;
	}
	/* No more: the listener leaves epoll until the next phase. */
	if (s->started == target &&
	    epoll_ctl(s->epfd, EPOLL_CTL_DEL, lfd, NULL) < 0) {
		fprintf(stderr, "tls_floor: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* The client writes 'R' once all its connections have their reply; EOF
 * before that is its failure. */
static int read_ready(int fd, bool *ready)
{
	char b;
	ssize_t r = read(fd, &b, 1);

	if (r == 1 && b == 'R') {
		*ready = true;
		return 0;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	fprintf(stderr, "tls_floor: the client failed\n");
	return -1;
}

/* Accepts target connections and brings each to idle; with readyfd
 * >= 0, also until the client says it holds all of them. */
static int serve(struct side *s, int lfd, size_t target, int readyfd)
{
	struct epoll_event evs[EPOLL_BATCH];
	bool ready = readyfd < 0;

	s->started = s->idle = 0;
	if (epoll_add(s->epfd, lfd, EV_LISTEN) < 0 ||
	    (readyfd >= 0 && epoll_add(s->epfd, readyfd, EV_CTL) < 0))
		return -1;
	for (long w = 0; w < MAX_WAKEUPS && (s->idle < target || !ready);
	     w++) {
		int n;

		if ((n = wait_events(s, evs, target)) < 0)
			return -1;
		for (int i = 0; i < n; i++) {
			uint32_t d = evs[i].data.u32;
			int r;

			if (d == EV_LISTEN)
				r = accept_some(s, lfd, target);
			else if (d == EV_CTL)
				r = read_ready(readyfd, &ready);
			else
				r = conn_event(s, &s->c[d], evs[i].events);
			if (r < 0)
				return -1;
		}
	}
	if (readyfd >= 0 && epoll_ctl(s->epfd, EPOLL_CTL_DEL, readyfd,
				      NULL) < 0)
		return -1;
	return s->idle == target && ready ? 0 : -1;
}

static SSL_CTX *server_ctx(const struct opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	/* proxy/tls.c's mode flags; only RELEASE_BUFFERS changes memory. */
	long mode = SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;

	if (ctx == NULL)
		return NULL;
	if (o->release_buffers)
		mode |= SSL_MODE_RELEASE_BUFFERS;
	SSL_CTX_set_mode(ctx, mode);
	SSL_CTX_set_read_ahead(ctx, o->read_ahead);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
			    SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tls_floor",
				       9);
	/* The daemon keeps no session cache (stateless tickets only): with
	 * OpenSSL's default one every session would stay in it too. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (o->tickets) {
		SSL_CTX_set_num_tickets(ctx, 1);
	} else {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	if (SSL_CTX_set_min_proto_version(ctx, o->version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, o->version) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, CIPHERS) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int listen_on(unsigned port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port) };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		fprintf(stderr, "tls_floor: 127.0.0.1:%u: %s\n", port,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* ---- client (the child process) ---- */

static int conn_connect(struct side *s, struct conn *c, unsigned port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons((uint16_t)port) };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "tls_floor: client: socket: %s\n",
			strerror(errno));
		return -1;
	}
	c->st = ST_CONNECT;
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		return tls_start(s, c);
	if (errno != EINPROGRESS) {
		fprintf(stderr, "tls_floor: client: connect: %s\n",
			strerror(errno));
		return -1;
	}
	return watch(s, c, EPOLLOUT);
}

/* Opens target connections, at most HANDSHAKES_IN_FLIGHT not yet idle
 * at a time, and brings each to idle. An event on the control pipe is
 * its EOF: the parent gave up. */
static int connect_all(struct side *s, size_t target, unsigned port)
{
	struct epoll_event evs[EPOLL_BATCH];

	s->started = s->idle = 0;
	for (long w = 0; w < MAX_WAKEUPS && s->idle < target; w++) {
		int n;

		while (s->started < target &&
		       s->started - s->idle < HANDSHAKES_IN_FLIGHT)
			if (conn_connect(s, &s->c[s->started++], port) < 0)
				return -1;
		if (s->idle == target)
			break;
		if ((n = wait_events(s, evs, target)) < 0)
			return -1;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u32 == EV_CTL)
				return -1;
			if (conn_event(s, &s->c[evs[i].data.u32],
				       evs[i].events) < 0)
				return -1;
		}
	}
	return s->idle == target ? 0 : -1;
}

/* The next byte from the parent; -1 on EOF, error or timeout. */
static int wait_byte(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b;

	for (int i = 0; i < TIMEOUT_SEC * 2 && !past_deadline(); i++) {
		int r = poll(&p, 1, ms_left());

		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0)
			return read(fd, &b, 1) == 1 ? (unsigned char)b : -1;
	}
	return -1;
}

static SSL_CTX *client_ctx(const struct opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	/* The client's memory is not measured; this only keeps the child
	 * small with thousands of connections. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (!o->tickets)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_set_min_proto_version(ctx, o->version) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, o->version) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* One warm-up connection, closed; then on 'g' the N connections, 'R' to
 * the parent, and all are held until the parent closes the pipe. */
static int client_main(const struct opts *o, int gofd, int readyfd)
{
	struct side s = { .server = false, .version = o->version,
			  .n = o->n, .epfd = -1 };
	int rc = 1;

	s.ctx = client_ctx(o);
	s.c = calloc(o->n, sizeof(*s.c));
	s.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s.ctx == NULL || s.c == NULL || s.epfd < 0) {
		fprintf(stderr, "tls_floor: client: setup failed\n");
		goto out;
	}
	for (size_t i = 0; i < o->n; i++)
		s.c[i].fd = -1;
	if (connect_all(&s, 1, o->port) < 0)
		goto out;
	conn_close(&s.c[0]);
	/* From here a readable control pipe can only be its EOF. */
	if (wait_byte(gofd) != 'g' || epoll_add(s.epfd, gofd, EV_CTL) < 0)
		goto out;
	if (connect_all(&s, o->n, o->port) < 0)
		goto out;
	if (write(readyfd, "R", 1) != 1)
		goto out;
	(void)wait_byte(gofd);
	rc = 0;
out:
	for (size_t i = 0; s.c != NULL && i < o->n; i++)
		conn_close(&s.c[i]);
	free(s.c);
	SSL_CTX_free(s.ctx);
	if (s.epfd >= 0)
		close(s.epfd);
	return rc;
}

/* ---- report ---- */

static long long per_conn(long long after, long long before, size_t n)
{
	long long d = after - before;

	/* rounded to the nearest byte */
	return (d >= 0 ? d + (long long)n / 2 : d - (long long)n / 2) /
	       (long long)n;
}

static void print_line(const struct opts *o, SSL *ssl, SSL_CTX *ctx,
		       const struct sample *b, const struct sample *a)
{
	EVP_PKEY *pk = SSL_CTX_get0_privatekey(ctx);
	int id = EVP_PKEY_get_base_id(pk);

	printf("TLS_FLOOR n=%zu proto=%s release_buffers=%d read_ahead=%d "
	       "tickets=%d malloc_per_conn=%lld openssl_per_conn=%lld "
	       "rss_per_conn=%lld", o->n, SSL_get_version(ssl),
	       o->release_buffers, o->read_ahead, o->tickets,
	       per_conn(a->malloc_bytes, b->malloc_bytes, o->n),
	       o->wrap ? per_conn(a->os_bytes, b->os_bytes, o->n) : -1,
	       per_conn(a->rss_kib * 1024, b->rss_kib * 1024, o->n));
	if (o->wrap)
		printf(" openssl_blocks_per_conn=%.1f",
		       (double)(a->os_blocks - b->os_blocks) / (double)o->n);
	else
		printf(" openssl_blocks_per_conn=-1");
	printf(" key=%s-%d cipher=%s rss_kib=%lld->%lld sockets=%ld\n",
	       id == EVP_PKEY_RSA ? "RSA" : id == EVP_PKEY_EC ? "EC" : "other",
	       EVP_PKEY_get_bits(pk), SSL_get_cipher_name(ssl), b->rss_kib,
	       a->rss_kib, count_sockets());
}

/* The SITES_SHOWN sites whose live bytes grew the most since the first
 * sample, per connection. Selection by repeated scans: no allocation. */
static void print_sites(size_t n)
{
	static bool shown[SITES];
	bool any_name = false;
	long long rest = 0, rest_blocks = 0;

	for (int i = 0; i < SITES; i++)
		if (sites[i].used && sites[i].file != NULL &&
		    sites[i].file[0] != '\0')
			any_name = true;
	printf("TLS_FLOOR_SITES top %d OpenSSL allocation sites, live per "
	       "idle connection (bytes blocks file:line)%s\n", SITES_SHOWN,
	       any_name ? "" : " -- OpenSSL passed no file names");
	for (int k = 0; k < SITES_SHOWN; k++) {
		long long best = 0;
		int bi = -1;

		for (int i = 0; i < SITES; i++) {
			long long d = sites[i].bytes - site_base_bytes[i];

			if (!shown[i] && d > best) {
				best = d;
				bi = i;
			}
		}
		if (bi < 0)
			break;
		shown[bi] = true;
		printf("  %7.1f %5.2f %s:%d\n", (double)best / (double)n,
		       (double)(sites[bi].blocks - site_base_blocks[bi]) /
		       (double)n, bi == 0 ? "(other sites)" :
		       sites[bi].file != NULL ? sites[bi].file : "(null)",
		       sites[bi].line);
	}
	for (int i = 0; i < SITES; i++) {
		if (!shown[i]) {
			rest += sites[i].bytes - site_base_bytes[i];
			rest_blocks += sites[i].blocks - site_base_blocks[i];
		}
	}
	printf("  %7.1f %5.2f (all other sites)\n", (double)rest / (double)n,
	       (double)rest_blocks / (double)n);
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr, "usage: tls_floor -c CERT.pem -k KEY.pem [-n N] "
		"[-p PORT] [-1.2] [-r] [-t] [-R] [-M] [-v]\n");
	exit(2);
}

static unsigned long number(const char *s, unsigned long min,
			    unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		usage();
	return v;
}

static void parse(int argc, char **argv, struct opts *o)
{
	int ch;

	*o = (struct opts){ .n = 1000, .port = 25390,
			    .version = TLS1_3_VERSION, .release_buffers = true,
			    .tickets = true, .wrap = true };
	/* "-1.2" is option '1' with the argument ".2". */
	while ((ch = getopt(argc, argv, "n:c:k:p:1:rtRMv")) != -1) {
		switch (ch) {
		case 'n': o->n = number(optarg, 1, MAX_CONNS); break;
		case 'c': o->cert = optarg; break;
		case 'k': o->key = optarg; break;
		case 'p': o->port = (unsigned)number(optarg, 1, 65535); break;
		case '1':
			if (strcmp(optarg, ".2") != 0)
				usage();
			o->version = TLS1_2_VERSION;
			break;
		case 'r': o->release_buffers = false; break;
		case 't': o->tickets = false; break;
		case 'R': o->read_ahead = true; break;
		case 'M': o->wrap = false; break;
		case 'v': o->verbose = true; break;
		default: usage();
		}
	}
	if (optind != argc || o->cert == NULL || o->key == NULL)
		usage();
	if (o->verbose && !o->wrap) {
		fprintf(stderr, "tls_floor: -v needs the wrappers (no -M)\n");
		exit(2);
	}
}

/* Server and client each hold N sockets and a few more descriptors. */
static int enough_fds(size_t n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur < n + 32 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < n + 32) {
		fprintf(stderr, "tls_floor: -n %zu needs %zu descriptors, "
			"the limit is %llu\n", n, n + 32,
			(unsigned long long)rl.rlim_cur);
		return -1;
	}
	return 0;
}

/* Stops the child (EOF on its pipe) and reaps it, SIGKILL after 10 s. */
static int reap(pid_t pid, int *gofd)
{
	int status = 0;

	if (*gofd >= 0)
		close(*gofd);
	*gofd = -1;
	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0 ?
			       0 : -1;
		if (r < 0 && errno != EINTR)
			return -1;
		usleep(10000);
	}
	fprintf(stderr, "tls_floor: the client did not exit, killing it\n");
	kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	return -1;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct side s = { .server = true, .epfd = -1 };
	struct sample before, after;
	int go[2] = { -1, -1 }, ready[2] = { -1, -1 };
	int lfd = -1, rc = 1;
	pid_t pid = -1;

	parse(argc, argv, &o);
	/* Before any other OpenSSL call: OpenSSL refuses new functions once
	 * it has allocated anything. */
	if (o.wrap && CRYPTO_set_mem_functions(os_malloc, os_realloc,
					       os_free) != 1) {
		fprintf(stderr, "tls_floor: CRYPTO_set_mem_functions "
			"refused\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += TIMEOUT_SEC;
	signal(SIGPIPE, SIG_IGN);
	if (enough_fds(o.n) < 0)
		return 2;
	s.version = o.version;
	s.n = o.n;
	if ((s.ctx = server_ctx(&o)) == NULL) {
		fprintf(stderr, "tls_floor: cannot set up the TLS server\n");
		return 2;
	}
	/* Allocated before the first sample: only TLS is counted. */
	if ((s.c = calloc(o.n, sizeof(*s.c))) == NULL ||
	    (lfd = listen_on(o.port)) < 0 ||
	    pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0) {
		fprintf(stderr, "tls_floor: setup failed\n");
		rc = 2;
		goto out;
	}
	for (size_t i = 0; i < o.n; i++)
		s.c[i].fd = -1;
	fflush(NULL);
	if ((pid = fork()) < 0) {
		fprintf(stderr, "tls_floor: fork: %s\n", strerror(errno));
		rc = 2;
		goto out;
	}
	if (pid == 0) {
		close(lfd);
		close(go[1]);
		close(ready[0]);
		_exit(client_main(&o, go[0], ready[1]));
	}
	close(go[0]);
	close(ready[1]);
	go[0] = ready[1] = -1;
	if ((s.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		fprintf(stderr, "tls_floor: epoll_create1: %s\n",
			strerror(errno));
		goto out;
	}

	if (serve(&s, lfd, 1, -1) < 0)
		goto out;
	conn_close(&s.c[0]);
	take_sample(&before);
	for (int i = 0; i < SITES; i++) {
		site_base_bytes[i] = sites[i].bytes;
		site_base_blocks[i] = sites[i].blocks;
	}
	if (write(go[1], "g", 1) != 1 || serve(&s, lfd, o.n, ready[0]) < 0)
		goto out;
	take_sample(&after);

	print_line(&o, s.c[0].ssl, s.ctx, &before, &after);
	if (o.verbose)
		print_sites(o.n);
	if (o.wrap && after.os_bytes - before.os_bytes >
	    after.malloc_bytes - before.malloc_bytes) {
		fprintf(stderr, "tls_floor: OpenSSL's bytes exceed malloc's\n");
		goto out;
	}
	rc = 0;
out:
	if (pid > 0 && reap(pid, &go[1]) < 0 && rc == 0) {
		fprintf(stderr, "tls_floor: the client failed\n");
		rc = 1;
	}
	for (size_t i = 0; s.c != NULL && i < o.n; i++)
		conn_close(&s.c[i]);
	free(s.c);
	SSL_CTX_free(s.ctx);
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (ready[i] >= 0)
			close(ready[i]);
	}
	if (lfd >= 0)
		close(lfd);
	if (s.epfd >= 0)
		close(s.epfd);
	return rc;
}
