/* authrelay.conf parser. Our own, not inih: every error carries its line
 * number, '#' and ';' both start inline comments, and parsing goes on
 * after an error so that `authrelay -t` reports them all at once. */

#include "autoconf.h"

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redis_uri.h"
#include "relay_profile.h"
#include "xalloc.h"

#ifndef AUTH_WORKER_PATH
#error "AUTH_WORKER_PATH must be defined (see common/Makefile.am)"
#endif

#define CONFIG_LINE_MAX 4096	/* octets, without the line end */
#define CONFIG_ERRORS_MAX 100	/* per file; binary garbage stops here */
#define QUOTE_MAX 80		/* a value quoted in an error message */

#define KEY_REPEATABLE	0x1u	/* may be given more than once */
#define KEY_EMPTY_OK	0x2u	/* "key =" is meaningful */
#define KEY_FILE	0x4u	/* names a file that must be readable */
#define KEY_EXEC	0x8u	/* names a program that must be executable */

struct parser;
struct key_def;
typedef void key_setter(struct parser *p, const struct key_def *k,
			const char *value);
/* Returns NULL when value is acceptable, else why it is not. */
typedef const char *value_check(const char *value);

struct enum_name {
	const char *name;
	int value;
};

struct key_def {
	const char *section;
	const char *name;
	key_setter *set;
	size_t off;			/* offsetof(struct config, field) */
	unsigned flags;
	uint64_t min, max;		/* numbers, sizes, durations */
	const struct enum_name *names;	/* enums */
	value_check *check;		/* strings */
};

struct parser {
	struct config *cfg;
	struct config_errors *errs;
	const char *path;
	unsigned line;
	const char *section;		/* NULL: none yet, or unknown */
	bool unknown_section;		/* skip keys until the next header */
	unsigned *key_line;		/* first line each key was given on */
	size_t n_cert, n_key;
	size_t n_errors;
};

static const char *const sections[] = {
	"server", "tls", "auth", "pam", "ldap", "relay", "policy",
};

/* --- errors --- */

static char *vformat(const char *fmt, va_list ap)
	__attribute__((format(printf, 1, 0)));
static char *vformat(const char *fmt, va_list ap)
{
	va_list aq;
	char *s;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		return xstrdup("(unprintable error message)");
	s = xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

void config_errors_add(struct config_errors *errs, const char *fmt, ...)
{
	va_list ap;

	errs->msg = xreallocarray(errs->msg, errs->n + 1, sizeof(*errs->msg));
	va_start(ap, fmt);
	errs->msg[errs->n++] = vformat(fmt, ap);
	va_end(ap);
}

void config_errors_clear(struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	errs->msg = NULL;
	errs->n = 0;
}

/* line 0: a whole-file error, "FILE: message". */
static void perr(struct parser *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void perr(struct parser *p, unsigned line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (p->n_errors > CONFIG_ERRORS_MAX)
		return;
	if (p->n_errors++ == CONFIG_ERRORS_MAX) {
		config_errors_add(p->errs, "%s: too many errors, giving up",
				  p->path);
		return;
	}
	va_start(ap, fmt);
	msg = vformat(fmt, ap);
	va_end(ap);
	if (line != 0)
		config_errors_add(p->errs, "%s:%u: %s", p->path, line, msg);
	else
		config_errors_add(p->errs, "%s: %s", p->path, msg);
	free(msg);
}

/* A value as it may appear in a message: bytes outside printable ASCII
 * escaped, long values cut, so garbage input gives readable errors. */
static const char *quote(char *buf, size_t size, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (o + 8 >= size) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		if (c < 0x20 || c >= 0x7f) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 0xf];
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o] = '\0';
	return buf;
}

#define Q(s) quote((char[QUOTE_MAX]){ 0 }, QUOTE_MAX, (s))

/* --- value parsers --- */

/* Decimal digits only: no sign, no space, no base prefix; strtoull would
 * take " -1" and wrap it. */
static int parse_u64(const char *s, size_t len, uint64_t *n_r)
{
	uint64_t n = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*n_r = n;
	return 0;
}

static size_t digits_len(const char *s)
{
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9')
		n++;
	return n;
}

static int scale(uint64_t n, uint64_t unit, uint64_t *r)
{
	if (unit != 0 && n > UINT64_MAX / unit)
		return -1;
	*r = n * unit;
	return 0;
}

int config_parse_duration(const char *s, uint64_t *usec_r)
{
	static const struct {
		const char *suffix;
		uint64_t usec;
	} units[] = {
		{ "", USEC_PER_SEC },
		{ "ms", 1000 },
		{ "s", USEC_PER_SEC },
		{ "m", 60 * USEC_PER_SEC },
		{ "h", 3600 * USEC_PER_SEC },
		{ "d", 86400 * USEC_PER_SEC },
	};
	size_t nd = digits_len(s);
	uint64_t n;

	if (parse_u64(s, nd, &n) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(s + nd, units[i].suffix) == 0)
			return scale(n, units[i].usec, usec_r);
	return -1;
}

int config_parse_size(const char *s, uint64_t *bytes_r)
{
	size_t nd = digits_len(s);
	uint64_t n, unit;

	if (parse_u64(s, nd, &n) < 0)
		return -1;
	s += nd;
	if (*s == '\0')
		return scale(n, 1, bytes_r);
	if (s[1] != '\0')
		return -1;
	switch (*s) {
	case 'k': case 'K': unit = 1ULL << 10; break;
	case 'm': case 'M': unit = 1ULL << 20; break;
	case 'g': case 'G': unit = 1ULL << 30; break;
	default: return -1;
	}
	return scale(n, unit, bytes_r);
}

int config_parse_bool(const char *s, bool *b_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b_r = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b_r = false;
			return 0;
		}
	}
	return -1;
}

/* For range messages: the largest unit that divides the value. */
static const char *fmt_duration(char *buf, size_t size, uint64_t usec)
{
	static const struct {
		uint64_t usec;
		const char *suffix;
	} units[] = {
		{ 86400 * USEC_PER_SEC, "d" }, { 3600 * USEC_PER_SEC, "h" },
		{ 60 * USEC_PER_SEC, "m" }, { USEC_PER_SEC, "s" },
		{ 1000, "ms" },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (usec != 0 && usec % units[i].usec == 0) {
			snprintf(buf, size, "%llu%s",
				 (unsigned long long)(usec / units[i].usec),
				 units[i].suffix);
			return buf;
		}
	}
	snprintf(buf, size, "%lluus", (unsigned long long)usec);
	if (usec == 0)
		snprintf(buf, size, "0");
	return buf;
}

static const char *fmt_size(char *buf, size_t size, uint64_t n)
{
	static const char suffix[] = "GMK";

	for (int i = 0; i < 3; i++) {
		uint64_t unit = 1ULL << (10 * (3 - i));

		if (n != 0 && n % unit == 0) {
			snprintf(buf, size, "%llu%c",
				 (unsigned long long)(n / unit), suffix[i]);
			return buf;
		}
	}
	snprintf(buf, size, "%llu", (unsigned long long)n);
	return buf;
}

#define FMT_DURATION(u) fmt_duration((char[32]){ 0 }, 32, (u))
#define FMT_SIZE(n) fmt_size((char[32]){ 0 }, 32, (n))

/* --- string checks --- */

static bool is_word_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

static bool all_word_chars(const char *s)
{
	for (; *s != '\0'; s++)
		if (!is_word_char((unsigned char)*s))
			return false;
	return true;
}

static const char *check_hostname(const char *s)
{
	return all_word_chars(s) ? NULL :
		"not a host name (letters, digits, '-', '.', '_')";
}

static const char *check_abs_path(const char *s)
{
	/* Under systemd the working directory is /: a relative path that
	 * works with -t from a shell would break in the service. */
	return s[0] == '/' ? NULL : "not an absolute path";
}

static const char *check_pam_service(const char *s)
{
	return strchr(s, '/') == NULL ? NULL :
		"a PAM service name, not a path (/etc/pam.d/NAME)";
}

static const char *check_user_name(const char *s)
{
	/* What useradd and systemd-sysusers accept, roughly. */
	if (strlen(s) > 32 || s[0] == '-' || strcmp(s, "root") == 0)
		return "not a system user name for the network process "
		       "(not root)";
	for (const char *c = s; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' ||
		      *c == '.'))
			return "not a user name";
	return NULL;
}

static const char *check_has_login(const char *s)
{
	/* Without %u every login would find the same entry. */
	return strstr(s, "%u") != NULL ? NULL : "must contain %u";
}

static const char *check_profile(const char *s)
{
	char arg[RELAY_PROFILE_ARG_MAX + 1];
	const char *error = NULL;

	return relay_profile_find(s, arg, &error) != NULL ? NULL : error;
}

/* RFC 6749 §3.2: the token endpoint MUST be reached over TLS. */
static const char *check_https_url(const char *s)
{
	if (strncasecmp(s, "https://", 8) != 0 || s[8] == '\0' || s[8] == '/')
		return "must be an https:// URL";
	for (; *s != '\0'; s++)
		if (*s == ' ' || *s == '"' || *s == '<' || *s == '>')
			return "must be an https:// URL";
	return NULL;
}

static const char *check_redis_uri(const char *s)
{
	struct redis_uri u;
	const char *error = NULL;

	return redis_uri_parse(s, &u, &error) == 0 ? NULL : error;
}

/* Keys of several services may share one Redis: printable, no space. */
static const char *check_key_prefix(const char *s)
{
	if (strlen(s) > 64)
		return "longer than 64 octets";
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s >= 0x7f)
			return "printable ASCII without spaces only";
	return NULL;
}

static const char *check_header_name(const char *s)
{
	/* RFC 5322 §2.2: printable US-ASCII except colon. */
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s >= 0x7f || *s == ':')
			return "not a header field name";
	return NULL;
}

/* --- setters --- */

static void *field(struct parser *p, const struct key_def *k)
{
	return (char *)p->cfg + k->off;
}

static void set_string(struct parser *p, const struct key_def *k,
		       const char *value)
{
	char **dst = field(p, k);
	const char *why;

	if (*value != '\0' && k->check != NULL &&
	    (why = k->check(value)) != NULL) {
		perr(p, p->line, "[%s] %s: \"%s\": %s", k->section, k->name,
		     Q(value), why);
		return;
	}
	free(*dst);
	*dst = *value != '\0' ? xstrdup(value) : NULL;
}

/* Like set_string, but an empty value is kept as "" (meaning: none)
 * rather than NULL (meaning: unset). */
static void set_string_keep_empty(struct parser *p, const struct key_def *k,
				  const char *value)
{
	char **dst = field(p, k);

	set_string(p, k, value);
	if (*value == '\0' && *dst == NULL)
		*dst = xstrdup("");
}

static void set_bool(struct parser *p, const struct key_def *k,
		     const char *value)
{
	if (config_parse_bool(value, field(p, k)) < 0)
		perr(p, p->line, "[%s] %s: bad boolean \"%s\" (yes or no)",
		     k->section, k->name, Q(value));
}

static void set_uint(struct parser *p, const struct key_def *k,
		     const char *value)
{
	uint64_t n;

	if (parse_u64(value, strlen(value), &n) < 0) {
		perr(p, p->line, "[%s] %s: bad number \"%s\"", k->section,
		     k->name, Q(value));
		return;
	}
	if (n < k->min || n > k->max) {
		perr(p, p->line, "[%s] %s: %s out of range %llu..%llu",
		     k->section, k->name, Q(value),
		     (unsigned long long)k->min, (unsigned long long)k->max);
		return;
	}
	*(unsigned *)field(p, k) = (unsigned)n;
}

static void set_size(struct parser *p, const struct key_def *k,
		     const char *value)
{
	uint64_t n;

	if (config_parse_size(value, &n) < 0) {
		perr(p, p->line, "[%s] %s: bad size \"%s\" (e.g. 65536, 512K, "
		     "35M, 1G)", k->section, k->name, Q(value));
		return;
	}
	if (n < k->min || n > k->max) {
		perr(p, p->line, "[%s] %s: %s out of range %s..%s",
		     k->section, k->name, Q(value), FMT_SIZE(k->min),
		     FMT_SIZE(k->max));
		return;
	}
	*(uint64_t *)field(p, k) = n;
}

static void set_duration(struct parser *p, const struct key_def *k,
			 const char *value)
{
	uint64_t usec;

	if (config_parse_duration(value, &usec) < 0) {
		perr(p, p->line, "[%s] %s: bad duration \"%s\" (e.g. 500ms, "
		     "30s, 5m, 1h, 1d)", k->section, k->name, Q(value));
		return;
	}
	if (usec < k->min || usec > k->max) {
		perr(p, p->line, "[%s] %s: %s out of range %s..%s",
		     k->section, k->name, Q(value), FMT_DURATION(k->min),
		     FMT_DURATION(k->max));
		return;
	}
	*(uint64_t *)field(p, k) = usec;
}

int config_parse_rate(const char *s, struct config_rate *rate_r)
{
	const char *slash = strchr(s, '/');
	uint64_t n, usec;
	char num[24];
	size_t len;

	if (s[0] == '\0' || strcmp(s, "0") == 0) {
		rate_r->count = 0;
		rate_r->window_usec = 0;
		return 0;
	}
	if (slash == NULL)
		return -1;
	len = (size_t)(slash - s);
	if (len == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, s, len);
	num[len] = '\0';
	if (parse_u64(num, len, &n) < 0 || n == 0 || n > 10000000 ||
	    config_parse_duration(slash + 1, &usec) < 0 ||
	    usec < USEC_PER_SEC || usec > 7 * 86400 * USEC_PER_SEC)
		return -1;
	rate_r->count = (unsigned)n;
	rate_r->window_usec = usec;
	return 0;
}

static void set_rate(struct parser *p, const struct key_def *k,
		     const char *value)
{
	if (config_parse_rate(value, field(p, k)) < 0)
		perr(p, p->line, "[%s] %s: bad rate \"%s\" (COUNT/DURATION, "
		     "e.g. 500/1h; 1..10000000 per 1s..7d; 0 for none)",
		     k->section, k->name, Q(value));
}

static void set_group_rate(struct parser *p, const struct key_def *k,
			   const char *value)
{
	struct config *c = p->cfg;
	bool recipients = strcmp(k->name, "group_recipient_rate") == 0;
	struct config_group_rate **arr = recipients ?
		&c->group_recipient_rate : &c->group_rate;
	size_t *n = recipients ? &c->n_group_recipient_rate : &c->n_group_rate;
	size_t rlen = strcspn(value, " \t");
	const char *group = value + rlen + strspn(value + rlen, " \t");
	struct config_rate rate;
	char r[64];

	if (rlen == 0 || rlen >= sizeof(r) || *group == '\0' ||
	    strlen(group) > 256) {
		perr(p, p->line, "[%s] %s: want \"COUNT/DURATION GROUP\" "
		     "(e.g. 2000/1h sales), got \"%s\"", k->section, k->name,
		     Q(value));
		return;
	}
	memcpy(r, value, rlen);
	r[rlen] = '\0';
	if (config_parse_rate(r, &rate) < 0 || rate.count == 0) {
		perr(p, p->line, "[%s] %s: bad rate \"%s\" (COUNT/DURATION, "
		     "e.g. 2000/1h; 1..10000000 per 1s..7d)", k->section,
		     k->name, Q(r));
		return;
	}
	if (*n >= 16) {
		perr(p, p->line, "[%s] %s: at most 16 entries", k->section,
		     k->name);
		return;
	}
	*arr = xreallocarray(*arr, *n + 1, sizeof(**arr));
	(*arr)[*n].rate = rate;
	(*arr)[*n].group = xstrdup(group);
	(*arr)[*n].line = p->line;
	(*n)++;
}

static void set_enum(struct parser *p, const struct key_def *k,
		     const char *value)
{
	char list[256] = "";

	for (const struct enum_name *e = k->names; e->name != NULL; e++) {
		if (strcasecmp(value, e->name) == 0) {
			*(int *)field(p, k) = e->value;
			return;
		}
		if (list[0] != '\0')
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, e->name, sizeof(list) - strlen(list) - 1);
	}
	perr(p, p->line, "[%s] %s: \"%s\" is not one of: %s", k->section,
	     k->name, Q(value), list);
}

static const char *const space = " \t";

/* Split a space-separated list into a fresh array; returns the count. */
static size_t split_words(const char *value, char ***words_r)
{
	char **words = NULL;
	size_t n = 0;

	for (const char *s = value + strspn(value, space); *s != '\0';
	     s += strspn(s, space)) {
		size_t len = strcspn(s, space);

		words = xreallocarray(words, n + 1, sizeof(*words));
		words[n++] = xstrndup(s, len);
		s += len;
	}
	*words_r = words;
	return n;
}

static void free_words(char **words, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(words[i]);
	free(words);
}

static void set_mechanisms(struct parser *p, const struct key_def *k,
			   const char *value)
{
	char **words;
	size_t n = split_words(value, &words);
	unsigned mechs = 0;
	bool bad = false;

	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(words[i], "PLAIN") == 0) {
			mechs |= AUTH_MECH_PLAIN;
		} else if (strcasecmp(words[i], "LOGIN") == 0) {
			mechs |= AUTH_MECH_LOGIN;
		} else {
			perr(p, p->line, "[%s] %s: unsupported mechanism "
			     "\"%s\" (PLAIN, LOGIN)", k->section, k->name,
			     Q(words[i]));
			bad = true;
		}
	}
	free_words(words, n);
	if (!bad)
		p->cfg->mechanisms = mechs;
}

static void set_ldap_uri(struct parser *p, const struct key_def *k,
			 const char *value)
{
	static const char *const schemes[] = {
		"ldap://", "ldaps://", "ldapi://",
	};
	struct config *c = p->cfg;
	char **words;
	size_t n = split_words(value, &words);
	bool bad = false;

	for (size_t i = 0; i < n; i++) {
		bool ok = false;

		for (size_t j = 0; j < sizeof(schemes) / sizeof(*schemes); j++)
			if (strncasecmp(words[i], schemes[j],
					strlen(schemes[j])) == 0)
				ok = true;
		if (!ok) {
			perr(p, p->line, "[%s] %s: \"%s\" is not an ldap://, "
			     "ldaps:// or ldapi:// URI", k->section, k->name,
			     Q(words[i]));
			bad = true;
		}
	}
	if (bad) {
		free_words(words, n);
		return;
	}
	free_words(c->ldap_uri, c->n_ldap_uri);
	c->ldap_uri = words;
	c->n_ldap_uri = n;
}

static void set_address_attributes(struct parser *p, const struct key_def *k,
				   const char *value)
{
	struct config *c = p->cfg;
	char **words;
	size_t n = split_words(value, &words);

	for (size_t i = 0; i < n; i++) {
		/* RFC 4512 §2.5: a descriptor or a numeric OID. */
		if (!all_word_chars(words[i]) || strchr(words[i], '_')) {
			perr(p, p->line, "[%s] %s: \"%s\" is not an attribute "
			     "name", k->section, k->name, Q(words[i]));
			free_words(words, n);
			return;
		}
	}
	free_words(c->ldap_address_attributes, c->n_ldap_address_attributes);
	c->ldap_address_attributes = words;
	c->n_ldap_address_attributes = n;
}

static void set_require_group(struct parser *p, const struct key_def *k,
			      const char *value)
{
	struct config *c = p->cfg;

	/* "require_group =" is allowed and adds nothing: any valid user. */
	if (*value == '\0')
		return;
	c->require_group = xreallocarray(c->require_group, c->n_require_group
					 + 1, sizeof(*c->require_group));
	c->require_group_line = xreallocarray(c->require_group_line,
					      c->n_require_group + 1,
					      sizeof(*c->require_group_line));
	c->require_group_line[c->n_require_group] = p->line;
	c->require_group[c->n_require_group++] = xstrdup(value);
}

static void set_send_as(struct parser *p, const struct key_def *k,
			const char *value)
{
	struct config *c = p->cfg;
	size_t alen = strcspn(value, " \t");
	const char *group = value + alen;
	const char *at = memchr(value, '@', alen);

	group += strspn(group, " \t");
	if (alen == 0 || at == NULL || at == value || at == value + alen - 1 ||
	    *group == '\0') {
		perr(p, p->line, "[%s] %s: want \"ADDRESS GROUP\" "
		     "(e.g. helpdesk@example.com helpdesk), got \"%s\"",
		     k->section, k->name, Q(value));
		return;
	}
	c->send_as = xreallocarray(c->send_as, c->n_send_as + 1,
				   sizeof(*c->send_as));
	c->send_as[c->n_send_as].address = xstrndup(value, alen);
	c->send_as[c->n_send_as].group = xstrdup(group);
	c->send_as[c->n_send_as].line = p->line;
	c->n_send_as++;
}

/* An IPv6 address, with an optional "%zone" (fe80::1%eth0). */
static bool is_ipv6(const char *s, size_t len)
{
	struct in6_addr a;
	char buf[INET6_ADDRSTRLEN];
	size_t addr_len = len;
	const char *zone = memchr(s, '%', len);

	if (zone != NULL) {
		addr_len = (size_t)(zone - s);
		if (len - addr_len < 2)
			return false;
		for (const char *z = zone + 1; z < s + len; z++)
			if (!is_word_char((unsigned char)*z))
				return false;
	}
	if (addr_len == 0 || addr_len >= sizeof(buf))
		return false;
	memcpy(buf, s, addr_len);
	buf[addr_len] = '\0';
	return inet_pton(AF_INET6, buf, &a) == 1;
}

/* "HOST:PORT", "[V6]:PORT", or with default_port also "HOST", "[V6]".
 * Returns NULL, or why it is not one. On success *host_r and *port_r are
 * fresh strings, the host without brackets. */
static const char *parse_hostport(const char *s, const char *default_port,
				  char **host_r, char **port_r)
{
	const char *host, *port = NULL;
	size_t host_len;
	uint64_t n;

	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL)
			return "missing ']' after IPv6 address";
		host = s + 1;
		host_len = (size_t)(end - host);
		if (host_len == 0)
			return "empty address in []";
		if (!is_ipv6(host, host_len))
			return "not an IPv6 address in []";
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return "expected ':' after ']'";
	} else {
		const char *colon = strchr(s, ':');

		host = s;
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return "an IPv6 address needs [brackets]";
		host_len = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (host_len == 0)
			return "missing host";
		for (size_t i = 0; i < host_len; i++)
			if (!is_word_char((unsigned char)host[i]))
				return "bad host name";
		if (colon != NULL)
			port = colon + 1;
	}
	if (port == NULL) {
		if (default_port == NULL)
			return "missing port";
		port = default_port;
	}
	if (parse_u64(port, strlen(port), &n) < 0 || n < 1 || n > 65535)
		return "bad port (1..65535)";
	*host_r = xstrndup(host, host_len);
	*port_r = xasprintf("%u", (unsigned)n);
	return NULL;
}

static void set_listen(struct parser *p, const struct key_def *k,
		       const char *value)
{
	struct config *c = p->cfg;
	struct config_listen l = { .mode = LISTEN_STARTTLS, .line = p->line };
	char **words;
	size_t n = split_words(value, &words);
	const char *why = NULL;

	if (n > 2)
		why = "too many words";
	else if (n == 2 && strcasecmp(words[1], "tls") == 0)
		l.mode = LISTEN_TLS;
	else if (n == 2 && strcasecmp(words[1], "starttls") != 0)
		why = "mode is not starttls or tls";
	if (why == NULL)
		why = parse_hostport(words[0], NULL, &l.host, &l.port);
	if (why != NULL) {
		perr(p, p->line, "[%s] %s: \"%s\": %s; expected HOST:PORT "
		     "[starttls|tls]",
		     k->section, k->name, Q(value), why);
		free_words(words, n);
		return;
	}
	free_words(words, n);
	for (size_t i = 0; i < c->n_listen; i++) {
		if (strcmp(c->listen[i].host, l.host) == 0 &&
		    strcmp(c->listen[i].port, l.port) == 0) {
			perr(p, p->line, "[%s] %s: %s:%s given twice (first at "
			     "line %u)", k->section, k->name, Q(l.host),
			     l.port, c->listen[i].line);
			free(l.host);
			free(l.port);
			return;
		}
	}
	c->listen = xreallocarray(c->listen, c->n_listen + 1,
				  sizeof(*c->listen));
	c->listen[c->n_listen++] = l;
}

static void set_smarthost(struct parser *p, const struct key_def *k,
			  const char *value)
{
	struct config *c = p->cfg;
	struct config_hostport h = { .line = p->line };
	const char *why;

	if (value[strcspn(value, space)] != '\0')
		why = "spaces in host[:port]";
	else
		why = parse_hostport(value, "25", &h.host, &h.port);
	if (why != NULL) {
		perr(p, p->line, "[%s] %s: \"%s\": %s; expected host[:port]",
		     k->section, k->name, Q(value), why);
		return;
	}
	c->smarthost = xreallocarray(c->smarthost, c->n_smarthost + 1,
				     sizeof(*c->smarthost));
	c->smarthost[c->n_smarthost++] = h;
}

/* [server] metrics_listen = ADDR:PORT. The network process, which holds
 * no privilege, binds it: a port below 1024 would fail there. */
static void set_metrics_listen(struct parser *p, const struct key_def *k,
			       const char *value)
{
	struct config *c = p->cfg;
	char *host = NULL, *port = NULL;
	const char *why;

	free(c->metrics_listen.host);
	free(c->metrics_listen.port);
	c->metrics_listen = (struct config_hostport){ .line = p->line };
	if (value[0] == '\0')
		return;		/* off */
	if (value[strcspn(value, space)] != '\0')
		why = "spaces in ADDR:PORT";
	else
		why = parse_hostport(value, NULL, &host, &port);
	if (why == NULL && atoi(port) < 1024)
		why = "a port below 1024 needs privileges the network process "
		      "does not have";
	if (why != NULL) {
		perr(p, p->line, "[%s] %s: \"%s\": %s; expected ADDR:PORT",
		     k->section, k->name, Q(value), why);
		free(host);
		free(port);
		return;
	}
	c->metrics_listen.host = host;
	c->metrics_listen.port = port;
}

/* cert and key pair up by order: the i-th cert goes with the i-th key. */
static struct config_tls_pair *tls_slot(struct parser *p, size_t i)
{
	struct config *c = p->cfg;

	if (i == c->n_tls) {
		c->tls = xreallocarray(c->tls, c->n_tls + 1, sizeof(*c->tls));
		memset(&c->tls[c->n_tls++], 0, sizeof(*c->tls));
	}
	return &c->tls[i];
}

/* A bad path still takes its slot, so that the entries after it keep
 * their partners and the counts stay right. */
static char *tls_path(struct parser *p, const struct key_def *k,
		      const char *value)
{
	const char *why = check_abs_path(value);

	if (why != NULL) {
		perr(p, p->line, "[%s] %s: \"%s\": %s", k->section, k->name,
		     Q(value), why);
		return NULL;
	}
	return xstrdup(value);
}

static void set_tls_cert(struct parser *p, const struct key_def *k,
			 const char *value)
{
	struct config_tls_pair *t = tls_slot(p, p->n_cert++);

	t->cert = tls_path(p, k, value);
	t->cert_line = p->line;
}

static void set_tls_key(struct parser *p, const struct key_def *k,
			const char *value)
{
	struct config_tls_pair *t = tls_slot(p, p->n_key++);

	t->key = tls_path(p, k, value);
	t->key_line = p->line;
}

/* --- the keys --- */

static const struct enum_name backend_names[] = {
	{ "pam", AUTH_BACKEND_PAM }, { "ldap", AUTH_BACKEND_LDAP }, { NULL, 0 },
};
static const struct enum_name tls_version_names[] = {
	{ "TLSv1.2", 0x0303 }, { "TLSv1.3", 0x0304 }, { NULL, 0 },
};
static const struct enum_name membership_names[] = {
	{ "member", LDAP_MEMBER }, { "uniqueMember", LDAP_UNIQUE_MEMBER },
	{ "memberUid", LDAP_MEMBER_UID }, { "memberOf", LDAP_MEMBER_OF },
	{ NULL, 0 },
};
static const struct enum_name relay_tls_names[] = {
	{ "none", RELAY_TLS_NONE }, { "starttls", RELAY_TLS_STARTTLS },
	{ "tls", RELAY_TLS_TLS }, { NULL, 0 },
};
static const struct enum_name relay_auth_mech_names[] = {
	{ "plain", RELAY_AUTH_PLAIN }, { "login", RELAY_AUTH_LOGIN },
	{ "xoauth2", RELAY_AUTH_XOAUTH2 },
	{ "oauthbearer", RELAY_AUTH_OAUTHBEARER }, { NULL, 0 },
};
static const struct enum_name oauth2_grant_names[] = {
	{ "client_credentials", OAUTH2_GRANT_CLIENT_CREDENTIALS },
	{ "jwt_bearer", OAUTH2_GRANT_JWT_BEARER }, { NULL, 0 },
};
static const struct enum_name sender_check_names[] = {
	{ "off", SENDER_CHECK_OFF }, { "envelope", SENDER_CHECK_ENVELOPE },
	{ "header", SENDER_CHECK_HEADER }, { "both", SENDER_CHECK_BOTH },
	{ NULL, 0 },
};
static const struct enum_name shared_failure_names[] = {
	{ "open", SHARED_FAILURE_OPEN }, { "closed", SHARED_FAILURE_CLOSED },
	{ NULL, 0 },
};
static const struct enum_name bare_newline_names[] = {
	{ "reject", BARE_NEWLINE_REJECT },
	{ "normalize", BARE_NEWLINE_NORMALIZE }, { NULL, 0 },
};

/* set_enum writes an int. */
_Static_assert(sizeof(enum auth_backend) == sizeof(int), "enum size");
_Static_assert(sizeof(enum ldap_membership) == sizeof(int), "enum size");
_Static_assert(sizeof(enum relay_tls) == sizeof(int), "enum size");
_Static_assert(sizeof(enum sender_check) == sizeof(int), "enum size");
_Static_assert(sizeof(enum relay_auth_mech) == sizeof(int), "enum size");
_Static_assert(sizeof(enum oauth2_grant) == sizeof(int), "enum size");
_Static_assert(sizeof(enum bare_newline) == sizeof(int), "enum size");
_Static_assert(sizeof(enum shared_failure) == sizeof(int), "enum size");

#define OFF(f) offsetof(struct config, f)
#define SECOND USEC_PER_SEC
#define MINUTE (60 * SECOND)
#define HOUR (3600 * SECOND)
#define DAY (86400 * SECOND)

#define STR(s, n, f, fl, chk) \
	{ s, n, set_string, OFF(f), fl, 0, 0, NULL, chk }
#define PATH(s, n, f, fl) \
	{ s, n, set_string, OFF(f), (fl) | KEY_EMPTY_OK, 0, 0, NULL, \
	  check_abs_path }
#define BOOL(s, n, f) { s, n, set_bool, OFF(f), 0, 0, 0, NULL, NULL }
#define UINT(s, n, f, lo, hi) { s, n, set_uint, OFF(f), 0, lo, hi, NULL, NULL }
#define SIZE(s, n, f, lo, hi) { s, n, set_size, OFF(f), 0, lo, hi, NULL, NULL }
#define DUR(s, n, f, lo, hi) \
	{ s, n, set_duration, OFF(f), 0, lo, hi, NULL, NULL }
#define ENUM(s, n, f, names) \
	{ s, n, set_enum, OFF(f), 0, 0, 0, names, NULL }
#define FUNC(s, n, fn, fl) { s, n, fn, 0, fl, 0, 0, NULL, NULL }

static const struct key_def keys[] = {
	STR("server", "hostname", hostname, 0, check_hostname),
	FUNC("server", "listen", set_listen, KEY_REPEATABLE),
	SIZE("server", "max_message_size", max_message_size, 1ULL << 10,
	     4ULL << 30),
	UINT("server", "max_recipients", max_recipients, 1, 100000),
	UINT("server", "max_connections", max_connections, 1, 1000000),
	UINT("server", "max_connections_per_ip", max_connections_per_ip, 1,
	     1000000),
	UINT("server", "max_bad_commands", max_bad_commands, 1, 1000),
	DUR("server", "command_timeout", command_timeout_usec, SECOND, HOUR),
	DUR("server", "data_timeout", data_timeout_usec, SECOND, HOUR),
	DUR("server", "shutdown_timeout", shutdown_timeout_usec, 0, HOUR),
	BOOL("server", "proxy_protocol", proxy_protocol),
	UINT("server", "threads", threads, 0, 256),
	STR("server", "user", run_user, 0, check_user_name),
	FUNC("server", "metrics_listen", set_metrics_listen, KEY_EMPTY_OK),

	FUNC("tls", "cert", set_tls_cert, KEY_REPEATABLE),
	FUNC("tls", "key", set_tls_key, KEY_REPEATABLE),
	ENUM("tls", "min_version", tls_min_version, tls_version_names),
	STR("tls", "ciphers", tls_ciphers, KEY_EMPTY_OK, NULL),
	DUR("tls", "handshake_timeout", handshake_timeout_usec, SECOND,
	    10 * MINUTE),
	DUR("tls", "ticket_lifetime", tls_ticket_lifetime_usec, 0, DAY),

	ENUM("auth", "backend", backend, backend_names),
	FUNC("auth", "mechanisms", set_mechanisms, 0),
	FUNC("auth", "require_group", set_require_group,
	     KEY_REPEATABLE | KEY_EMPTY_OK),
	DUR("auth", "cache_ttl", cache_ttl_usec, 0, DAY),
	DUR("auth", "failure_delay", failure_delay_usec, 0, MINUTE),
	{ "auth", "worker_path", set_string, OFF(worker_path), KEY_EXEC, 0, 0,
	  NULL, check_abs_path },
	UINT("auth", "workers", workers, 1, 256),
	UINT("auth", "worker_max_requests", worker_max_requests, 1, 1000000),
	DUR("auth", "worker_timeout", worker_timeout_usec, SECOND, 10 * MINUTE),
	UINT("auth", "max_failures_per_ip", max_failures_per_ip, 0, 100000),
	DUR("auth", "failure_window", failure_window_usec, SECOND, DAY),
	DUR("auth", "block_time", block_time_usec, SECOND, DAY),

	STR("pam", "service", pam_service, 0, check_pam_service),
	STR("pam", "address_domain", address_domain, KEY_EMPTY_OK,
	    check_hostname),

	FUNC("ldap", "uri", set_ldap_uri, 0),
	BOOL("ldap", "starttls", ldap_starttls),
	PATH("ldap", "ca_file", ldap_ca_file, KEY_FILE),
	DUR("ldap", "timeout", ldap_timeout_usec, 100 * 1000, 10 * MINUTE),
	STR("ldap", "base", ldap_base, 0, NULL),
	STR("ldap", "bind_dn", ldap_bind_dn, KEY_EMPTY_OK, NULL),
	PATH("ldap", "bind_password_file", ldap_bind_password_file, KEY_FILE),
	STR("ldap", "user_filter", ldap_user_filter, 0, check_has_login),
	STR("ldap", "user_dn_template", ldap_user_dn_template, KEY_EMPTY_OK,
	    check_has_login),
	ENUM("ldap", "group_membership", ldap_group_membership,
	     membership_names),
	BOOL("ldap", "nested_groups", ldap_nested_groups),
	FUNC("ldap", "address_attributes", set_address_attributes, 0),

	FUNC("relay", "smarthost", set_smarthost, KEY_REPEATABLE),
	ENUM("relay", "tls", relay_tls, relay_tls_names),
	BOOL("relay", "tls_verify", relay_tls_verify),
	PATH("relay", "ca_file", relay_ca_file, KEY_FILE),
	STR("relay", "auth_user", relay_auth_user, KEY_EMPTY_OK, NULL),
	PATH("relay", "auth_password_file", relay_auth_password_file,
	     KEY_FILE),
	DUR("relay", "connect_timeout", relay_connect_timeout_usec, SECOND,
	    10 * MINUTE),
	{ "relay", "identity_header", set_string_keep_empty,
	  OFF(identity_header), KEY_EMPTY_OK, 0, 0, NULL, check_header_name },
	BOOL("relay", "xclient", xclient),
	UINT("relay", "connection_cache", relay_cache_max, 0, 1000),
	DUR("relay", "connection_cache_idle", relay_cache_idle_usec, SECOND,
	    HOUR),
	STR("relay", "profile", relay_profile, 0, check_profile),
	ENUM("relay", "auth_mechanism", relay_auth_mech, relay_auth_mech_names),
	ENUM("relay", "oauth2_grant", oauth2_grant, oauth2_grant_names),
	STR("relay", "oauth2_token_url", oauth2_token_url, 0, check_https_url),
	STR("relay", "oauth2_client_id", oauth2_client_id, 0, NULL),
	STR("relay", "oauth2_scope", oauth2_scope, 0, NULL),
	PATH("relay", "oauth2_ca_file", oauth2_ca_file, KEY_FILE),
	PATH("relay", "oauth2_client_secret_file", oauth2_client_secret_file,
	     KEY_FILE),
	PATH("relay", "oauth2_client_certificate", oauth2_client_certificate,
	     KEY_FILE),
	PATH("relay", "oauth2_client_key", oauth2_client_key, KEY_FILE),
	PATH("relay", "oauth2_service_account_file",
	     oauth2_service_account_file, KEY_FILE),
	DUR("relay", "oauth2_timeout", oauth2_timeout_usec, SECOND, 5 * MINUTE),
	PATH("relay", "token_program", token_program, 0),

	ENUM("policy", "sender_check", sender_check, sender_check_names),
	ENUM("policy", "bare_newline", bare_newline, bare_newline_names),
	BOOL("policy", "allow_null_sender", allow_null_sender),
	FUNC("policy", "send_as", set_send_as, KEY_REPEATABLE),
	FUNC("policy", "group_rate", set_group_rate, KEY_REPEATABLE),
	FUNC("policy", "group_recipient_rate", set_group_rate, KEY_REPEATABLE),
	{ "policy", "user_rate", set_rate, OFF(user_rate), KEY_EMPTY_OK, 0, 0,
	  NULL, NULL },
	{ "policy", "user_recipient_rate", set_rate, OFF(user_recipient_rate),
	  KEY_EMPTY_OK, 0, 0, NULL, NULL },
	STR("policy", "shared_state", shared_state, KEY_EMPTY_OK,
	    check_redis_uri),
	PATH("policy", "shared_state_password_file",
	     shared_state_password_file, KEY_FILE),
	ENUM("policy", "shared_state_failure", shared_state_failure,
	     shared_failure_names),
	DUR("policy", "shared_state_timeout", shared_state_timeout_usec,
	    10 * 1000, 10 * SECOND),
	STR("policy", "shared_state_prefix", shared_state_prefix, 0,
	    check_key_prefix),
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key_def *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* Line the key was first given on, 0 if it was not. */
static unsigned key_line(const struct parser *p, const char *section,
			 const char *name)
{
	const struct key_def *k = find_key(section, name);

	return k != NULL ? p->key_line[k - keys] : 0;
}

unsigned config_key_line(const struct config *c, const char *section,
			 const char *name)
{
	const struct key_def *k = find_key(section, name);

	return k != NULL && c->key_line != NULL ? c->key_line[k - keys] : 0;
}

const char *config_key_at(size_t i, const char **section_r)
{
	if (i >= N_KEYS)
		return NULL;
	*section_r = keys[i].section;
	return keys[i].name;
}

/* --- lines --- */

static char *trim(char *s)
{
	char *end;

	s += strspn(s, space);
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	return s;
}

/* '#' or ';' at the start of a line or after whitespace starts a
 * comment; elsewhere ("a;b", "x#1") it is part of the value. */
static void strip_comment(char *s)
{
	for (char *c = s; *c != '\0'; c++) {
		if ((*c == '#' || *c == ';') &&
		    (c == s || c[-1] == ' ' || c[-1] == '\t')) {
			*c = '\0';
			return;
		}
	}
}

static void parse_section(struct parser *p, char *s)
{
	char *end = strchr(s, ']'), *name;

	p->section = NULL;
	p->unknown_section = true;	/* until proven otherwise */
	if (end == NULL) {
		perr(p, p->line, "missing ']' in section header");
		return;
	}
	*end = '\0';
	if (end[1 + strspn(end + 1, space)] != '\0') {
		perr(p, p->line, "text after section header");
		return;
	}
	name = trim(s + 1);
	if (*name == '\0') {
		perr(p, p->line, "empty section name");
		return;
	}
	for (size_t i = 0; i < sizeof(sections) / sizeof(*sections); i++) {
		if (strcmp(name, sections[i]) == 0) {
			p->section = sections[i];
			p->unknown_section = false;
			return;
		}
	}
	/* Its keys are not reported one by one: the header error says it. */
	perr(p, p->line, "unknown section [%s]", Q(name));
}

static void parse_line(struct parser *p, char *s)
{
	const struct key_def *k;
	char *eq, *name, *value;
	size_t i;

	strip_comment(s);
	s = trim(s);
	if (*s == '\0')
		return;
	if (*s == '[') {
		parse_section(p, s);
		return;
	}
	eq = strchr(s, '=');
	if (eq == NULL) {
		perr(p, p->line, "expected \"key = value\", got \"%s\"", Q(s));
		return;
	}
	*eq = '\0';
	name = trim(s);
	value = trim(eq + 1);
	if (*name == '\0') {
		perr(p, p->line, "missing key before '='");
		return;
	}
	if (p->section == NULL) {
		if (!p->unknown_section)
			perr(p, p->line, "key \"%s\" outside any section",
			     Q(name));
		return;
	}
	k = find_key(p->section, name);
	if (k == NULL) {
		perr(p, p->line, "unknown key \"%s\" in section [%s]", Q(name),
		     p->section);
		return;
	}
	i = (size_t)(k - keys);
	if (p->key_line[i] != 0 && !(k->flags & KEY_REPEATABLE)) {
		perr(p, p->line, "[%s] %s given twice (first at line %u)",
		     k->section, k->name, p->key_line[i]);
		return;
	}
	if (p->key_line[i] == 0)
		p->key_line[i] = p->line;
	if (*value == '\0' && !(k->flags & KEY_EMPTY_OK)) {
		perr(p, p->line, "[%s] %s: empty value", k->section, k->name);
		return;
	}
	k->set(p, k, value);
}

/* Reads one line into buf (CONFIG_LINE_MAX + 2 octets), without its line
 * end. Returns its length, CONFIG_LINE_MAX + 1 if it was longer (the
 * rest is read and dropped), or -1 at end of file. */
static long read_line(FILE *f, char *buf)
{
	size_t len = 0;
	int c;

	while ((c = getc(f)) != EOF && c != '\n') {
		/* One more than the limit, for the '\r' of a CRLF. */
		if (len < CONFIG_LINE_MAX + 1)
			buf[len] = (char)c;
		if (len < CONFIG_LINE_MAX + 2)
			len++;
	}
	if (c == EOF && len == 0)
		return -1;
	if (len > 0 && len <= CONFIG_LINE_MAX + 1 && buf[len - 1] == '\r')
		len--;
	if (len > CONFIG_LINE_MAX)
		return CONFIG_LINE_MAX + 1;
	buf[len] = '\0';
	return (long)len;
}

static void parse_file(struct parser *p, FILE *f)
{
	char *buf = xmalloc(CONFIG_LINE_MAX + 2);
	long len;

	while ((len = read_line(f, buf)) >= 0) {
		char *s = buf;

		if (++p->line == 0) {	/* 4 billion lines */
			perr(p, 0, "too many lines");
			break;
		}
		if (len > CONFIG_LINE_MAX) {
			perr(p, p->line, "line too long (more than %d octets)",
			     CONFIG_LINE_MAX);
			continue;
		}
		/* Editors on some systems start files with a UTF-8 BOM. */
		if (p->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0) {
			s += 3;
			len -= 3;
		}
		/* NUL would cut the line short, and CR or other controls in
		 * a value would end up in SMTP replies or headers. */
		for (long i = 0; i < len; i++) {
			unsigned char c = (unsigned char)s[i];

			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				perr(p, p->line, "control character 0x%02x in "
				     "line", c);
				len = -1;
				break;
			}
		}
		if (len >= 0)
			parse_line(p, s);
	}
	if (ferror(f))
		perr(p, 0, "read error: %s", strerror(errno));
	free(buf);
}

/* --- after the last line --- */

static void set_defaults(struct config *c)
{
	c->max_message_size = 35ULL << 20;
	c->max_recipients = 100;
	c->max_connections = 10000;
	c->max_connections_per_ip = 50;
	c->max_bad_commands = 20;
	c->command_timeout_usec = 5 * MINUTE;
	c->data_timeout_usec = 10 * MINUTE;
	c->shutdown_timeout_usec = 30 * SECOND;
	c->proxy_protocol = false;
	c->threads = 0;
	c->run_user = xstrdup("authrelay");

	c->tls_min_version = 0x0303;
	c->handshake_timeout_usec = 30 * SECOND;
	c->tls_ticket_lifetime_usec = HOUR;

	c->backend = AUTH_BACKEND_PAM;
	c->mechanisms = AUTH_MECH_PLAIN | AUTH_MECH_LOGIN;
	c->cache_ttl_usec = 60 * SECOND;
	c->failure_delay_usec = 2 * SECOND;
	c->max_failures_per_ip = 20;
	c->failure_window_usec = 15 * MINUTE;
	c->block_time_usec = 15 * MINUTE;
	c->worker_path = xstrdup(AUTH_WORKER_PATH);
	c->workers = 4;
	c->worker_max_requests = 100;
	c->worker_timeout_usec = 30 * SECOND;

	c->pam_service = xstrdup("authrelay");

	c->ldap_timeout_usec = 5 * SECOND;
	c->ldap_user_filter = xstrdup("(&(objectClass=inetOrgPerson)(uid=%u))");
	c->ldap_group_membership = LDAP_MEMBER;
	c->ldap_address_attributes = xcalloc(1, sizeof(char *));
	c->ldap_address_attributes[0] = xstrdup("mail");
	c->n_ldap_address_attributes = 1;

	c->relay_tls = RELAY_TLS_STARTTLS;
	c->relay_tls_verify = true;
	c->relay_connect_timeout_usec = 30 * SECOND;
	c->relay_cache_max = 4;
	c->relay_cache_idle_usec = 30 * SECOND;
	c->identity_header = xstrdup("X-Authenticated-User");
	c->oauth2_timeout_usec = 20 * SECOND;
	c->token_program = xstrdup(TOKEN_PROGRAM_PATH);

	c->sender_check = SENDER_CHECK_BOTH;
	c->bare_newline = BARE_NEWLINE_REJECT;
	c->shared_state_timeout_usec = 200 * 1000;
	c->shared_state_prefix = xstrdup("authrelay:");
}

static void default_hostname(struct parser *p)
{
	char name[256];

	if (p->cfg->hostname != NULL || key_line(p, "server", "hostname") != 0)
		return;
	if (gethostname(name, sizeof(name)) < 0) {
		perr(p, 0, "cannot get the host name (%s): set [server] "
		     "hostname", strerror(errno));
		return;
	}
	name[sizeof(name) - 1] = '\0';
	if (name[0] == '\0' || check_hostname(name) != NULL) {
		perr(p, 0, "host name \"%s\" is unusable: set [server] "
		     "hostname", Q(name));
		return;
	}
	p->cfg->hostname = xstrdup(name);
}

static void check_tls(struct parser *p)
{
	struct config_tls_pair *t;
	bool cert = p->n_cert > p->n_key;

	if (p->n_cert == 0)
		perr(p, 0, "no [tls] cert configured");
	if (p->n_cert == p->n_key)
		return;
	/* Point at the first entry without a partner. */
	t = &p->cfg->tls[cert ? p->n_key : p->n_cert];
	perr(p, cert ? t->cert_line : t->key_line, "[tls] %s without a "
	     "matching %s (%zu cert, %zu key entries; they pair up in order)",
	     cert ? "cert" : "key", cert ? "key" : "cert", p->n_cert, p->n_key);
}

/* [relay] profile: fill in what the config does not give itself. */
static void apply_profile(struct parser *p)
{
	struct config *c = p->cfg;
	const struct relay_profile *prof;
	char arg[RELAY_PROFILE_ARG_MAX + 1], buf[512];
	const char *error = NULL;
	unsigned line = key_line(p, "relay", "profile");
	bool oauth;

	if (c->relay_profile == NULL)
		return;
	prof = relay_profile_find(c->relay_profile, arg, &error);
	if (prof == NULL)
		return;		/* reported at its line */
	if (c->n_smarthost == 0) {
		struct config_hostport *h;

		c->smarthost = xcalloc(1, sizeof(*c->smarthost));
		h = &c->smarthost[c->n_smarthost++];
		/* The format comes from the table: "%s" is the argument. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(buf, sizeof(buf), prof->host, arg);
#pragma GCC diagnostic pop
		h->host = xstrdup(buf);
		h->port = xstrdup(prof->port);
		h->line = line;
		c->relay_filled |= RELAY_FILLED_SMARTHOST;
	}
	if (key_line(p, "relay", "tls") == 0) {
		c->relay_tls = prof->tls;
		c->relay_filled |= RELAY_FILLED_TLS;
	}
	if (key_line(p, "relay", "auth_mechanism") == 0 &&
	    prof->mech != RELAY_AUTH_AUTO) {
		c->relay_auth_mech = prof->mech;
		c->relay_filled |= RELAY_FILLED_MECH;
	}
	if (key_line(p, "relay", "auth_user") == 0 && prof->auth_user != NULL) {
		c->relay_auth_user = xstrdup(prof->auth_user);
		c->relay_filled |= RELAY_FILLED_USER;
	}
	/* The OAuth2 defaults only where OAuth2 is what ends up in use. */
	oauth = c->relay_auth_mech == RELAY_AUTH_XOAUTH2 ||
		c->relay_auth_mech == RELAY_AUTH_OAUTHBEARER;
	if (oauth && prof->grant != OAUTH2_GRANT_NONE &&
	    key_line(p, "relay", "oauth2_grant") == 0) {
		c->oauth2_grant = prof->grant;
		c->relay_filled |= RELAY_FILLED_GRANT;
	}
	if (oauth && prof->token_url != NULL && arg[0] != '\0' &&
	    key_line(p, "relay", "oauth2_token_url") == 0) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(buf, sizeof(buf), prof->token_url, arg);
#pragma GCC diagnostic pop
		c->oauth2_token_url = xstrdup(buf);
		c->relay_filled |= RELAY_FILLED_TOKEN_URL;
	}
	if (oauth && prof->scope != NULL &&
	    key_line(p, "relay", "oauth2_scope") == 0) {
		c->oauth2_scope = xstrdup(prof->scope);
		c->relay_filled |= RELAY_FILLED_SCOPE;
	}
	if (prof->needs_ca && c->relay_ca_file == NULL && c->relay_tls_verify)
		perr(p, line, "[relay] profile = %s: set [relay] ca_file to "
		     "its exported certificate (or tls_verify = no)",
		     prof->name);
}

/* The line of a [relay] key, or of the profile that filled it in. */
static unsigned relay_line(const struct parser *p, const char *name,
			   unsigned filled)
{
	unsigned line = key_line(p, "relay", name);

	if (line == 0 && (p->cfg->relay_filled & filled))
		line = key_line(p, "relay", "profile");
	return line;
}

static const char *enum_to_name(const struct enum_name *names, int value)
{
	for (; names->name != NULL; names++)
		if (names->value == value)
			return names->name;
	return "?";
}

/* The credential at the smarthost: a password, or an OAuth2 token
 * fetched with one of two grants (RFC 6749 §4.4 client credentials,
 * RFC 7523 §2.1 JWT bearer). */
static void check_relay_auth(struct parser *p)
{
	struct config *c = p->cfg;
	bool oauth = c->relay_auth_mech == RELAY_AUTH_XOAUTH2 ||
		     c->relay_auth_mech == RELAY_AUTH_OAUTHBEARER;
	const char *mech = enum_to_name(relay_auth_mech_names,
					c->relay_auth_mech);
	unsigned mline = relay_line(p, "auth_mechanism", RELAY_FILLED_MECH);
	unsigned uline = relay_line(p, "auth_user", RELAY_FILLED_USER);
	unsigned gline = relay_line(p, "oauth2_grant", RELAY_FILLED_GRANT);
	unsigned pwline = key_line(p, "relay", "auth_password_file");

	if (c->relay_auth_user != NULL &&
	    strcmp(c->relay_auth_user, "@sender") == 0) {
		c->relay_auth_sender = true;
		free(c->relay_auth_user);
		c->relay_auth_user = NULL;
	}
	if (!oauth) {
		for (size_t i = 0; i < N_KEYS; i++)
			if (p->key_line[i] != 0 &&
			    strcmp(keys[i].section, "relay") == 0 &&
			    strncmp(keys[i].name, "oauth2_", 7) == 0 &&
			    /* Harmless alone, and shown at its default in
			     * the example configuration. */
			    strcmp(keys[i].name, "oauth2_timeout") != 0)
				perr(p, p->key_line[i], "[relay] %s needs "
				     "auth_mechanism = xoauth2 or oauthbearer",
				     keys[i].name);
		if (c->relay_auth_sender)
			perr(p, uline, "[relay] auth_user = @sender needs "
			     "auth_mechanism = xoauth2 or oauthbearer (a "
			     "password belongs to one account)");
		else if (c->relay_auth_user != NULL &&
			 c->relay_auth_password_file == NULL)
			perr(p, uline, "[relay] auth_user needs "
			     "auth_password_file");
		if (c->relay_auth_user == NULL && !c->relay_auth_sender &&
		    c->relay_auth_password_file != NULL)
			perr(p, pwline, "[relay] auth_password_file needs "
			     "auth_user");
		if (c->relay_auth_mech != RELAY_AUTH_AUTO &&
		    c->relay_auth_user == NULL && !c->relay_auth_sender &&
		    c->relay_auth_password_file == NULL)
			perr(p, mline, "[relay] auth_mechanism = %s needs "
			     "auth_user and auth_password_file", mech);
		return;
	}
	if (c->relay_auth_user == NULL && !c->relay_auth_sender)
		perr(p, mline, "[relay] auth_mechanism = %s needs auth_user "
		     "(the mailbox, or @sender)", mech);
	if (c->relay_auth_password_file != NULL)
		perr(p, pwline, "[relay] auth_password_file is not used with "
		     "auth_mechanism = %s", mech);
	switch (c->oauth2_grant) {
	case OAUTH2_GRANT_NONE:
		perr(p, mline, "[relay] auth_mechanism = %s needs oauth2_grant",
		     mech);
		break;
	case OAUTH2_GRANT_CLIENT_CREDENTIALS: {
		bool secret = c->oauth2_client_secret_file != NULL;
		bool cert = c->oauth2_client_certificate != NULL ||
			    c->oauth2_client_key != NULL;

		if (c->oauth2_token_url == NULL)
			perr(p, gline, "[relay] oauth2_grant = "
			     "client_credentials needs oauth2_token_url (or "
			     "profile = microsoft365:TENANT)");
		if (c->oauth2_client_id == NULL)
			perr(p, gline, "[relay] oauth2_grant = "
			     "client_credentials needs oauth2_client_id");
		if (!secret && !cert)
			perr(p, gline, "[relay] oauth2_grant = "
			     "client_credentials needs oauth2_client_secret_file"
			     ", or oauth2_client_certificate and "
			     "oauth2_client_key");
		if (secret && cert)
			perr(p, key_line(p, "relay", "oauth2_client_secret_file"),
			     "[relay] oauth2_client_secret_file and a client "
			     "certificate: give one of them");
		if (c->oauth2_client_certificate == NULL &&
		    c->oauth2_client_key != NULL)
			perr(p, key_line(p, "relay", "oauth2_client_key"),
			     "[relay] oauth2_client_key needs "
			     "oauth2_client_certificate");
		if (c->oauth2_client_certificate != NULL &&
		    c->oauth2_client_key == NULL)
			perr(p, key_line(p, "relay", "oauth2_client_certificate"),
			     "[relay] oauth2_client_certificate needs "
			     "oauth2_client_key");
		if (c->oauth2_service_account_file != NULL)
			perr(p, key_line(p, "relay",
					 "oauth2_service_account_file"),
			     "[relay] oauth2_service_account_file is for "
			     "oauth2_grant = jwt_bearer");
		if (c->oauth2_scope == NULL) {
			c->oauth2_scope =
				xstrdup("https://outlook.office365.com/.default");
			c->relay_filled |= RELAY_DEFAULT_SCOPE;
		}
		break;
	}
	case OAUTH2_GRANT_JWT_BEARER: {
		static const char *const not_here[] = {
			"oauth2_client_secret_file", "oauth2_client_certificate",
			"oauth2_client_key",
		};

		if (c->oauth2_service_account_file == NULL)
			perr(p, gline, "[relay] oauth2_grant = jwt_bearer needs "
			     "oauth2_service_account_file");
		for (size_t i = 0; i < 3; i++)
			if (key_line(p, "relay", not_here[i]) != 0)
				perr(p, key_line(p, "relay", not_here[i]),
				     "[relay] %s is for oauth2_grant = "
				     "client_credentials", not_here[i]);
		if (c->oauth2_scope == NULL) {
			c->oauth2_scope = xstrdup("https://mail.google.com/");
			c->relay_filled |= RELAY_DEFAULT_SCOPE;
		}
		break;
	}
	}
}

static void describe(FILE *out, const char *key, const char *value,
		     const struct config *c, unsigned filled)
{
	if (filled == RELAY_FILLED_SCOPE &&
	    (c->relay_filled & RELAY_DEFAULT_SCOPE)) {
		fprintf(out, "[relay] %s = %s  (default)\n", key, value);
		return;
	}
	fprintf(out, "[relay] %s = %s  (%s%s)\n", key, value,
		(c->relay_filled & filled) ? "profile " : "",
		(c->relay_filled & filled) ? c->relay_profile : "set");
}

void config_describe_relay(const struct config *c, FILE *out)
{
	char hp[600];

	if (c->relay_profile == NULL)
		return;
	fprintf(out, "[relay] profile = %s\n", c->relay_profile);
	for (size_t i = 0; i < c->n_smarthost; i++) {
		snprintf(hp, sizeof(hp), "%s:%s", c->smarthost[i].host,
			 c->smarthost[i].port);
		describe(out, "smarthost", hp, c, RELAY_FILLED_SMARTHOST);
	}
	describe(out, "tls", enum_to_name(relay_tls_names, c->relay_tls), c,
		 RELAY_FILLED_TLS);
	if (c->relay_auth_mech == RELAY_AUTH_AUTO)
		fprintf(out, "[relay] auth_mechanism = plain or login, as "
			"offered  (default)\n");
	else
		describe(out, "auth_mechanism",
			 enum_to_name(relay_auth_mech_names, c->relay_auth_mech),
			 c, RELAY_FILLED_MECH);
	if (c->relay_auth_sender)
		describe(out, "auth_user", "@sender", c, 0);
	else if (c->relay_auth_user != NULL)
		describe(out, "auth_user", c->relay_auth_user, c,
			 RELAY_FILLED_USER);
	if (c->relay_auth_password_file != NULL)
		describe(out, "auth_password_file", c->relay_auth_password_file,
			 c, 0);
	if (c->oauth2_grant != OAUTH2_GRANT_NONE)
		describe(out, "oauth2_grant",
			 enum_to_name(oauth2_grant_names, c->oauth2_grant), c,
			 RELAY_FILLED_GRANT);
	if (c->oauth2_token_url != NULL)
		describe(out, "oauth2_token_url", c->oauth2_token_url, c,
			 RELAY_FILLED_TOKEN_URL);
	if (c->oauth2_scope != NULL)
		describe(out, "oauth2_scope", c->oauth2_scope, c,
			 RELAY_FILLED_SCOPE);
	if (c->oauth2_client_id != NULL)
		describe(out, "oauth2_client_id", c->oauth2_client_id, c, 0);
}

static void check_pairs(struct parser *p)
{
	struct config *c = p->cfg;

	if (c->backend == AUTH_BACKEND_LDAP) {
		if (c->n_ldap_uri == 0)
			perr(p, 0, "[auth] backend = ldap needs [ldap] uri");
		if (c->ldap_base == NULL)
			perr(p, 0, "[auth] backend = ldap needs [ldap] base");
	}
	if (c->ldap_bind_dn != NULL && c->ldap_bind_password_file == NULL)
		perr(p, key_line(p, "ldap", "bind_dn"),
		     "[ldap] bind_dn needs bind_password_file");
	if (c->ldap_bind_dn == NULL && c->ldap_bind_password_file != NULL)
		perr(p, key_line(p, "ldap", "bind_password_file"),
		     "[ldap] bind_password_file needs bind_dn");
	check_relay_auth(p);
	if (c->n_smarthost == 0)
		perr(p, 0, "no [relay] smarthost configured");
}

static void check_readable(struct parser *p, unsigned line, const char *what,
			   const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		perr(p, line, "%s: cannot open %s: %s", what, path,
		     strerror(errno));
		return;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
		perr(p, line, "%s: %s is a directory", what, path);
	close(fd);
}

static void check_executable(struct parser *p, unsigned line,
			     const char *what, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		perr(p, line, "%s: %s: %s", what, path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		perr(p, line, "%s: %s is not a regular file", what, path);
	else if (access(path, X_OK) < 0)
		perr(p, line, "%s: cannot execute %s: %s", what, path,
		     strerror(errno));
}

static void check_files(struct parser *p)
{
	struct config *c = p->cfg;

	for (size_t i = 0; i < c->n_tls; i++) {
		if (c->tls[i].cert != NULL)
			check_readable(p, c->tls[i].cert_line, "[tls] cert",
				       c->tls[i].cert);
		if (c->tls[i].key != NULL)
			check_readable(p, c->tls[i].key_line, "[tls] key",
				       c->tls[i].key);
	}
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		const char *path;
		char what[64];

		if (!(k->flags & (KEY_FILE | KEY_EXEC)))
			continue;
		path = *(char **)field(p, k);
		if (path == NULL)
			continue;
		snprintf(what, sizeof(what), "[%s] %s", k->section, k->name);
		if (k->flags & KEY_EXEC)
			check_executable(p, p->key_line[i], what, path);
		else
			check_readable(p, p->key_line[i], what, path);
	}
}

/* --- the module --- */

static FILE *open_config(struct parser *p, int from_fd)
{
	struct stat st;
	FILE *f;
	/* O_NONBLOCK: a FIFO in place of the file must not hang -t. */
	int fd = from_fd >= 0 ? fcntl(from_fd, F_DUPFD_CLOEXEC, 3) :
		 open(p->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		perr(p, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (from_fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
		perr(p, 0, "cannot rewind: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		perr(p, 0, "cannot stat: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		perr(p, 0, "not a regular file");
		close(fd);
		return NULL;
	}
	f = fdopen(fd, "r");
	if (f == NULL) {
		perr(p, 0, "cannot open: %s", strerror(errno));
		close(fd);
	}
	return f;
}

static struct config *load(const char *path, int fd, const void *text,
			   size_t text_len, bool check_files_too,
			   struct config_errors *errs)
{
	struct config_errors local = { NULL, 0 };
	unsigned lines[N_KEYS] = { 0 };
	struct parser p = {
		.errs = errs != NULL ? errs : &local,
		.path = path != NULL ? path : "(null)",
		.key_line = lines,
	};
	FILE *f;

	p.cfg = xcalloc(1, sizeof(*p.cfg));
	p.cfg->path = xstrdup(p.path);
	set_defaults(p.cfg);
	if (path == NULL) {
		perr(&p, 0, "cannot open: no path given");
		f = NULL;
	} else if (text != NULL) {
		f = fmemopen((void *)text, text_len, "r");
		if (f == NULL)
			perr(&p, 0, "cannot read: %s", strerror(errno));
	} else {
		f = open_config(&p, fd);
	}
	if (f != NULL) {
		parse_file(&p, f);
		fclose(f);
		default_hostname(&p);
		apply_profile(&p);
		check_tls(&p);
		check_pairs(&p);
		if (check_files_too)
			check_files(&p);
	}
	p.cfg->key_line = xcalloc(N_KEYS, sizeof(*p.cfg->key_line));
	memcpy(p.cfg->key_line, lines, sizeof(lines));
	config_errors_clear(&local);
	if (p.n_errors > 0)
		config_free(&p.cfg);
	return p.cfg;
}

struct config *config_load(const char *path, bool check_files_too,
			   struct config_errors *errs)
{
	return load(path, -1, NULL, 0, check_files_too, errs);
}

struct config *config_load_fd(const char *path, int fd, bool check_files_too,
			      struct config_errors *errs)
{
	return load(path, fd, NULL, 0, check_files_too, errs);
}

struct config *config_load_mem(const char *path, const void *text,
			       size_t len, bool check_files_too,
			       struct config_errors *errs)
{
	/* fmemopen() of an empty buffer fails: an empty config is valid. */
	static const char empty[1] = "";

	return load(path, -1, len > 0 ? text : empty, len, check_files_too,
		    errs);
}

void config_free(struct config **config)
{
	struct config *c = *config;

	if (c == NULL)
		return;
	free(c->path);
	free(c->hostname);
	for (size_t i = 0; i < c->n_listen; i++) {
		free(c->listen[i].host);
		free(c->listen[i].port);
	}
	free(c->listen);
	for (size_t i = 0; i < c->n_tls; i++) {
		free(c->tls[i].cert);
		free(c->tls[i].key);
	}
	free(c->tls);
	free(c->tls_ciphers);
	free_words(c->require_group, c->n_require_group);
	free(c->require_group_line);
	free(c->key_line);
	for (size_t i = 0; i < c->n_send_as; i++) {
		free(c->send_as[i].address);
		free(c->send_as[i].group);
	}
	free(c->send_as);
	for (size_t i = 0; i < c->n_group_rate; i++)
		free(c->group_rate[i].group);
	free(c->group_rate);
	for (size_t i = 0; i < c->n_group_recipient_rate; i++)
		free(c->group_recipient_rate[i].group);
	free(c->group_recipient_rate);
	free(c->worker_path);
	free(c->run_user);
	free(c->metrics_listen.host);
	free(c->metrics_listen.port);
	free(c->token_program);
	free(c->pam_service);
	free(c->address_domain);
	free_words(c->ldap_uri, c->n_ldap_uri);
	free(c->ldap_ca_file);
	free(c->ldap_base);
	free(c->ldap_bind_dn);
	free(c->ldap_bind_password_file);
	free(c->ldap_user_filter);
	free(c->ldap_user_dn_template);
	free_words(c->ldap_address_attributes, c->n_ldap_address_attributes);
	for (size_t i = 0; i < c->n_smarthost; i++) {
		free(c->smarthost[i].host);
		free(c->smarthost[i].port);
	}
	free(c->smarthost);
	free(c->relay_ca_file);
	free(c->relay_auth_user);
	free(c->relay_auth_password_file);
	free(c->relay_profile);
	free(c->oauth2_token_url);
	free(c->oauth2_client_id);
	free(c->oauth2_scope);
	free(c->oauth2_ca_file);
	free(c->oauth2_client_secret_file);
	free(c->oauth2_client_certificate);
	free(c->oauth2_client_key);
	free(c->oauth2_service_account_file);
	free(c->identity_header);
	free(c->shared_state);
	free(c->shared_state_password_file);
	free(c->shared_state_prefix);
	free(c);
	*config = NULL;
}
