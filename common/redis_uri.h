/* [policy] shared_state: where the Redis server is.
 *   redis://[USER@]HOST[:PORT][/DB]   TCP (PORT 6379, DB 0 by default);
 *                                     an IPv6 HOST in brackets
 *   unix:/PATH                        a Unix socket (DB 0)
 * The password never appears here: it comes from
 * shared_state_password_file. */
#ifndef AUTHRELAY_REDIS_URI_H
#define AUTHRELAY_REDIS_URI_H

#define REDIS_URI_HOST_MAX 255
#define REDIS_URI_USER_MAX 64
#define REDIS_URI_PATH_MAX 107		/* sun_path */
#define REDIS_URI_DB_MAX 15		/* Redis' default "databases 16" */

struct redis_uri {
	char user[REDIS_URI_USER_MAX + 1];	/* "": the default user */
	char host[REDIS_URI_HOST_MAX + 1];	/* "": a Unix socket */
	unsigned port;
	unsigned db;
	char path[REDIS_URI_PATH_MAX + 1];	/* the socket's */
};

/* 0, or -1 with a static message in *error_r. */
int redis_uri_parse(const char *s, struct redis_uri *u, const char **error_r);

#endif
