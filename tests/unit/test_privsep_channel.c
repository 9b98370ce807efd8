/* The pieces privilege separation trusts: the bundle format (what the
 * supervisor hands over) and the control channel (what the network
 * process may say to the supervisor). */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "ctl.h"
#include "test.h"

static void test_bundle_round_trip(void)
{
	static const unsigned char key[] = "-----BEGIN PRIVATE KEY-----\n\0x";
	struct bundle *b = bundle_new(), *c;
	const unsigned char *data;
	const char *error = NULL;
	size_t len;
	int fd;

	CHECK_INT(bundle_add(b, BUNDLE_CONFIG, "[server]\n", 9, &error), 0,
		  "add config");
	CHECK_INT(bundle_add(b, "/etc/authrelay/key.pem", key, sizeof(key),
			     &error), 0, "add key with a NUL inside");
	CHECK_INT(bundle_add(b, "/empty", "", 0, &error), 0, "add empty");
	fd = bundle_to_memfd(b, &error);
	CHECK(fd >= 0, "bundle_to_memfd: %s", error ? error : "");
	/* Sealed: a receiver cannot change it for the next one. */
	CHECK(write(fd, "x", 1) < 0 && errno == EPERM,
	      "write to the sealed memfd: got %s, want EPERM",
	      strerror(errno));
	c = bundle_from_fd(fd, &error);
	CHECK(c != NULL, "bundle_from_fd: %s", error ? error : "");
	if (c != NULL) {
		CHECK(bundle_get(c, "/etc/authrelay/key.pem", &data, &len) &&
		      len == sizeof(key) && memcmp(data, key, len) == 0,
		      "key entry: got %zu octets, want %zu", len, sizeof(key));
		CHECK(bundle_get(c, "/empty", &data, &len) && len == 0 &&
		      data[0] == '\0', "empty entry");
		CHECK(!bundle_get(c, "/nope", &data, &len), "missing entry");
	}
	bundle_free(&b);
	bundle_free(&c);
	CHECK(c == NULL, "bundle_free nulls the pointer");
	close(fd);
}

/* Every malformed encoding is refused, never read past. */
static void test_bundle_malformed(void)
{
	static const struct {
		const char *what;
		const char *data;
		size_t len;
	} cases[] = {
		{ "empty", "", 0 },
		{ "wrong magic", "ARBUNDLE2\n", 10 },
		{ "truncated name length", "ARBUNDLE1\n\0\0", 12 },
		{ "zero name length", "ARBUNDLE1\n\0\0\0\0\0\0\0\0", 18 },
		{ "name past the end", "ARBUNDLE1\n\0\0\0\x09" "ab", 16 },
		{ "data past the end",
		  "ARBUNDLE1\n\0\0\0\x01" "a\0\0\0\x05" "abc", 22 },
		{ "NUL in a name", "ARBUNDLE1\n\0\0\0\x02" "a\0\0\0\0\0", 20 },
		{ "repeated entry",
		  "ARBUNDLE1\n\0\0\0\x01" "a\0\0\0\0\0\0\0\x01" "a\0\0\0\0",
		  28 },
		{ "huge data length",
		  "ARBUNDLE1\n\0\0\0\x01" "a\xff\xff\xff\xff", 19 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *error = NULL;
		struct bundle *b = bundle_from_mem(
			(const unsigned char *)cases[i].data, cases[i].len,
			&error);

		CHECK(b == NULL && error != NULL, "%s: got %s, want refused",
		      cases[i].what, b ? "accepted" : "no error text");
		bundle_free(&b);
	}
}

static void test_bundle_limits(void)
{
	struct bundle *b = bundle_new();
	const char *error = NULL;
	char name[32];
	int r = 0;

	for (int i = 0; i < BUNDLE_MAX_ENTRIES && r == 0; i++) {
		snprintf(name, sizeof(name), "/f%d", i);
		r = bundle_add(b, name, "x", 1, &error);
	}
	CHECK_INT(r, 0, "BUNDLE_MAX_ENTRIES entries fit");
	CHECK_INT(bundle_add(b, "/one-more", "x", 1, &error), -1,
		  "one entry more");
	CHECK_INT(bundle_add(b, "/f0", "yy", 2, &error), 0,
		  "replacing an entry at the limit");
	bundle_free(&b);
}

static void test_parse_id(void)
{
	static const struct {
		const char *msg;
		bool ok;
		unsigned id;
	} cases[] = {
		{ "SPAWN 1", true, 1 },
		{ "SPAWN 4294967295", true, 4294967295u },
		{ "SPAWN 4294967296", false, 0 },
		{ "SPAWN 0", false, 0 },
		{ "SPAWN 01", false, 0 },
		{ "SPAWN +1", false, 0 },
		{ "SPAWN -1", false, 0 },
		{ "SPAWN  1", false, 0 },
		{ "SPAWN 1 ", false, 0 },
		{ "SPAWN", false, 0 },
		{ "SPAWNED 1", false, 0 },
		{ "spawn 1", false, 0 },
		{ "SPAWN 12x", false, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned id = 0;
		bool ok = ctl_parse_id(cases[i].msg, "SPAWN", &id);

		CHECK(ok == cases[i].ok && (!ok || id == cases[i].id),
		      "\"%s\": got %s %u, want %s %u", cases[i].msg,
		      ok ? "ok" : "refused", id, cases[i].ok ? "ok" : "refused",
		      cases[i].id);
	}
}

static void test_notify_allowed(void)
{
	static const struct {
		const char *text;
		bool ok;
	} cases[] = {
		{ "READY=1", true },
		{ "RELOADING=1", true },
		{ "STOPPING=1", true },
		{ "WATCHDOG=1", true },
		{ "STATUS=3 session(s), 10 served", true },
		{ "READY=1\nSTATUS=ok", true },
		{ "", false },
		{ "MAINPID=1", false },
		{ "READY=1\nMAINPID=1", false },
		{ "READY=11", false },
		{ "STATUS=", false },
		{ "STATUS=a\tb", false },
		{ "FDSTORE=1", false },
		{ "WATCHDOG_USEC=1", false },
		{ "EXTEND_TIMEOUT_USEC=999999999", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(ctl_notify_allowed(cases[i].text) == cases[i].ok,
		      "\"%s\": got %s, want %s", cases[i].text,
		      cases[i].ok ? "refused" : "allowed",
		      cases[i].ok ? "allowed" : "refused");
}

/* Messages and descriptors over a real socketpair. */
static void test_channel(void)
{
	char msg[CTL_MSG_MAX + 1], big[CTL_MSG_MAX + 2];
	int sv[2], fd = -1, p[2];
	struct stat st_a, st_b;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0 || pipe(p) < 0) {
		CHECK(0, "socketpair/pipe: %s", strerror(errno));
		return;
	}
	CHECK_INT(ctl_send(sv[0], p[0], "SPAWN %u", 7u), 0, "send with fd");
	n = ctl_recv(sv[1], msg, sizeof(msg), &fd);
	CHECK_INT(n, 7, "length");
	CHECK_STR(msg, "SPAWN 7", "message");
	CHECK(fd >= 0 && fstat(fd, &st_a) == 0 && fstat(p[0], &st_b) == 0 &&
	      st_a.st_ino == st_b.st_ino, "the passed fd is the pipe");
	CHECK(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC),
	      "passed fd is close-on-exec");
	if (fd >= 0)
		close(fd);

	CHECK_INT(ctl_send(sv[0], -1, "KILL 9"), 0, "send without fd");
	n = ctl_recv(sv[1], msg, sizeof(msg), &fd);
	CHECK(n == 6 && fd == -1, "no fd: got n=%zd fd=%d", n, fd);

	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(ctl_send(sv[0], -1, "%s", big), -1, "message over the max");

	/* A NUL inside, or two descriptors: refused, descriptors closed. */
	CHECK_INT(send(sv[0], "AB\0C", 4, 0), 4, "raw send");
	n = ctl_recv(sv[1], msg, sizeof(msg), &fd);
	CHECK(n == -1 && errno == EPROTO && fd == -1,
	      "NUL inside: got n=%zd errno=%d", n, errno);
	{
		union {
			char buf[CMSG_SPACE(2 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { (char *)"SPAWN 1", 7 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int two[2] = { p[0], p[1] };

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(two));
		memcpy(CMSG_DATA(c), two, sizeof(two));
		CHECK_INT(sendmsg(sv[0], &mh, 0), 7, "sendmsg with two fds");
		n = ctl_recv(sv[1], msg, sizeof(msg), &fd);
		CHECK(n == -1 && errno == EPROTO && fd == -1,
		      "two fds: got n=%zd errno=%d fd=%d", n, errno, fd);
	}
	n = ctl_recv(sv[1], msg, sizeof(msg), &fd);
	CHECK(n == -1 && errno == EAGAIN, "nothing left: got %zd", n);
	close(sv[0]);
	n = ctl_recv(sv[1], msg, sizeof(msg), &fd);
	CHECK_INT(n, 0, "end of file");
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	test_bundle_round_trip();
	test_bundle_malformed();
	test_bundle_limits();
	test_parse_id();
	test_notify_allowed();
	test_channel();
	return test_done("test_privsep_channel");
}
