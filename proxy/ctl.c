#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "ctl.h"
#include "log.h"

int ctl_send(int sock, int fd, const char *fmt, ...)
{
	char buf[CTL_MSG_MAX + 1];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov;
	struct msghdr mh;
	va_list ap;
	ssize_t n;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len <= 0 || (size_t)len > CTL_MSG_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	iov.iov_base = buf;
	iov.iov_len = (size_t)len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	return n == len ? 0 : (errno = EMSGSIZE, -1);
}

/* Close every descriptor a message carried. */
static void close_passed(struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL;
	     c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <=
		     c->cmsg_len; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
	}
}

ssize_t ctl_recv(int sock, char *msg, size_t size, int *fd_r)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { msg, size - 1 };
	struct cmsghdr *c;
	struct msghdr mh;
	ssize_t n;

	*fd_r = -1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n;
	c = CMSG_FIRSTHDR(&mh);
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
	    memchr(msg, '\0', (size_t)n) != NULL ||
	    (c != NULL && (c->cmsg_level != SOL_SOCKET ||
			   c->cmsg_type != SCM_RIGHTS ||
			   c->cmsg_len != CMSG_LEN(sizeof(int)) ||
			   CMSG_NXTHDR(&mh, c) != NULL))) {
		close_passed(&mh);
		errno = EPROTO;
		return -1;
	}
	if (c != NULL)
		memcpy(fd_r, CMSG_DATA(c), sizeof(int));
	msg[n] = '\0';
	return n;
}

/* --- what the supervisor accepts --- */

bool ctl_parse_id(const char *msg, const char *word, unsigned *id_r)
{
	size_t n = strlen(word);
	unsigned long v = 0;
	const char *p;

	if (strncmp(msg, word, n) != 0 || msg[n] != ' ')
		return false;
	p = msg + n + 1;
	if (*p < '1' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 0xffffffffUL)
			return false;
	}
	if (*p != '\0')
		return false;
	*id_r = (unsigned)v;
	return true;
}

bool ctl_notify_allowed(const char *text)
{
	static const char *const fixed[] = { "READY=1", "RELOADING=1",
					     "STOPPING=1", "WATCHDOG=1" };
	const char *line = text;

	while (*line != '\0') {
		size_t len = strcspn(line, "\n");
		bool ok = false;

		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
			if (len == strlen(fixed[i]) &&
			    strncmp(line, fixed[i], len) == 0)
				ok = true;
		if (len > 7 && strncmp(line, "STATUS=", 7) == 0) {
			ok = true;
			for (size_t i = 7; i < len; i++)
				if ((unsigned char)line[i] < ' ' ||
				    (unsigned char)line[i] > '~')
					ok = false;
		}
		if (!ok)
			return false;
		line += len;
		if (*line == '\n')
			line++;
	}
	return line != text;
}

/* --- the network process's side --- */

static int client_sock = -1;
static bool notify_direct = true;

void ctl_client_set(int sock, bool relay_notify)
{
	client_sock = sock;
	notify_direct = !relay_notify;
}

int ctl_client_fd(void)
{
	return client_sock;
}

int ctl_spawn_worker(int worker_sock, uint32_t id)
{
	if (client_sock < 0) {
		errno = ENOTCONN;
		return -1;
	}
	return ctl_send(client_sock, worker_sock, "SPAWN %u", id);
}

void ctl_kill_worker(uint32_t id)
{
	if (client_sock >= 0 &&
	    ctl_send(client_sock, -1, "KILL %u", id) < 0)
		log_err("cannot ask the supervisor to stop auth worker %u: %s",
			id, strerror(errno));
}

void ctl_notify(const char *text)
{
	if (client_sock < 0 || notify_direct) {
		sd_notify(0, text);
		return;
	}
	if (ctl_send(client_sock, -1, "NOTIFY %s", text) < 0)
		log_debug("notify %s: %s", text, strerror(errno));
}

void ctl_notifyf(const char *fmt, ...)
{
	char buf[CTL_MSG_MAX - 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ctl_notify(buf);
}
