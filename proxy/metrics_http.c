/* The metrics responder (metrics_http.h). HTTP/1.1 is RFC 9112; what a
 * scraper sends is one request line and a few header fields, and all we
 * read of it is the request line. Written here rather than linked from
 * an HTTP library: it runs inside the network process, which should
 * parse as little as it can, and these few lines are all it needs. */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "strbuf.h"
#include "xalloc.h"

/* Room for every metric with LABELS_MAX listeners and smarthosts. */
#define METRICS_BODY_MAX (256 * 1024)
#define ACCEPTS_PER_RUN 16

struct mh_conn {
	struct metrics_http *mh;
	int fd;
	sd_event_source *io, *timer;
	char in[METRICS_HTTP_REQUEST_MAX];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	bool answered;			/* out holds the whole answer */
	bool draining;			/* answer sent: read to EOF */
};

struct metrics_http {
	sd_event *event;
	int fd;
	sd_event_source *src;
	struct mh_conn *conns[METRICS_HTTP_CONNS_MAX];
};

static void conn_close(struct mh_conn *c)
{
	struct metrics_http *mh = c->mh;

	for (size_t i = 0; i < METRICS_HTTP_CONNS_MAX; i++)
		if (mh->conns[i] == c)
			mh->conns[i] = NULL;
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	close(c->fd);
	free(c->out);
	free(c);
}

static void answer(struct mh_conn *c, const char *status, const char *extra,
		   const char *body, size_t body_len)
{
	char head[256];
	struct strbuf sb;

	strbuf_init(&sb, head, sizeof(head));
	/* RFC 9112 §9.6: "close" in Connection: the last response on it. */
	strbuf_printf(&sb, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n"
		      "Connection: close\r\n\r\n", status, extra, body_len);
	c->out_len = strbuf_len(&sb) + body_len;
	c->out = xmalloc(c->out_len);
	memcpy(c->out, head, strbuf_len(&sb));
	memcpy(c->out + strbuf_len(&sb), body, body_len);
	c->answered = true;
	sd_event_source_set_io_events(c->io, EPOLLOUT);
}

static void answer_text(struct mh_conn *c, const char *status,
			const char *extra)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%s\n", status);

	answer(c, status, extra, body, (size_t)n);
}

static void answer_metrics(struct mh_conn *c)
{
	char *body = xmalloc(METRICS_BODY_MAX);
	struct strbuf sb;

	strbuf_init(&sb, body, METRICS_BODY_MAX);
	if (metrics_render(&sb) < 0) {
		log_err("metrics: the text does not fit in %u octets",
			METRICS_BODY_MAX);
		answer_text(c, "500 Internal Server Error", "");
	} else {
		answer(c, "200 OK", "Content-Type: text/plain; version=0.0.4; "
		       "charset=utf-8\r\n", body, strbuf_len(&sb));
	}
	free(body);
}

/* The head is complete in c->in: RFC 9112 §3, request-line = method SP
 * request-target SP HTTP-version. */
static void take_request(struct mh_conn *c)
{
	size_t line_len = strcspn(c->in, "\r\n");
	char line[METRICS_HTTP_REQUEST_MAX + 1];
	char *target, *version, *query;

	memcpy(line, c->in, line_len);
	line[line_len] = '\0';
	target = strchr(line, ' ');
	version = target != NULL ? strchr(target + 1, ' ') : NULL;
	if (version == NULL || strchr(version + 1, ' ') != NULL ||
	    strncmp(version + 1, "HTTP/1.", 7) != 0) {
		answer_text(c, "400 Bad Request", "");
		return;
	}
	*target++ = '\0';
	*version = '\0';
	/* RFC 9110 §15.5.6: a 405 carries Allow. */
	if (strcmp(line, "GET") != 0) {
		answer_text(c, "405 Method Not Allowed", "Allow: GET\r\n");
		return;
	}
	query = strchr(target, '?');
	if (query != NULL)
		*query = '\0';
	if (strcmp(target, "/metrics") != 0) {
		answer_text(c, "404 Not Found", "");
		return;
	}
	answer_metrics(c);
}

/* The head ends at the first empty line (RFC 9112 §2.1; a bare LF is
 * taken as a line end, §2.2). */
static bool head_complete(const struct mh_conn *c)
{
	for (size_t i = 0; i + 1 < c->in_len; i++) {
		if (c->in[i] != '\n')
			continue;
		if (c->in[i + 1] == '\n' ||
		    (c->in[i + 1] == '\r' && i + 2 < c->in_len &&
		     c->in[i + 2] == '\n'))
			return true;
	}
	return false;
}

static void read_request(struct mh_conn *c)
{
	ssize_t n;

	n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	c->in[c->in_len] = '\0';
	if (memchr(c->in, '\0', c->in_len) != NULL) {
		answer_text(c, "400 Bad Request", "");
		return;
	}
	if (head_complete(c))
		take_request(c);
	else if (c->in_len == sizeof(c->in) - 1)
		/* RFC 6585 §5 */
		answer_text(c, "431 Request Header Fields Too Large", "");
}

static void write_answer(struct mh_conn *c)
{
	ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		conn_close(c);
		return;
	}
	c->out_off += (size_t)n;
	if (c->out_off < c->out_len)
		return;
	/* Closing with unread input would reset the connection and could
	 * lose the answer at the peer: end ours, read theirs to its end
	 * (within the deadline). */
	(void)shutdown(c->fd, SHUT_WR);
	c->draining = true;
	sd_event_source_set_io_events(c->io, EPOLLIN);
}

static void drain(struct mh_conn *c)
{
	char buf[1024];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		conn_close(c);
}

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents,
		      void *userdata)
{
	struct mh_conn *c = userdata;

	if (c->draining)
		drain(c);
	else if (c->answered)
		write_answer(c);
	else
		read_request(c);
	return 0;
}

static int on_conn_timeout(sd_event_source *src, uint64_t usec,
			   void *userdata)
{
	conn_close(userdata);
	return 0;
}

static void conn_start(struct metrics_http *mh, int fd)
{
	struct mh_conn *c;
	size_t slot = 0;

	while (slot < METRICS_HTTP_CONNS_MAX && mh->conns[slot] != NULL)
		slot++;
	if (slot == METRICS_HTTP_CONNS_MAX) {
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->mh = mh;
	c->fd = fd;
	if (sd_event_add_io(mh->event, &c->io, fd, EPOLLIN, on_conn_io,
			    c) < 0 ||
	    sd_event_add_time_relative(mh->event, &c->timer, CLOCK_MONOTONIC,
				       METRICS_HTTP_TIMEOUT_USEC, 0,
				       on_conn_timeout, c) < 0) {
		conn_close(c);
		return;
	}
	mh->conns[slot] = c;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents,
		     void *userdata)
{
	for (int i = 0; i < ACCEPTS_PER_RUN; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0)
			break;
		conn_start(userdata, cfd);
	}
	return 0;
}

struct metrics_http *metrics_http_new(sd_event *event, const char *host,
				      const char *port, const char **error_r)
{
	struct metrics_http *mh;
	int fd = listen_socket(host, port, error_r);

	if (fd < 0)
		return NULL;
	mh = xcalloc(1, sizeof(*mh));
	mh->event = sd_event_ref(event);
	mh->fd = fd;
	if (sd_event_add_io(event, &mh->src, fd, EPOLLIN, on_accept, mh) < 0) {
		*error_r = "cannot watch the socket";
		metrics_http_free(&mh);
		return NULL;
	}
	return mh;
}

void metrics_http_free(struct metrics_http **mhp)
{
	struct metrics_http *mh = *mhp;

	if (mh == NULL)
		return;
	*mhp = NULL;
	for (size_t i = 0; i < METRICS_HTTP_CONNS_MAX; i++)
		if (mh->conns[i] != NULL)
			conn_close(mh->conns[i]);
	sd_event_source_disable_unref(mh->src);
	close(mh->fd);
	sd_event_unref(mh->event);
	free(mh);
}
