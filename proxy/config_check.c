#include "autoconf.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_check.h"
#include "xalloc.h"

/* getgrnam_r buffer: grown for large groups, up to this. */
#define GROUP_BUF_MAX (16u * 1024 * 1024)
/* passwd entries read when looking for users whose primary group a group
 * without supplementary members is (directories may hold many). */
#define PASSWD_SCAN_MAX 100000u
#define MSG_MAX 1024

enum group_state {
	GROUP_MEMBERS,		/* exists, someone is in it */
	GROUP_EMPTY,		/* exists, nobody found in it */
	GROUP_MISSING,		/* no such group */
	GROUP_UNKNOWN,		/* the lookup failed (NSS outage) */
};

struct checker {
	const struct config *cfg;
	struct config_errors *errs;
	struct config_errors *warnings;
	size_t n_errors;
};

static void report(struct checker *c, bool error, unsigned line,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report(struct checker *c, bool error, unsigned line,
		   const char *fmt, ...)
{
	char msg[MSG_MAX], where[32] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line != 0)
		snprintf(where, sizeof(where), ":%u", line);
	if (error) {
		config_errors_add(c->errs, "%s%s: %s", c->cfg->path, where,
				  msg);
		c->n_errors++;
	} else {
		config_errors_add(c->warnings, "%s%s: warning: %s",
				  c->cfg->path, where, msg);
	}
}

/* --- RFC 4514 distinguished names --- */

static const char *skip_spaces(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

static bool is_alpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_hex(char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'f') ||
	       (ch >= 'A' && ch <= 'F');
}

/* RFC 4514 §3: attributeType = descr / numericoid (RFC 4512 §1.4).
 * Returns the end of it, NULL if there is none. */
static const char *dn_attribute_type(const char *s)
{
	unsigned dots = 0;

	if (is_alpha(*s)) {
		while (is_alpha(*s) || is_digit(*s) || *s == '-')
			s++;
		return s;
	}
	if (!is_digit(*s))
		return NULL;
	for (;;) {
		if (!is_digit(*s))
			return NULL;
		while (is_digit(*s))
			s++;
		if (*s != '.')
			break;
		s++;
		dots++;
	}
	return dots > 0 ? s : NULL;
}

/* RFC 4514 §3: attributeValue = string / hexstring, where in a string
 * the characters " + , ; < > \ are escaped (with '\' and the character,
 * or two hex digits) and a leading '#' starts a hexstring. Returns the
 * end of the value, NULL if it is malformed. */
static const char *dn_attribute_value(const char *s)
{
	if (*s == '#') {
		const char *start = ++s;

		while (is_hex(s[0]) && is_hex(s[1]))
			s += 2;
		return s > start ? s : NULL;
	}
	while (*s != '\0' && *s != ',' && *s != '+') {
		if (*s == '\\') {
			if (is_hex(s[1]) && is_hex(s[2]))
				s += 3;
			else if (s[1] != '\0' && strchr("\"+,;<>\\ #=", s[1]))
				s += 2;
			else
				return NULL;
			continue;
		}
		if (strchr("\";<>", *s) != NULL)
			return NULL;
		s++;
	}
	return s;
}

bool config_check_is_dn(const char *s)
{
	s = skip_spaces(s);
	if (*s == '\0')
		return false;
	for (;;) {
		s = dn_attribute_type(s);
		if (s == NULL)
			return false;
		s = skip_spaces(s);
		if (*s++ != '=')
			return false;
		s = dn_attribute_value(skip_spaces(s));
		if (s == NULL)
			return false;
		s = skip_spaces(s);
		if (*s == '\0')
			return true;
		/* ',' ends an RDN, '+' joins a multi-valued one. */
		s = skip_spaces(s + 1);
	}
}

/* --- NSS groups --- */

static bool primary_group_of_someone(gid_t gid)
{
	struct passwd *pw;
	bool found = false;

	setpwent();
	for (unsigned n = 0; n < PASSWD_SCAN_MAX && !found; n++) {
		pw = getpwent();
		if (pw == NULL)
			break;
		found = pw->pw_gid == gid;
	}
	endpwent();
	return found;
}

static enum group_state nss_group(const char *name, int *errno_r)
{
	struct group gr, *res = NULL;
	size_t size = 4096;
	char *buf = NULL;
	bool members;
	gid_t gid;
	int r;

	for (;;) {
		buf = xmalloc(size);
		r = getgrnam_r(name, &gr, buf, size, &res);
		if (r != ERANGE || size >= GROUP_BUF_MAX)
			break;
		free(buf);
		size *= 4;
	}
	/* getgrnam_r(3): these also mean "not found" on some systems. */
	if (r == ENOENT || r == ESRCH || r == EBADF || r == EPERM)
		r = 0;
	if (r != 0) {
		free(buf);
		*errno_r = r;
		return GROUP_UNKNOWN;
	}
	if (res == NULL) {
		free(buf);
		return GROUP_MISSING;
	}
	members = gr.gr_mem != NULL && gr.gr_mem[0] != NULL;
	gid = gr.gr_gid;
	free(buf);
	if (members || primary_group_of_someone(gid))
		return GROUP_MEMBERS;
	return GROUP_EMPTY;
}

/* --- the checks --- */

struct group_ref {
	const char *what;	/* "[auth] require_group" */
	const char *group;
	unsigned line;
	const char *effect;	/* what a group that never matches does */
};

/* Whether the group can ever match; reports what is wrong with it.
 * fatal: a group that cannot match refuses every login. */
static bool check_group(struct checker *c, const struct group_ref *g,
			bool fatal)
{
	const char *hint = "";
	enum group_state st;
	int err = 0;

	if (c->cfg->backend == AUTH_BACKEND_LDAP) {
		if (config_check_is_dn(g->group))
			return true;
		report(c, fatal, g->line, "%s \"%s\": not a DN (with backend "
		       "= ldap groups are DNs, e.g. cn=mail-senders,ou=groups,"
		       "dc=example,dc=com): %s", g->what, g->group, g->effect);
		return false;
	}
	st = nss_group(g->group, &err);
	switch (st) {
	case GROUP_MEMBERS:
		return true;
	case GROUP_EMPTY:
		report(c, false, g->line, "%s \"%s\": the group has no members",
		       g->what, g->group);
		return true;
	case GROUP_UNKNOWN:
		report(c, false, g->line, "%s \"%s\": cannot look the group "
		       "up: %s", g->what, g->group, strerror(err));
		return true;
	case GROUP_MISSING:
		break;
	}
	if (strchr(g->group, '=') != NULL)
		hint = " (with backend = pam groups are NSS group names, "
		       "not DNs)";
	report(c, fatal, g->line, "%s \"%s\": no such group in NSS%s: %s",
	       g->what, g->group, hint, g->effect);
	return false;
}

/* Whether a group can ever match, without reporting anything. */
static bool group_can_match(const struct config *cfg, const char *group)
{
	int err;

	if (cfg->backend == AUTH_BACKEND_LDAP)
		return config_check_is_dn(group);
	return nss_group(group, &err) != GROUP_MISSING;
}

static void check_require_groups(struct checker *c)
{
	const struct config *cfg = c->cfg;
	size_t usable = 0;

	/* A login needs one of the groups: only when none of them can ever
	 * match is every login refused. */
	for (size_t i = 0; i < cfg->n_require_group; i++)
		usable += group_can_match(cfg, cfg->require_group[i]);
	for (size_t i = 0; i < cfg->n_require_group; i++)
		check_group(c, &(struct group_ref){ "[auth] require_group",
			    cfg->require_group[i], cfg->require_group_line[i],
			    usable == 0 ? "no required group exists, so every "
			    "login would be refused" : "it admits nobody" },
			    usable == 0);
}

static void check_policy_groups(struct checker *c)
{
	const struct config *cfg = c->cfg;
	char effect[MSG_MAX];

	for (size_t i = 0; i < cfg->n_send_as; i++) {
		snprintf(effect, sizeof(effect), "nobody may send as %s",
			 cfg->send_as[i].address);
		check_group(c, &(struct group_ref){ "[policy] send_as",
			    cfg->send_as[i].group, cfg->send_as[i].line,
			    effect }, false);
	}
	for (size_t i = 0; i < cfg->n_group_rate; i++)
		check_group(c, &(struct group_ref){ "[policy] group_rate",
			    cfg->group_rate[i].group, cfg->group_rate[i].line,
			    "the limit applies to nobody" }, false);
	for (size_t i = 0; i < cfg->n_group_recipient_rate; i++)
		check_group(c, &(struct group_ref){
			    "[policy] group_recipient_rate",
			    cfg->group_recipient_rate[i].group,
			    cfg->group_recipient_rate[i].line,
			    "the limit applies to nobody" }, false);
}

/* Linux-PAM reads DIR/SERVICE, and DIR/other when there is none. */
static void check_pam_service(struct checker *c)
{
	const struct config *cfg = c->cfg;
	const char *wrapper = getenv("PAM_WRAPPER");
	const char *dir = getenv("PAM_WRAPPER_SERVICE_DIR");
	unsigned line = config_key_line(cfg, "pam", "service");
	char path[4096], other[4096];
	struct stat st;

	if (cfg->backend != AUTH_BACKEND_PAM)
		return;
	if (wrapper == NULL || strcmp(wrapper, "1") != 0 || dir == NULL ||
	    *dir == '\0')
		dir = "/etc/pam.d";
	if (line == 0)
		line = config_key_line(cfg, "auth", "backend");
	snprintf(path, sizeof(path), "%s/%s", dir, cfg->pam_service);
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		return;
	snprintf(other, sizeof(other), "%s/other", dir);
	if (stat(other, &st) == 0 && S_ISREG(st.st_mode))
		report(c, false, line, "[pam] service %s: no %s, so PAM uses "
		       "%s for every login", cfg->pam_service, path, other);
	else
		report(c, true, line, "[pam] service %s: no %s and no %s: "
		       "PAM would refuse every login", cfg->pam_service, path,
		       other);
}

size_t config_check_semantics(const struct config *cfg,
			      struct config_errors *errs,
			      struct config_errors *warnings)
{
	struct checker c = { cfg, errs, warnings, 0 };

	check_pam_service(&c);
	check_require_groups(&c);
	check_policy_groups(&c);
	return c.n_errors;
}
