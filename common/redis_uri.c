#include "autoconf.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "redis_uri.h"

/* Decimal in [lo, hi], all of [s, end). */
static int parse_num(const char *s, const char *end, unsigned lo,
		     unsigned hi, unsigned *n_r)
{
	unsigned long n = 0;

	if (s == end || end - s > 5)
		return -1;
	for (; s < end; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		n = n * 10 + (unsigned long)(*s - '0');
	}
	if (n < lo || n > hi)
		return -1;
	*n_r = (unsigned)n;
	return 0;
}

static int parse_unix(const char *path, struct redis_uri *u,
		      const char **error_r)
{
	size_t len = strlen(path);

	if (path[0] != '/') {
		*error_r = "unix: needs an absolute path (unix:/run/redis/"
			   "redis.sock)";
		return -1;
	}
	if (len > REDIS_URI_PATH_MAX) {
		*error_r = "unix: socket path longer than 107 octets";
		return -1;
	}
	memcpy(u->path, path, len + 1);
	return 0;
}

static bool host_char_ok(char c, bool bracketed)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' ||
	       (bracketed && c == ':');
}

int redis_uri_parse(const char *s, struct redis_uri *u, const char **error_r)
{
	const char *p, *at, *host, *host_end, *slash;
	bool bracketed = false;

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	if (strncmp(s, "unix:", 5) == 0)
		return parse_unix(s + 5, u, error_r);
	if (strncmp(s, "redis://", 8) != 0) {
		*error_r = "want redis://[USER@]HOST[:PORT][/DB] or unix:/PATH "
			   "(the password goes in shared_state_password_file)";
		return -1;
	}
	p = s + 8;
	slash = strchr(p, '/');
	at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
	if (at != NULL) {
		if (memchr(p, ':', (size_t)(at - p)) != NULL) {
			*error_r = "no password in the URI: put it in "
				   "shared_state_password_file";
			return -1;
		}
		if (at == p || at - p > REDIS_URI_USER_MAX) {
			*error_r = "user name empty or longer than 64 octets";
			return -1;
		}
		for (const char *q = p; q < at; q++) {
			if (!isgraph((unsigned char)*q)) {
				*error_r = "user name with a space or a "
					   "control character";
				return -1;
			}
		}
		memcpy(u->user, p, (size_t)(at - p));
		p = at + 1;
	}
	host = p;
	if (*p == '[') {
		bracketed = true;
		host = ++p;
		host_end = strchr(p, ']');
		if (host_end == NULL) {
			*error_r = "IPv6 address without its closing ]";
			return -1;
		}
		p = host_end + 1;
	} else {
		while (*p != '\0' && *p != ':' && *p != '/')
			p++;
		host_end = p;
	}
	if (host_end == host || host_end - host > REDIS_URI_HOST_MAX) {
		*error_r = "host name empty or too long";
		return -1;
	}
	for (const char *q = host; q < host_end; q++) {
		if (!host_char_ok(*q, bracketed)) {
			*error_r = "invalid character in the host name";
			return -1;
		}
	}
	memcpy(u->host, host, (size_t)(host_end - host));
	if (*p == ':') {
		const char *end = strchr(p + 1, '/');

		if (end == NULL)
			end = p + strlen(p);
		if (parse_num(p + 1, end, 1, 65535, &u->port) < 0) {
			*error_r = "port must be 1..65535";
			return -1;
		}
		p = end;
	}
	if (*p == '/') {
		if (p[1] == '\0')
			return 0;
		if (parse_num(p + 1, p + strlen(p), 0, REDIS_URI_DB_MAX,
			      &u->db) < 0) {
			*error_r = "database must be a number 0..15";
			return -1;
		}
		p += strlen(p);
	}
	if (*p != '\0') {
		*error_r = "unexpected text after the host";
		return -1;
	}
	return 0;
}
