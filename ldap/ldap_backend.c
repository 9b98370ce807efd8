#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <ldap.h>

#include "check_line.h"
#include "ldap_backend.h"
#include "ldap_escape.h"
#include "log.h"
#include "xalloc.h"

#define USER_SIZELIMIT 2	/* one entry wanted; a second shows ambiguity */
#define GROUP_SIZELIMIT 1000	/* entries per group search */
#define GROUP_DEPTH_MAX 8	/* nesting levels followed */
#define GROUPS_MAX 1024		/* groups looked at per request */
#define GROUP_BATCH 16		/* DNs per "(|(member=...)...)" filter */
#define SECRET_MAX 1024		/* octets of bind_password_file */
#define READ_TRIES 64		/* read() calls for that file */
#define WHY_MAX 256
#define URI_HOLD_DOWN (30 * USEC_PER_SEC)	/* a failed uri goes last */
#define WATCH_SLACK 250000	/* usec the watchdog gives libldap's own */
#define LDAP_INIT_SLOW (USEC_PER_SEC / 2)	/* init_libldap says so */
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* How a step of a request ended. STALE: the connection, opened by an
 * earlier request, turned out dead; it is closed, and the step may be
 * tried once more on a new one. */
enum step { STEP_OK, STEP_PERMFAIL, STEP_TEMPFAIL, STEP_STALE };

struct conn {
	const char *name;	/* "search" or "bind", for the log */
	LDAP *ld;		/* NULL: not open */
	const char *uri;	/* the [ldap] uri it is open to */
	size_t uri_i;		/* its index in cfg->ldap_uri */
	unsigned long opened;	/* the request it was opened in */
};

struct strv {
	char **v;
	size_t n;
};

struct ldap_backend {
	const struct config *cfg;	/* not ours */
	bool dn_template;	/* user_dn_template, no search */
	char *login_attr;	/* the attribute %u is matched against */
	/* The groups looked for, normalized (NULL: not a DN): first
	 * [auth] require_group, then the groups of [policy] send_as. */
	char **targets;
	size_t n_targets, n_required;
	const char **attrs;	/* read from the user's entry */
	const char *ca_file;	/* cfg->ldap_ca_file or the system's */
	char *ca_file_override;	/* ldap_backend_set_secrets() */
	char *bind_secret;	/* ldap_backend_set_secrets(), or NULL */
	size_t bind_secret_len;
	struct conn search;	/* service account (or anonymous) */
	struct conn bind;	/* user binds only */
	uint64_t *failed_at;	/* per uri: when it last failed, 0 never */
	unsigned long request;	/* requests served, this one included */
	uint64_t deadline;	/* this request's, CLOCK_MONOTONIC usec */
	char diag[WHY_MAX];	/* the server's message for the last error */
};

struct user {
	char *dn;
	char canonical[AUTH_USER_MAX + 1];
	char *uid;		/* memberUid mode: the entry's uid */
	struct strv member_of;	/* memberOf mode: the entry's memberOf */
};

static void set_result(struct auth_reply *rep, enum auth_result result,
		       const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_result(struct auth_reply *rep, enum auth_result result,
		       const char *fmt, ...)
{
	va_list ap;

	rep->result = result;
	va_start(ap, fmt);
	vsnprintf(rep->reason, sizeof(rep->reason), fmt, ap);
	va_end(ap);
}

/* --- small helpers --- */

/* Text for the log: cut short when too long. */
static void why_set(char *why, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void why_set(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
}

static void strv_add(struct strv *s, const char *str)
{
	s->v = xreallocarray(s->v, s->n + 1, sizeof(*s->v));
	s->v[s->n++] = xstrdup(str);
}

/* A berval (not NUL-terminated); empty ones and ones holding NUL are
 * left out. */
static void strv_add_bv(struct strv *s, const struct berval *bv)
{
	if (bv->bv_len == 0 || memchr(bv->bv_val, '\0', bv->bv_len) != NULL)
		return;
	s->v = xreallocarray(s->v, s->n + 1, sizeof(*s->v));
	s->v[s->n++] = xstrndup(bv->bv_val, bv->bv_len);
}

static bool strv_has(const struct strv *s, const char *str)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], str) == 0)
			return true;
	return false;
}

static void strv_clear(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* A name goes into log lines and headers: no control characters. */
static bool clean(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * USEC_PER_SEC +
	       (uint64_t)ts.tv_nsec / 1000;
}

/* The longest the next network wait may take: [ldap] timeout, or less
 * when the request's deadline is nearer. false: no time left. */
static bool wait_limit(const struct ldap_backend *lb, struct timeval *tv)
{
	uint64_t now = now_usec(), usec = lb->cfg->ldap_timeout_usec;

	if (now + 1000 >= lb->deadline)
		return false;
	if (lb->deadline - now < usec)
		usec = lb->deadline - now;
	tv->tv_sec = (time_t)(usec / USEC_PER_SEC);
	tv->tv_usec = (suseconds_t)(usec % USEC_PER_SEC);
	return true;
}

/* A DN in one spelling for comparisons: parsed and written back by
 * libldap (RFC 4514 escaping, no spaces around separators), ASCII
 * letters in lower case (attribute types, and the case-insensitive
 * values of cn, ou, dc that group DNs are made of). NULL: not a DN. */
static char *dn_norm(const char *dn)
{
	LDAPDN ldn = NULL;
	char *out = NULL, *r;
	int rc;

	if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		return NULL;
	rc = ldap_dn2str(ldn, &out, LDAP_DN_FORMAT_LDAPV3);
	ldap_dnfree(ldn);
	if (rc != LDAP_SUCCESS) {
		ldap_memfree(out);
		return NULL;
	}
	r = xstrdup(out != NULL ? out : "");
	ldap_memfree(out);
	for (char *p = r; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

/* --- exposed for tests --- */

static const struct {
	const char code[4];
	const char *meaning;
} ad_codes[] = {
	{ "525", "user not found" },
	{ "52e", "invalid credentials" },
	{ "530", "not permitted to log on at this time" },
	{ "531", "not permitted to log on at this workstation" },
	{ "532", "password expired" },
	{ "533", "account disabled" },
	{ "701", "account expired" },
	{ "773", "user must reset password" },
	{ "775", "account locked out" },
};

const char *ldap_ad_bind_reason(const char *diag, char code_r[4])
{
	const char *p = diag;

	code_r[0] = '\0';
	/* "..., data 52e, v4563": the first "data " followed by exactly
	 * three hex digits. Bounded: each turn moves past a match. */
	while (p != NULL && (p = strstr(p, "data ")) != NULL) {
		p += 5;
		if (!isxdigit((unsigned char)p[0]) ||
		    !isxdigit((unsigned char)p[1]) ||
		    !isxdigit((unsigned char)p[2]) ||
		    isxdigit((unsigned char)p[3]))
			continue;
		for (int i = 0; i < 3; i++)
			code_r[i] = (char)tolower((unsigned char)p[i]);
		code_r[3] = '\0';
		for (size_t i = 0; i < sizeof(ad_codes) / sizeof(*ad_codes);
		     i++)
			if (strcmp(code_r, ad_codes[i].code) == 0)
				return ad_codes[i].meaning;
		return NULL;
	}
	return NULL;
}

static bool attr_char(char c)
{
	/* RFC 4512 §2.5: descr / numericoid, then ";option"s. */
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == ';';
}

char *ldap_login_attribute(const char *tmpl)
{
	const char *p, *end, *start;

	for (p = tmpl; (p = strstr(p, "%u")) != NULL; p += 2) {
		if (p == tmpl || p[-1] != '=')
			continue;
		end = p - 1;
		/* "attr~=%u", "attr>=%u", "attr:rule:=%u" */
		if (end > tmpl && strchr("~<>", end[-1]) != NULL)
			end--;
		start = end;
		while (start > tmpl && (attr_char(start[-1]) ||
					start[-1] == ':'))
			start--;
		/* "attr:dn:rule:" -> "attr" */
		for (const char *c = start; c < end; c++) {
			if (*c == ':') {
				end = c;
				break;
			}
		}
		/* ";binary" and other options are not part of the name. */
		for (const char *c = start; c < end; c++) {
			if (*c == ';') {
				end = c;
				break;
			}
		}
		if (end > start)
			return xstrndup(start, (size_t)(end - start));
	}
	return NULL;
}

bool ldap_address_value(const char *attr, const char *val, size_t len,
			const char **addr_r, size_t *len_r, bool *primary_r)
{
	*primary_r = false;
	if (strcasecmp(attr, "proxyAddresses") == 0) {
		/* Active Directory: "SMTP:primary@x", "smtp:alias@x",
		 * "X400:...", "SIP:...": only the SMTP ones are mail. */
		if (len < 5 || strncasecmp(val, "smtp:", 5) != 0)
			return false;
		*primary_r = strncmp(val, "SMTP:", 5) == 0;
		val += 5;
		len -= 5;
	}
	if (len == 0 || len > AUTH_ADDRESS_MAX || !clean(val, len))
		return false;
	for (size_t i = 0; i < len; i++)
		if (val[i] == ' ' || val[i] == '<' || val[i] == '>')
			return false;
	if (memchr(val, '@', len) == NULL)
		return false;
	*addr_r = val;
	*len_r = len;
	return true;
}

/* --- the service account's password --- */

static ssize_t finish_secret(const char *path, char *buf, size_t len,
			     size_t size, char *why, size_t why_size);

/* The content of path without its trailing newline into buf (size >
 * SECRET_MAX). Returns the length, or -1 with why set; buf is wiped on
 * failure. */
static ssize_t read_secret(const char *path, char *buf, size_t size,
			   char *why, size_t why_size)
{
	size_t len = 0;
	ssize_t n = 0;
	int fd, tries;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		why_set(why, why_size, "bind_password_file %s: %s", path,
			 strerror(errno));
		return -1;
	}
	for (tries = 0; tries < READ_TRIES && len < size; tries++) {
		n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (n < 0)
		why_set(why, why_size, "bind_password_file %s: %s", path,
			 strerror(errno));
	close(fd);
	if (n < 0)
		goto fail;
	if (len >= size || (tries == READ_TRIES && n > 0)) {
		why_set(why, why_size, "bind_password_file %s: longer than "
			 "%d octets", path, SECRET_MAX);
		goto fail;
	}
	return finish_secret(path, buf, len, size, why, why_size);
fail:
	explicit_bzero(buf, size);
	return -1;
}

/* The secret's text in buf (len octets): without its trailing newline,
 * checked. Returns the length or -1 (buf wiped). */
static ssize_t finish_secret(const char *path, char *buf, size_t len,
			     size_t size, char *why, size_t why_size)
{
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0 || memchr(buf, '\0', len) != NULL) {
		/* An empty password would make the service bind an
		 * unauthenticated one (RFC 4513 §5.1.2). */
		why_set(why, why_size, "bind_password_file %s: %s", path,
			 len == 0 ? "empty" : "contains NUL");
		goto fail;
	}
	buf[len] = '\0';
	return (ssize_t)len;
fail:
	explicit_bzero(buf, size);
	return -1;
}

/* --- the watchdog --- */

/* libldap bounds the TCP connect (LDAP_OPT_NETWORK_TIMEOUT) and its
 * result waits, but OpenLDAP 2.5 does the TLS handshake (ldaps://,
 * StartTLS) on a blocking socket without a timeout, and a server that
 * stops in the middle of a TLS record blocks a read the same way. The
 * watchdog is the backstop: an ITIMER_REAL armed around each such call,
 * a little after libldap's own limit; when it fires, SIGALRM (without
 * SA_RESTART) interrupts the read and its handler shuts the socket down,
 * so the call fails instead of hanging. One request at a time in one
 * thread: one watch at a time. */
static volatile sig_atomic_t watch_fd = -1;	/* the socket to shut down */
static volatile sig_atomic_t watch_fired;

static void on_alarm(int sig)
{
	int fd = watch_fd;

	watch_fired = 1;
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);	/* async-signal-safe */
}

/* fd: the connection's socket, or -1 while ldap_connect makes it (the
 * connect callback fills it in). */
static void watch_start(int fd, const struct timeval *limit)
{
	struct itimerval it;
	uint64_t usec = (uint64_t)limit->tv_sec * USEC_PER_SEC +
			(uint64_t)limit->tv_usec + WATCH_SLACK;

	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = (time_t)(usec / USEC_PER_SEC);
	it.it_value.tv_usec = (suseconds_t)(usec % USEC_PER_SEC);
	watch_fired = 0;
	watch_fd = fd;
	setitimer(ITIMER_REAL, &it, NULL);
}

/* Disarm; true if it fired (the connection is unusable). */
static bool watch_stop(void)
{
	struct itimerval off;

	memset(&off, 0, sizeof(off));
	setitimer(ITIMER_REAL, &off, NULL);
	watch_fd = -1;
	return watch_fired != 0;
}

/* libldap's connection callbacks: the socket, as soon as it exists. */
static int on_conn_add(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv,
		       struct sockaddr *addr, struct ldap_conncb *ctx)
{
	ber_socket_t fd = -1;

	if (ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) == 1 && fd >= 0)
		watch_fd = fd;
	return 0;
}

static void on_conn_del(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	ber_socket_t fd = -1;

	/* Called with sb NULL just before the handle is freed. */
	if (sb != NULL && ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) == 1 &&
	    fd == watch_fd)
		watch_fd = -1;
}

static struct ldap_conncb conn_callbacks = { on_conn_add, on_conn_del,
					     NULL };

static int conn_fd(LDAP *ld)
{
	ber_socket_t fd = -1;

	if (ldap_get_option(ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS)
		return -1;
	return fd;
}

/* --- connections --- */

static void conn_close(struct conn *c)
{
	if (c->ld == NULL)
		return;
	ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
	c->uri = NULL;
}

/* The server's diagnostic message for the last operation on ld. */
static void ld_diag(LDAP *ld, char *buf, size_t size)
{
	char *msg = NULL;

	buf[0] = '\0';
	if (ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &msg) ==
	    LDAP_OPT_SUCCESS && msg != NULL) {
		snprintf(buf, size, "%s", msg);
		ldap_memfree(msg);
	}
}

static int set_opt(LDAP *ld, int option, const void *value,
		   const char *name, const char *uri, char *why,
		   size_t why_size)
{
	if (ldap_set_option(ld, option, value) == LDAP_OPT_SUCCESS)
		return 0;
	why_set(why, why_size, "cannot set %s", name);
	log_err("ldap %s: cannot set %s", uri, name);
	return -1;
}

#define SET_OPT(ld, opt, value, uri, why, why_size) \
	set_opt(ld, opt, value, #opt, uri, why, why_size)

/* The limit for the next step into *tv, and into ld for the connect
 * and the result of synchronous calls (ldap_start_tls_s); our own waits
 * pass it to ldap_result. */
static int set_timeouts(struct ldap_backend *lb, LDAP *ld, const char *uri,
			char *why, size_t why_size, struct timeval *tv)
{
	if (!wait_limit(lb, tv)) {
		why_set(why, why_size, "request deadline passed");
		return -1;
	}
	if (SET_OPT(ld, LDAP_OPT_NETWORK_TIMEOUT, tv, uri, why,
		    why_size) < 0 ||
	    SET_OPT(ld, LDAP_OPT_TIMEOUT, tv, uri, why, why_size) < 0)
		return -1;
	return 0;
}

static int setup_tls(struct ldap_backend *lb, LDAP *ld, const char *uri,
		     char *why, size_t why_size)
{
	int demand = LDAP_OPT_X_TLS_DEMAND;
	int min = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
	int is_server = 0;

	/* Verify the chain against ca_file and the name in the URI
	 * against the certificate; refuse the connection otherwise. */
	if (lb->ca_file != NULL &&
	    SET_OPT(ld, LDAP_OPT_X_TLS_CACERTFILE, lb->ca_file, uri, why,
		    why_size) < 0)
		return -1;
	if (SET_OPT(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand, uri, why,
		    why_size) < 0 ||
	    SET_OPT(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min, uri, why,
		    why_size) < 0)
		return -1;
	/* The options above only reach a context made after them. */
	if (SET_OPT(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server, uri, why,
		    why_size) < 0) {
		why_set(why, why_size, "TLS context: cannot load ca_file %s",
			 lb->ca_file != NULL ? lb->ca_file : "(default)");
		return -1;
	}
	return 0;
}

/* Wait for the complete result of msgid on c. LDAP_SUCCESS with *res_r
 * set, or a local error (LDAP_TIMEOUT, LDAP_SERVER_DOWN, ...). */
static int conn_result(struct ldap_backend *lb, struct conn *c, int msgid,
		       LDAPMessage **res_r)
{
	struct timeval tv;
	int rc, err = LDAP_OTHER;

	*res_r = NULL;
	if (!wait_limit(lb, &tv))
		return LDAP_TIMEOUT;
	watch_start(conn_fd(c->ld), &tv);
	rc = ldap_result(c->ld, msgid, LDAP_MSG_ALL, &tv, res_r);
	if (watch_stop()) {
		ldap_msgfree(*res_r);
		*res_r = NULL;
		return LDAP_TIMEOUT;
	}
	if (rc > 0)
		return LDAP_SUCCESS;
	if (rc == 0) {
		*res_r = NULL;
		return LDAP_TIMEOUT;
	}
	*res_r = NULL;
	if (ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &err) !=
	    LDAP_OPT_SUCCESS || err == LDAP_SUCCESS)
		err = LDAP_OTHER;
	return err;
}

/* A simple bind on c. Returns the server's result code (the message
 * into lb->diag) or a local error (< 0). */
static int simple_bind(struct ldap_backend *lb, struct conn *c,
		       const char *dn, struct berval *cred)
{
	LDAPMessage *res;
	char *msg = NULL;
	int msgid, rc, err = LDAP_OTHER;

	lb->diag[0] = '\0';
	rc = ldap_sasl_bind(c->ld, dn, LDAP_SASL_SIMPLE, cred, NULL, NULL,
			    &msgid);
	if (rc != LDAP_SUCCESS)
		return rc;
	rc = conn_result(lb, c, msgid, &res);
	if (rc != LDAP_SUCCESS)
		return rc;
	rc = ldap_parse_result(c->ld, res, &err, NULL, &msg, NULL, NULL, 1);
	if (rc != LDAP_SUCCESS)
		return rc;
	if (msg != NULL) {
		snprintf(lb->diag, sizeof(lb->diag), "%s", msg);
		ldap_memfree(msg);
	}
	return err;
}

/* A search on c. Returns LDAP_SUCCESS or LDAP_SIZELIMIT_EXCEEDED with
 * the entries in *res_r (the caller frees it), or the server's result
 * code (message in lb->diag) or a local error (< 0). */
static int conn_search(struct ldap_backend *lb, struct conn *c,
		       const char *base, int scope, const char *filter,
		       const char *const *attrs, int sizelimit,
		       LDAPMessage **res_r)
{
	LDAPMessage *res;
	struct timeval tv;
	char *msg = NULL;
	int msgid, rc, err = LDAP_OTHER;

	*res_r = NULL;
	lb->diag[0] = '\0';
	if (!wait_limit(lb, &tv))
		return LDAP_TIMEOUT;
	/* tv also goes to the server as its time limit. */
	rc = ldap_search_ext(c->ld, base, scope, filter, (char **)attrs, 0,
			     NULL, NULL, &tv, sizelimit, &msgid);
	if (rc != LDAP_SUCCESS)
		return rc;
	rc = conn_result(lb, c, msgid, &res);
	if (rc != LDAP_SUCCESS)
		return rc;
	rc = ldap_parse_result(c->ld, res, &err, NULL, &msg, NULL, NULL, 0);
	if (rc != LDAP_SUCCESS) {
		ldap_msgfree(res);
		return rc;
	}
	if (msg != NULL) {
		snprintf(lb->diag, sizeof(lb->diag), "%s", msg);
		ldap_memfree(msg);
	}
	if (err != LDAP_SUCCESS && err != LDAP_SIZELIMIT_EXCEEDED) {
		ldap_msgfree(res);
		return err;
	}
	*res_r = res;
	return err;
}

/* A server that failed to connect or stopped answering: connections to
 * it are closed, and new ones try the other URIs first for a while. */
static void uri_failed(struct ldap_backend *lb, size_t i)
{
	lb->failed_at[i] = now_usec();
	if (lb->search.ld != NULL && lb->search.uri_i == i)
		conn_close(&lb->search);
	if (lb->bind.ld != NULL && lb->bind.uri_i == i)
		conn_close(&lb->bind);
}

/* An error on c: log it, close c (a later request reopens it, maybe on
 * another server) and fail temporarily. A local error (timeout, server
 * gone) marks the server failed, see uri_failed. STALE instead when c
 * was opened by an earlier request and the error says it is gone: the
 * server restarted or closed an idle connection. */
static enum step conn_failed(struct ldap_backend *lb, struct conn *c,
			     int rc, const char *what,
			     struct auth_reply *rep)
{
	bool stale = c->opened != lb->request &&
		     (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR);

	if (stale)
		log_info("ldap %s connection to %s: %s: %s; reopening",
			 c->name, c->uri, what, ldap_err2string(rc));
	else
		log_warn("ldap %s connection to %s: %s: %s%s%s", c->name,
			 c->uri, what, ldap_err2string(rc),
			 lb->diag[0] != '\0' ? ": " : "", lb->diag);
	set_result(rep, AUTH_TEMPFAIL, "ldap %s: %s", what,
		   ldap_err2string(rc));
	if (!stale && rc < 0)
		uri_failed(lb, c->uri_i);
	conn_close(c);
	return stale ? STEP_STALE : STEP_TEMPFAIL;
}

/* The service bind of a new search connection. */
static int service_bind(struct ldap_backend *lb, struct conn *c, char *why,
			size_t why_size)
{
	char secret[SECRET_MAX + 1];
	struct berval cred;
	ssize_t len;
	int rc;

	if (lb->bind_secret != NULL) {
		/* Handed over by the privileged side (ldap_backend_set_
		 * secrets): this process may not be able to open the file. */
		if (lb->bind_secret_len >= sizeof(secret)) {
			why_set(why, why_size, "bind_password_file %s: longer "
				 "than %d octets",
				 lb->cfg->ldap_bind_password_file, SECRET_MAX);
			return -1;
		}
		memcpy(secret, lb->bind_secret, lb->bind_secret_len);
		len = finish_secret(lb->cfg->ldap_bind_password_file, secret,
				    lb->bind_secret_len, sizeof(secret), why,
				    why_size);
	} else {
		len = read_secret(lb->cfg->ldap_bind_password_file, secret,
				  sizeof(secret), why, why_size);
	}
	if (len < 0)
		return -1;
	cred.bv_val = secret;
	cred.bv_len = (ber_len_t)len;
	rc = simple_bind(lb, c, lb->cfg->ldap_bind_dn, &cred);
	explicit_bzero(secret, sizeof(secret));
	if (rc == LDAP_SUCCESS)
		return 0;
	why_set(why, why_size, "bind as %s: %s%s%s", lb->cfg->ldap_bind_dn,
		 ldap_err2string(rc), lb->diag[0] != '\0' ? ": " : "",
		 lb->diag);
	return -1;
}

static bool uri_scheme(const char *uri, const char *scheme)
{
	return strncasecmp(uri, scheme, strlen(scheme)) == 0;
}

/* Is anybody there? Any answer to a read of the root DSE will do: a
 * server that takes the connection and then hangs fails here, while
 * the next URI can still be tried. */
static int probe(struct ldap_backend *lb, struct conn *c, char *why,
		 size_t why_size)
{
	static const char *const no_attrs[] = { LDAP_NO_ATTRS, NULL };
	LDAPMessage *res = NULL;
	int rc;

	rc = conn_search(lb, c, "", LDAP_SCOPE_BASE, "(objectClass=*)",
			 no_attrs, 1, &res);
	ldap_msgfree(res);
	if (rc >= 0)
		return 0;
	why_set(why, why_size, "no answer: %s", ldap_err2string(rc));
	return -1;
}

/* Open c on [ldap] uri i: connect; TLS (ldaps://, or StartTLS on
 * ldap:// when starttls = yes); for the search connection the service
 * bind; and if none of these had the server answer, a probe. */
static int conn_open_one(struct ldap_backend *lb, struct conn *c, size_t i,
			 bool service, char *why, size_t why_size)
{
	const struct config *cfg = lb->cfg;
	const char *uri = cfg->ldap_uri[i];
	bool starttls = uri_scheme(uri, "ldap://") && cfg->ldap_starttls;
	bool tls = starttls || uri_scheme(uri, "ldaps://");
	bool bind = service && cfg->ldap_bind_dn != NULL;
	int version = LDAP_VERSION3, rc;
	struct timeval tv;
	LDAP *ld = NULL;

	rc = ldap_initialize(&ld, uri);
	if (rc != LDAP_SUCCESS || ld == NULL) {
		why_set(why, why_size, "%s", ldap_err2string(rc));
		return -1;
	}
	/* No referral chasing: it would bind anonymously to servers we
	 * were not told about. */
	if (SET_OPT(ld, LDAP_OPT_PROTOCOL_VERSION, &version, uri, why,
		    why_size) < 0 ||
	    SET_OPT(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF, uri, why,
		    why_size) < 0 ||
	    SET_OPT(ld, LDAP_OPT_RESTART, LDAP_OPT_ON, uri, why,
		    why_size) < 0 ||
	    SET_OPT(ld, LDAP_OPT_CONNECT_CB, &conn_callbacks, uri, why,
		    why_size) < 0 ||
	    set_timeouts(lb, ld, uri, why, why_size, &tv) < 0 ||
	    (tls && setup_tls(lb, ld, uri, why, why_size) < 0))
		goto fail;
	/* ldaps://: the TLS handshake happens here too. */
	watch_start(-1, &tv);
	rc = ldap_connect(ld);
	if (watch_stop())
		rc = LDAP_TIMEOUT;
	if (rc != LDAP_SUCCESS) {
		ld_diag(ld, lb->diag, sizeof(lb->diag));
		why_set(why, why_size, "connect: %s%s%s", ldap_err2string(rc),
			lb->diag[0] != '\0' ? ": " : "", lb->diag);
		goto fail;
	}
	if (starttls) {
		/* RFC 4513 §3: StartTLS before any bind. */
		if (set_timeouts(lb, ld, uri, why, why_size, &tv) < 0)
			goto fail;
		watch_start(conn_fd(ld), &tv);
		rc = ldap_start_tls_s(ld, NULL, NULL);
		if (watch_stop())
			rc = LDAP_TIMEOUT;
		if (rc != LDAP_SUCCESS) {
			ld_diag(ld, lb->diag, sizeof(lb->diag));
			why_set(why, why_size, "StartTLS: %s%s%s",
				ldap_err2string(rc),
				lb->diag[0] != '\0' ? ": " : "", lb->diag);
			goto fail;
		}
	}
	c->ld = ld;
	c->uri = uri;
	c->uri_i = i;
	c->opened = lb->request;
	if ((bind && service_bind(lb, c, why, why_size) < 0) ||
	    (!bind && !tls && probe(lb, c, why, why_size) < 0)) {
		conn_close(c);
		return -1;
	}
	return 0;
fail:
	ldap_unbind_ext_s(ld, NULL, NULL);
	return -1;
}

/* c, open: kept from an earlier request, or opened now on the first
 * [ldap] uri that works, in order; URIs that failed within the last
 * URI_HOLD_DOWN only after all the others. */
static enum step conn_ensure(struct ldap_backend *lb, struct conn *c,
			     bool service, struct auth_reply *rep)
{
	const struct config *cfg = lb->cfg;
	char why[WHY_MAX] = "no uri";
	uint64_t now = now_usec();

	if (c->ld != NULL)
		return STEP_OK;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < cfg->n_ldap_uri; i++) {
			uint64_t failed = lb->failed_at[i];
			bool held;

			if (failed != 0 && failed >= now)
				continue;	/* failed in this call */
			held = failed != 0 && now - failed < URI_HOLD_DOWN;
			if (held != (pass == 1))
				continue;
			if (now_usec() + 1000 >= lb->deadline) {
				why_set(why, sizeof(why),
					"request deadline passed");
				goto fail;
			}
			if (conn_open_one(lb, c, i, service, why,
					  sizeof(why)) == 0) {
				lb->failed_at[i] = 0;
				if (i > 0)
					log_notice("ldap %s connection: "
						   "using %s", c->name, c->uri);
				return STEP_OK;
			}
			log_warn("ldap %s connection: %s: %s", c->name,
				 cfg->ldap_uri[i], why);
			uri_failed(lb, i);
		}
	}
fail:
	set_result(rep, AUTH_TEMPFAIL, "no ldap server available: %s", why);
	return STEP_TEMPFAIL;
}

/* --- the user's entry --- */

static void user_clear(struct user *u)
{
	free(u->dn);
	free(u->uid);
	strv_clear(&u->member_of);
	memset(u, 0, sizeof(*u));
}

/* Add an address to the reply: no duplicates (ignoring case), the
 * primary one first, at most AUTH_MAX_ADDRESSES. */
static void add_address(struct auth_reply *rep, const char *a, size_t len,
			bool primary, const char *login)
{
	size_t i;

	if (len == 0 || len > AUTH_ADDRESS_MAX)
		return;
	for (i = 0; i < rep->n_address; i++)
		if (strlen(rep->address[i]) == len &&
		    strncasecmp(rep->address[i], a, len) == 0)
			break;
	if (i < rep->n_address && (!primary || i == 0))
		return;
	if (i == rep->n_address) {
		if (rep->n_address == AUTH_MAX_ADDRESSES) {
			log_notice("user %s: more than %d addresses; the "
				   "rest is ignored", login,
				   AUTH_MAX_ADDRESSES);
			return;
		}
		rep->n_address++;
	}
	/* The new one goes to i: to the end, or to the front (moving
	 * 0..i-1 up over the old place of a duplicate). */
	if (primary && i > 0) {
		memmove(rep->address[1], rep->address[0],
			i * sizeof(rep->address[0]));
		i = 0;
	}
	memcpy(rep->address[i], a, len);
	rep->address[i][len] = '\0';
}

/* The login name as the directory spells it (see ldap_backend.h). */
static void pick_canonical(struct berval **vals, const char *login,
			   char *out)
{
	size_t n = vals != NULL ? (size_t)ldap_count_values_len(vals) : 0;
	size_t llen = strlen(login);

	for (size_t i = 0; i < n; i++) {
		struct berval *v = vals[i];

		if (v->bv_len == llen &&
		    strncasecmp(v->bv_val, login, llen) == 0 &&
		    clean(v->bv_val, v->bv_len)) {
			memcpy(out, v->bv_val, llen);
			out[llen] = '\0';
			return;
		}
	}
	if (n == 1 && vals[0]->bv_len > 0 &&
	    vals[0]->bv_len <= AUTH_USER_MAX &&
	    clean(vals[0]->bv_val, vals[0]->bv_len)) {
		memcpy(out, vals[0]->bv_val, vals[0]->bv_len);
		out[vals[0]->bv_len] = '\0';
		return;
	}
	snprintf(out, AUTH_USER_MAX + 1, "%s", login);
}

static void user_from_entry(struct ldap_backend *lb, LDAP *ld,
			    LDAPMessage *e, const char *login, struct user *u,
			    struct auth_reply *rep)
{
	const struct config *cfg = lb->cfg;
	struct berval **vals;
	char *dn;

	dn = ldap_get_dn(ld, e);
	if (dn != NULL) {
		free(u->dn);
		u->dn = xstrdup(dn);
		ldap_memfree(dn);
	}

	vals = lb->login_attr != NULL ?
	       ldap_get_values_len(ld, e, lb->login_attr) : NULL;
	pick_canonical(vals, login, u->canonical);
	ldap_value_free_len(vals);

	if (cfg->ldap_group_membership == LDAP_MEMBER_UID) {
		vals = ldap_get_values_len(ld, e, "uid");
		if (vals != NULL && vals[0] != NULL &&
		    vals[0]->bv_len > 0 && clean(vals[0]->bv_val,
						 vals[0]->bv_len))
			u->uid = xstrndup(vals[0]->bv_val, vals[0]->bv_len);
		ldap_value_free_len(vals);
	}
	if (cfg->ldap_group_membership == LDAP_MEMBER_OF) {
		vals = ldap_get_values_len(ld, e, "memberOf");
		for (size_t i = 0; vals != NULL && vals[i] != NULL &&
		     u->member_of.n < GROUPS_MAX; i++)
			strv_add_bv(&u->member_of, vals[i]);
		ldap_value_free_len(vals);
	}

	for (size_t k = 0; k < cfg->n_ldap_address_attributes; k++) {
		const char *attr = cfg->ldap_address_attributes[k];

		vals = ldap_get_values_len(ld, e, attr);
		for (size_t i = 0; vals != NULL && vals[i] != NULL; i++) {
			const char *a;
			size_t len;
			bool primary;

			if (ldap_address_value(attr, vals[i]->bv_val,
					       vals[i]->bv_len, &a, &len,
					       &primary))
				add_address(rep, a, len, primary, login);
		}
		ldap_value_free_len(vals);
	}
}

/* --- the steps of a request --- */

typedef enum step step_fn(struct ldap_backend *lb, struct conn *c,
			  const struct auth_request *req, struct user *u,
			  struct auth_reply *rep);

/* Search mode: the one entry user_filter finds under base. */
static enum step find_user(struct ldap_backend *lb, struct conn *c,
			   const struct auth_request *req, struct user *u,
			   struct auth_reply *rep)
{
	const struct config *cfg = lb->cfg;
	LDAPMessage *res = NULL;
	char *esc, *filter;
	int rc, n;

	/* RFC 4515 §3: "*", "(", ")", "\" and NUL in the login name
	 * become \2a, \28, \29, \5c, \00: a name never widens the
	 * filter or matches by wildcard. */
	esc = ldap_escape_filter(req->user, strlen(req->user));
	filter = ldap_expand_login(cfg->ldap_user_filter, esc);
	free(esc);
	rc = conn_search(lb, c, cfg->ldap_base, LDAP_SCOPE_SUBTREE, filter,
			 lb->attrs, USER_SIZELIMIT, &res);
	free(filter);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED)
		return conn_failed(lb, c, rc, "user search", rep);
	n = ldap_count_entries(c->ld, res);
	if (n == 0) {
		ldap_msgfree(res);
		set_result(rep, AUTH_PERMFAIL, "unknown user");
		return STEP_PERMFAIL;
	}
	if (n != 1 || rc == LDAP_SIZELIMIT_EXCEEDED) {
		ldap_msgfree(res);
		log_warn("user %s: user_filter matches more than one entry "
			 "under %s; refused", req->user, cfg->ldap_base);
		set_result(rep, AUTH_PERMFAIL,
			   "login name matches more than one entry");
		return STEP_PERMFAIL;
	}
	user_from_entry(lb, c->ld, ldap_first_entry(c->ld, res), req->user,
			u, rep);
	ldap_msgfree(res);
	if (u->dn == NULL || u->dn[0] == '\0') {
		set_result(rep, AUTH_TEMPFAIL, "user entry without a DN");
		return STEP_TEMPFAIL;
	}
	return STEP_OK;
}

/* DN-template mode: the user's own entry, read as the user right after
 * the bind (a user may read their own entry where the anonymous search
 * connection may not). Not readable: canonical name = login name. */
static enum step read_own_entry(struct ldap_backend *lb, struct conn *c,
				const struct auth_request *req,
				struct user *u, struct auth_reply *rep)
{
	LDAPMessage *res = NULL, *e;
	int rc;

	rc = conn_search(lb, c, u->dn, LDAP_SCOPE_BASE, "(objectClass=*)",
			 lb->attrs, 1, &res);
	if (rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_INSUFFICIENT_ACCESS) {
		log_info("user %s: entry %s not readable as the user (%s)",
			 req->user, u->dn, ldap_err2string(rc));
		return STEP_OK;
	}
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED)
		return conn_failed(lb, c, rc, "reading the user's entry",
				   rep);
	e = ldap_first_entry(c->ld, res);
	if (e != NULL)
		user_from_entry(lb, c->ld, e, req->user, u, rep);
	else
		log_info("user %s: entry %s not readable as the user",
			 req->user, u->dn);
	ldap_msgfree(res);
	return STEP_OK;
}

/* The bind result codes that mean "this identity is refused": 535.
 * Anything else a server answers is not about the password: 454. */
static bool bind_refused(int rc)
{
	switch (rc) {
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_NO_SUCH_OBJECT:
	case LDAP_INVALID_DN_SYNTAX:
	case LDAP_CONSTRAINT_VIOLATION:	/* password policy lockouts */
		return true;
	default:
		return false;
	}
}

/* Verify the password: a simple bind as the user's DN on the bind
 * connection, which never runs searches for other users. */
static enum step bind_user(struct ldap_backend *lb, struct conn *c,
			   const struct auth_request *req, struct user *u,
			   struct auth_reply *rep)
{
	struct berval cred;
	const char *meaning;
	char code[4];
	int rc;

	/* Checked by the caller already; RFC 4513 §5.1.2 makes it
	 * matter enough to check again next to the bind. */
	if (req->password[0] == '\0') {
		set_result(rep, AUTH_PERMFAIL, "empty password");
		return STEP_PERMFAIL;
	}
	cred.bv_val = (char *)req->password;
	cred.bv_len = (ber_len_t)strlen(req->password);
	rc = simple_bind(lb, c, u->dn, &cred);
	if (rc == LDAP_SUCCESS)
		return lb->dn_template ? read_own_entry(lb, c, req, u, rep) :
		       STEP_OK;
	if (rc < 0)
		return conn_failed(lb, c, rc, "user bind", rep);
	if (!bind_refused(rc)) {
		log_warn("user %s: bind as %s: %s%s%s", req->user, u->dn,
			 ldap_err2string(rc), lb->diag[0] != '\0' ? ": " : "",
			 lb->diag);
		set_result(rep, AUTH_TEMPFAIL, "ldap user bind: %s",
			   ldap_err2string(rc));
		conn_close(c);
		return STEP_TEMPFAIL;
	}
	meaning = ldap_ad_bind_reason(lb->diag, code);
	if (meaning != NULL) {
		log_info("user %s: bind refused: %s (AD data %s)", req->user,
			 meaning, code);
		set_result(rep, AUTH_PERMFAIL, "%s (AD data %s)", meaning,
			   code);
	} else {
		log_debug("user %s: bind as %s: %s%s%s", req->user, u->dn,
			  ldap_err2string(rc),
			  lb->diag[0] != '\0' ? ": " : "", lb->diag);
		set_result(rep, AUTH_PERMFAIL, "%s", ldap_err2string(rc));
	}
	return STEP_PERMFAIL;
}

/* --- groups --- */

/* "(attr=v1)" or "(|(attr=v1)(attr=v2)...)", each value escaped. */
static char *filter_any(const char *attr, char *const *values, size_t n)
{
	char *filter = xstrdup(n > 1 ? "(|" : ""), *next, *esc;

	for (size_t i = 0; i < n; i++) {
		esc = ldap_escape_filter(values[i], strlen(values[i]));
		next = xasprintf("%s(%s=%s)", filter, attr, esc);
		free(esc);
		free(filter);
		filter = next;
	}
	if (n > 1) {
		next = xasprintf("%s)", filter);
		free(filter);
		filter = next;
	}
	return filter;
}

/* The DNs of the groups under base whose attr holds one of values. */
static enum step groups_holding(struct ldap_backend *lb, struct conn *c,
				const char *attr, char *const *values,
				size_t n, struct strv *out,
				struct auth_reply *rep)
{
	static const char *const no_attrs[] = { LDAP_NO_ATTRS, NULL };

	for (size_t i = 0; i < n; i += GROUP_BATCH) {
		size_t m = n - i < GROUP_BATCH ? n - i : GROUP_BATCH;
		LDAPMessage *res = NULL, *e;
		char *filter, *dn;
		int rc;

		/* Group DNs hold "(", ")", "\" and "*" as often as not
		 * ("cn=Smith\, J (Sales)"): escaped like any value. */
		filter = filter_any(attr, values + i, m);
		rc = conn_search(lb, c, lb->cfg->ldap_base, LDAP_SCOPE_SUBTREE,
				 filter, no_attrs, GROUP_SIZELIMIT, &res);
		free(filter);
		if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED)
			return conn_failed(lb, c, rc, "group search", rep);
		if (rc == LDAP_SIZELIMIT_EXCEEDED)
			log_warn("group search (%s): more than %d groups; "
				 "the rest is not looked at", attr,
				 GROUP_SIZELIMIT);
		for (e = ldap_first_entry(c->ld, res); e != NULL;
		     e = ldap_next_entry(c->ld, e)) {
			dn = ldap_get_dn(c->ld, e);
			if (dn != NULL)
				strv_add(out, dn);
			ldap_memfree(dn);
		}
		ldap_msgfree(res);
	}
	return STEP_OK;
}

/* The memberOf values of each group in groups (memberOf mode, nested). */
static enum step groups_memberof(struct ldap_backend *lb, struct conn *c,
				 const struct strv *groups, struct strv *out,
				 struct auth_reply *rep)
{
	static const char *const attrs[] = { "memberOf", NULL };

	for (size_t i = 0; i < groups->n; i++) {
		LDAPMessage *res = NULL, *e;
		struct berval **vals;
		int rc;

		rc = conn_search(lb, c, groups->v[i], LDAP_SCOPE_BASE,
				 "(objectClass=*)", attrs, 1, &res);
		if (rc == LDAP_NO_SUCH_OBJECT)
			continue;	/* a dangling memberOf value */
		if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED)
			return conn_failed(lb, c, rc, "group search", rep);
		e = ldap_first_entry(c->ld, res);
		vals = e != NULL ? ldap_get_values_len(c->ld, e, "memberOf") :
		       NULL;
		for (size_t k = 0; vals != NULL && vals[k] != NULL &&
		     out->n < GROUPS_MAX; k++)
			strv_add_bv(out, vals[k]);
		ldap_value_free_len(vals);
		ldap_msgfree(res);
	}
	return STEP_OK;
}

/* Mark the targets norm is; true when the walk can end: a required
 * group found and no send_as group to look for, or every target found. */
static bool group_hit(const struct ldap_backend *lb, const char *norm,
		      bool *hit, size_t *n_hit)
{
	bool done = false;

	for (size_t t = 0; t < lb->n_targets; t++) {
		if (hit[t] || lb->targets[t] == NULL ||
		    strcmp(lb->targets[t], norm) != 0)
			continue;
		hit[t] = true;
		(*n_hit)++;
		if (t < lb->n_required && lb->n_targets == lb->n_required)
			done = true;
	}
	return done || *n_hit == lb->n_targets;
}

/* Which of lb->targets the user is in, into hit[]. Upwards from the
 * user: the groups that hold the user, then (nested_groups) the groups
 * that hold those, level by level. Each group is looked at once (a
 * cycle ends there), at most GROUP_DEPTH_MAX levels and GROUPS_MAX
 * groups. */
static enum step walk_groups(struct ldap_backend *lb, struct conn *c,
			     const struct auth_request *req, struct user *u,
			     bool *hit, struct auth_reply *rep)
{
	const struct config *cfg = lb->cfg;
	struct strv seen = { NULL, 0 }, level = { NULL, 0 };
	struct strv fresh = { NULL, 0 };
	enum step st = STEP_OK;
	const char *attr, *value;
	size_t n_hit = 0;
	bool done = false;

	switch (cfg->ldap_group_membership) {
	case LDAP_MEMBER_OF:
		for (size_t i = 0; i < u->member_of.n; i++)
			strv_add(&level, u->member_of.v[i]);
		break;
	case LDAP_MEMBER:
	case LDAP_UNIQUE_MEMBER:
	case LDAP_MEMBER_UID:
		if (cfg->ldap_group_membership == LDAP_MEMBER_UID) {
			/* RFC 2307: memberUid holds the uid. */
			attr = "memberUid";
			value = u->uid != NULL ? u->uid : u->canonical;
		} else {
			attr = cfg->ldap_group_membership == LDAP_MEMBER ?
			       "member" : "uniqueMember";
			value = u->dn;
		}
		st = groups_holding(lb, c, attr, (char *const *)&value, 1,
				    &level, rep);
		break;
	}

	for (unsigned depth = 1; st == STEP_OK && !done; depth++) {
		for (size_t i = 0; i < level.n && !done; i++) {
			char *norm = dn_norm(level.v[i]);

			if (norm == NULL || strv_has(&seen, norm)) {
				free(norm);
				continue;
			}
			done = group_hit(lb, norm, hit, &n_hit);
			if (seen.n < GROUPS_MAX) {
				strv_add(&seen, norm);
				strv_add(&fresh, level.v[i]);
			}
			free(norm);
		}
		strv_clear(&level);
		if (done || !cfg->ldap_nested_groups || fresh.n == 0)
			break;
		if (depth == GROUP_DEPTH_MAX || seen.n >= GROUPS_MAX) {
			log_warn("user %s: groups nested deeper than %u levels "
				 "or more than %d groups; the rest is not "
				 "looked at", req->user, GROUP_DEPTH_MAX,
				 GROUPS_MAX);
			break;
		}
		/* Groups of groups: listed by DN in member (uniqueMember
		 * in that mode; memberUid names users only), or found
		 * through each group's own memberOf. */
		if (cfg->ldap_group_membership == LDAP_MEMBER_OF)
			st = groups_memberof(lb, c, &fresh, &level, rep);
		else
			st = groups_holding(lb, c,
					    cfg->ldap_group_membership ==
					    LDAP_UNIQUE_MEMBER ?
					    "uniqueMember" : "member",
					    fresh.v, fresh.n, &level, rep);
		strv_clear(&fresh);
	}
	strv_clear(&seen);
	strv_clear(&level);
	strv_clear(&fresh);
	return st;
}

/* The group of target i (see ldap_backend_new). */
static const char *target_group(const struct config *cfg, size_t i)
{
	if (i < cfg->n_require_group)
		return cfg->require_group[i];
	i -= cfg->n_require_group;
	if (i < cfg->n_send_as)
		return cfg->send_as[i].group;
	i -= cfg->n_send_as;
	if (i < cfg->n_group_rate)
		return cfg->group_rate[i].group;
	return cfg->group_recipient_rate[i - cfg->n_group_rate].group;
}

/* require_group: membership of one of them is needed. [policy] send_as:
 * members of its group may also send as its address. */
static enum step check_groups(struct ldap_backend *lb, struct conn *c,
			      const struct auth_request *req, struct user *u,
			      struct auth_reply *rep)
{
	const struct config *cfg = lb->cfg;
	bool *hit = xcalloc(lb->n_targets, sizeof(bool)), member = false;
	enum step st;

	st = walk_groups(lb, c, req, u, hit, rep);
	if (st != STEP_OK) {
		free(hit);
		return st;
	}
	for (size_t t = 0; t < lb->n_required; t++)
		member = member || hit[t];
	if (lb->n_required > 0 && !member) {
		free(hit);
		set_result(rep, AUTH_PERMFAIL, AUTH_REASON_NOT_IN_GROUP);
		return STEP_PERMFAIL;
	}
	for (size_t i = 0; i < cfg->n_send_as; i++)
		if (hit[lb->n_required + i])
			add_address(rep, cfg->send_as[i].address,
				    strlen(cfg->send_as[i].address), false,
				    req->user);
	/* The rate groups the user is in, spelt as configured. */
	for (size_t t = lb->n_required + cfg->n_send_as; t < lb->n_targets;
	     t++) {
		const char *g = target_group(cfg, t);
		bool dup = false;

		if (!hit[t] || strlen(g) > AUTH_GROUP_MAX)
			continue;
		for (size_t k = 0; k < rep->n_group; k++)
			dup = dup || strcmp(rep->group[k], g) == 0;
		if (!dup && rep->n_group < AUTH_MAX_GROUPS)
			strcpy(rep->group[rep->n_group++], g);
	}
	free(hit);
	return STEP_OK;
}

/* fn on c (opened first if need be), and once more on a new connection
 * if c turned out dead from an earlier request. */
static enum step run_step(struct ldap_backend *lb, struct conn *c,
			  bool service, step_fn *fn,
			  const struct auth_request *req, struct user *u,
			  struct auth_reply *rep)
{
	enum step st = STEP_TEMPFAIL;

	for (int attempt = 0; attempt < 2; attempt++) {
		st = conn_ensure(lb, c, service, rep);
		if (st != STEP_OK)
			return st;
		st = fn(lb, c, req, u, rep);
		if (st != STEP_STALE)
			return st;
	}
	return STEP_TEMPFAIL;
}

void ldap_backend_auth(struct ldap_backend *lb,
		       const struct auth_request *req, struct auth_reply *rep)
{
	const struct config *cfg = lb->cfg;
	struct user u;
	enum step st;

	memset(&u, 0, sizeof(u));
	rep->user[0] = '\0';
	rep->n_address = 0;
	rep->n_group = 0;
	if (req->user[0] == '\0') {
		set_result(rep, AUTH_PERMFAIL, "empty user name");
		return;
	}
	if (!clean(req->user, strlen(req->user))) {
		set_result(rep, AUTH_PERMFAIL,
			   "control character in the user name");
		return;
	}
	/* RFC 4513 §5.1.2: a simple bind with a DN and an empty password
	 * is an unauthenticated bind that many servers answer with
	 * success. Refused here, before any bind is sent. */
	if (req->password[0] == '\0') {
		set_result(rep, AUTH_PERMFAIL, "empty password");
		return;
	}

	lb->request++;
	lb->deadline = now_usec() + cfg->worker_timeout_usec -
		       cfg->worker_timeout_usec / 10;

	if (lb->dn_template) {
		/* RFC 4514 §2.4: ',', '+', '=', '\' and the others escaped,
		 * so a login name is one attribute value, never more RDNs
		 * or another branch of the tree. */
		char *esc = ldap_escape_dn_value(req->user, strlen(req->user));

		u.dn = ldap_expand_login(cfg->ldap_user_dn_template, esc);
		free(esc);
		snprintf(u.canonical, sizeof(u.canonical), "%s", req->user);
	} else {
		st = run_step(lb, &lb->search, true, find_user, req, &u, rep);
		if (st != STEP_OK)
			goto out;
	}
	st = run_step(lb, &lb->bind, false, bind_user, req, &u, rep);
	if (st != STEP_OK)
		goto out;
	if (lb->n_targets > 0) {
		st = run_step(lb, &lb->search, true, check_groups, req, &u,
			      rep);
		if (st != STEP_OK)
			goto out;
	}
	strcpy(rep->user, u.canonical);
	set_result(rep, AUTH_OK, "%s", "");
	if (strcmp(u.canonical, req->user) != 0)
		log_debug("user %s: canonical name %s", req->user,
			  u.canonical);
out:
	if (rep->result != AUTH_OK) {
		rep->user[0] = '\0';
		rep->n_address = 0;
		rep->n_group = 0;
		memset(rep->address, 0, sizeof(rep->address));
		if (rep->result == AUTH_TEMPFAIL)
			log_warn("user %s: %s", req->user, rep->reason);
		else
			log_debug("user %s: %s", req->user, rep->reason);
	}
	user_clear(&u);
}

/* --- the pre-flight (authrelay --check) --- */

/* Does dn name an entry the service account can see? LDAP_SUCCESS, or
 * the server's result code (LDAP_NO_SUCH_OBJECT) or a local error. */
static int entry_exists(struct ldap_backend *lb, struct conn *c,
			const char *dn)
{
	static const char *const no_attrs[] = { LDAP_NO_ATTRS, NULL };
	LDAPMessage *res = NULL;
	int rc, n = 0;

	lb->deadline = now_usec() + lb->cfg->ldap_timeout_usec;
	rc = conn_search(lb, c, dn, LDAP_SCOPE_BASE, "(objectClass=*)",
			 no_attrs, 1, &res);
	if (res != NULL)
		n = ldap_count_entries(c->ld, res);
	ldap_msgfree(res);
	if (rc == LDAP_SUCCESS && n == 0)
		rc = LDAP_NO_SUCH_OBJECT;
	return rc;
}

/* A server on this machine: no TLS is no exposure. */
static bool uri_is_local(const char *uri)
{
	LDAPURLDesc *lud = NULL;
	bool local;

	if (uri_scheme(uri, "ldapi://"))
		return true;
	if (ldap_url_parse(uri, &lud) != LDAP_URL_SUCCESS)
		return false;
	local = lud->lud_host == NULL || lud->lud_host[0] == '\0' ||
		strncmp(lud->lud_host, "127.", 4) == 0 ||
		strcmp(lud->lud_host, "::1") == 0 ||
		strcasecmp(lud->lud_host, "localhost") == 0;
	ldap_free_urldesc(lud);
	return local;
}

static const char *target_key(const struct config *cfg, size_t i)
{
	if (i < cfg->n_require_group)
		return "[auth] require_group";
	i -= cfg->n_require_group;
	if (i < cfg->n_send_as)
		return "[policy] send_as";
	i -= cfg->n_send_as;
	return i < cfg->n_group_rate ? "[policy] group_rate" :
	       "[policy] group_recipient_rate";
}

/* One line per uri (connect, TLS, service bind), then over the first
 * that worked: the base, and each group the config names. */
unsigned ldap_backend_check(struct ldap_backend *lb)
{
	const struct config *cfg = lb->cfg;
	struct conn c = { .name = "check" }, first = { .name = "check" };
	char why[WHY_MAX];
	unsigned before = check_failures();
	int rc;

	for (size_t i = 0; i < cfg->n_ldap_uri; i++) {
		const char *uri = cfg->ldap_uri[i];
		bool starttls = uri_scheme(uri, "ldap://") &&
				cfg->ldap_starttls;
		bool ldaps = uri_scheme(uri, "ldaps://");

		why[0] = '\0';
		lb->request++;
		lb->deadline = now_usec() + cfg->worker_timeout_usec;
		if (conn_open_one(lb, &c, i, true, why, sizeof(why)) < 0) {
			check_line(CHECK_FAIL, "ldap %s: %s", uri, why);
			continue;
		}
		check_line(CHECK_OK, "ldap %s: connected%s%s, %s%s", uri,
			   ldaps ? ", LDAPS" : starttls ? ", StartTLS" : "",
			   ldaps || starttls ? " (certificate verified "
			   "against the CA file and the host name)" : "",
			   cfg->ldap_bind_dn != NULL ? "service bind as " :
			   "anonymous (no bind_dn)",
			   cfg->ldap_bind_dn != NULL ? cfg->ldap_bind_dn : "");
		if (!ldaps && !starttls && !uri_is_local(uri))
			check_line(CHECK_WARN, "ldap %s: no TLS: passwords "
				   "cross the network in clear (use ldaps:// "
				   "or starttls = yes)", uri);
		if (first.ld == NULL)
			first = c;
		else
			conn_close(&c);
		memset(&c, 0, sizeof(c));
		c.name = "check";
	}
	if (first.ld == NULL) {
		check_line(CHECK_FAIL, "ldap base and groups: not checked: no "
			   "server could be used");
		return check_failures() - before;
	}
	rc = entry_exists(lb, &first, cfg->ldap_base);
	if (rc == LDAP_SUCCESS)
		check_line(CHECK_OK, "ldap [ldap] base %s: exists",
			   cfg->ldap_base);
	else
		check_line(CHECK_FAIL, "ldap [ldap] base %s: %s%s%s",
			   cfg->ldap_base, ldap_err2string(rc),
			   lb->diag[0] != '\0' ? ": " : "", lb->diag);
	for (size_t i = 0; i < lb->n_targets; i++) {
		const char *g = target_group(cfg, i);
		bool seen = false;

		for (size_t k = 0; k < i; k++)
			seen = seen || (lb->targets[k] != NULL &&
					lb->targets[i] != NULL &&
					strcmp(lb->targets[k],
					       lb->targets[i]) == 0);
		if (seen)
			continue;
		if (lb->targets[i] == NULL) {
			check_line(CHECK_FAIL, "ldap %s %s: not a DN: it "
				   "matches nobody", target_key(cfg, i), g);
			continue;
		}
		rc = entry_exists(lb, &first, g);
		if (rc == LDAP_SUCCESS)
			check_line(CHECK_OK, "ldap %s %s: exists",
				   target_key(cfg, i), g);
		else
			check_line(CHECK_FAIL, "ldap %s %s: %s%s%s",
				   target_key(cfg, i), g,
				   rc == LDAP_NO_SUCH_OBJECT ? "no such group" :
				   ldap_err2string(rc),
				   lb->diag[0] != '\0' ? ": " : "", lb->diag);
	}
	conn_close(&first);
	return check_failures() - before;
}

/* --- set-up --- */

/* libldap initializes itself on its first call, and that looks up this
 * host's own name (ldap_int_initialize: ldap_pvt_get_fqdn, for SASL,
 * which we never use): at once from /etc/hosts, else from DNS, where a
 * query lost on a busy machine costs the resolver's 5 s timeout (10 s
 * when no server answers). Done here, at start, rather than inside the
 * first request and against its deadline; and said when slow, since
 * the remedy is the host's. */
static void init_libldap(void)
{
	uint64_t t0 = now_usec(), took;
	char host[256] = "";
	int version = 0;

	ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version);
	took = now_usec() - t0;
	if (took < LDAP_INIT_SLOW)
		return;
	gethostname(host, sizeof(host) - 1);
	log_warn("ldap: libldap took %llu ms to start: it looks up this "
		 "host's name \"%s\"; list that name in /etc/hosts",
		 (unsigned long long)(took / 1000), host);
}

struct ldap_backend *ldap_backend_new(const struct config *cfg)
{
	struct ldap_backend *lb = xcalloc(1, sizeof(*lb));
	struct sigaction sa;
	size_t n = 0;

	/* authrelay.conf is the only configuration: libldap must not read
	 * ldap.conf, ~/.ldaprc or LDAP* variables (LDAPNOINIT, see
	 * ldap.conf(5)). Before the first libldap call. */
	if (setenv("LDAPNOINIT", "1", 1) < 0)
		fatal("setenv LDAPNOINIT: %s", strerror(errno));
	/* A server that closes its end would kill the worker with SIGPIPE
	 * on the next write; libldap sees EPIPE instead. */
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: a blocked read must end */
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		fatal("sigaction SIGALRM: %s", strerror(errno));
	init_libldap();

	lb->cfg = cfg;
	lb->dn_template = cfg->ldap_user_dn_template != NULL;
	lb->login_attr = ldap_login_attribute(lb->dn_template ?
					      cfg->ldap_user_dn_template :
					      cfg->ldap_user_filter);
	if (lb->login_attr == NULL)
		log_warn("ldap: no \"attribute=%%u\" in %s: the canonical "
			 "name is the login name as sent",
			 lb->dn_template ? "user_dn_template" : "user_filter");
	lb->ca_file = cfg->ldap_ca_file;
	if (lb->ca_file == NULL && access(SYSTEM_CA_FILE, R_OK) == 0)
		lb->ca_file = SYSTEM_CA_FILE;

	lb->n_required = cfg->n_require_group;
	/* Targets: require_group, then send_as groups, then the groups of
	 * group_rate and group_recipient_rate. */
	lb->n_targets = cfg->n_require_group + cfg->n_send_as +
			cfg->n_group_rate + cfg->n_group_recipient_rate;
	lb->targets = xcalloc(lb->n_targets ? lb->n_targets : 1,
			      sizeof(char *));
	for (size_t i = 0; i < lb->n_targets; i++) {
		const char *g = target_group(cfg, i);

		lb->targets[i] = dn_norm(g);
		if (lb->targets[i] == NULL)
			log_err("%s \"%s\" is not a DN: it matches nobody",
				i < lb->n_required ? "[auth] require_group" :
				"[policy] group", g);
	}

	lb->attrs = xcalloc(cfg->n_ldap_address_attributes + 4,
			    sizeof(char *));
	if (lb->login_attr != NULL)
		lb->attrs[n++] = lb->login_attr;
	if (cfg->ldap_group_membership == LDAP_MEMBER_OF)
		lb->attrs[n++] = "memberOf";
	if (cfg->ldap_group_membership == LDAP_MEMBER_UID)
		lb->attrs[n++] = "uid";
	for (size_t i = 0; i < cfg->n_ldap_address_attributes; i++)
		lb->attrs[n++] = cfg->ldap_address_attributes[i];
	if (n == 0)
		lb->attrs[n++] = LDAP_NO_ATTRS;
	lb->attrs[n] = NULL;

	lb->failed_at = xcalloc(cfg->n_ldap_uri, sizeof(uint64_t));
	lb->search.name = "search";
	lb->bind.name = "bind";
	return lb;
}

void ldap_backend_free(struct ldap_backend **lbp)
{
	struct ldap_backend *lb = *lbp;

	if (lb == NULL)
		return;
	*lbp = NULL;
	conn_close(&lb->search);
	conn_close(&lb->bind);
	for (size_t i = 0; i < lb->n_targets; i++)
		free(lb->targets[i]);
	free(lb->targets);
	free(lb->attrs);
	free(lb->failed_at);
	free(lb->login_attr);
	if (lb->bind_secret != NULL)
		free_secret(lb->bind_secret, lb->bind_secret_len);
	free(lb->ca_file_override);
	free(lb);
}

void ldap_backend_set_secrets(struct ldap_backend *lb,
			      const void *bind_password, size_t len,
			      const char *ca_file)
{
	if (lb->bind_secret != NULL)
		free_secret(lb->bind_secret, lb->bind_secret_len);
	lb->bind_secret = NULL;
	lb->bind_secret_len = 0;
	if (bind_password != NULL) {
		lb->bind_secret = xmalloc(len + 1);
		memcpy(lb->bind_secret, bind_password, len);
		lb->bind_secret[len] = '\0';
		lb->bind_secret_len = len;
	}
	if (ca_file != NULL) {
		free(lb->ca_file_override);
		lb->ca_file_override = xstrdup(ca_file);
		lb->ca_file = lb->ca_file_override;
	}
}
