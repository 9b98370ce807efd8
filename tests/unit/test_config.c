#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

#define SEC USEC_PER_SEC
#define MS 1000ULL

/* Enough for a valid file: appended to each case that is not "bare",
 * after its own lines, so that line numbers in the case stay as written. */
static const char minimal[] =
	"\n[tls]\n"
	"cert = /etc/authrelay/tls/fullchain.pem\n"
	"key = /etc/authrelay/tls/privkey.pem\n"
	"[relay]\n"
	"smarthost = smtp.internal.example.com\n";

static char *write_temp(const char *text, size_t len)
{
	char *path = strdup("/tmp/test_config.XXXXXX");
	int fd;

	if (path == NULL)
		abort();
	fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		exit(2);
	}
	if (write(fd, text, len) != (ssize_t)len) {
		perror("write");
		exit(2);
	}
	close(fd);
	return path;
}

static void print_errors(const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "    error: %s\n", errs->msg[i]);
}

/* Loads text (len bytes) from a temp file; errors go to errs, with the
 * temp path replaced by "FILE" so that expectations can name it. */
static struct config *load_text(const char *text, size_t len,
				struct config_errors *errs)
{
	char *path = write_temp(text, len);
	struct config *c = config_load(path, false, errs);
	size_t plen = strlen(path);

	for (size_t i = 0; i < errs->n; i++) {
		char *m = errs->msg[i];

		if (strncmp(m, path, plen) == 0) {
			memcpy(m, "FILE", 4);
			memmove(m + 4, m + plen, strlen(m + plen) + 1);
		}
	}
	unlink(path);
	free(path);
	return c;
}

/* --- value parsers --- */

struct num_case {
	const char *in;
	int ret;
	uint64_t out;
};

static const struct num_case durations[] = {
	{ "500ms", 0, 500 * MS },
	{ "1ms", 0, 1 * MS },
	{ "30s", 0, 30 * SEC },
	{ "5m", 0, 300 * SEC },
	{ "1h", 0, 3600 * SEC },
	{ "1d", 0, 86400 * SEC },
	{ "45", 0, 45 * SEC },
	{ "0", 0, 0 },
	{ "0ms", 0, 0 },
	{ "30S", 0, 30 * SEC },
	{ "2H", 0, 7200 * SEC },
	{ "007s", 0, 7 * SEC },
	{ "18446744073709s", 0, 18446744073709ULL * SEC },
	{ "213503982d", 0, 213503982ULL * 86400 * SEC },
	{ "18446744073709551615ms", -1, 0 },	/* overflows in usec */
	{ "18446744073710s", -1, 0 },
	{ "18446744073710", -1, 0 },
	{ "213503983d", -1, 0 },
	{ "99999999999999999999", -1, 0 },	/* overflows as a number */
	{ "", -1, 0 },
	{ "5x", -1, 0 },
	{ "-1", -1, 0 },
	{ "+1", -1, 0 },
	{ " 5s", -1, 0 },
	{ "5 s", -1, 0 },
	{ "5s ", -1, 0 },
	{ "1.5h", -1, 0 },
	{ "s", -1, 0 },
	{ "ms", -1, 0 },
	{ "1hm", -1, 0 },
	{ "1h30m", -1, 0 },
	{ "0x10", -1, 0 },
	{ "5us", -1, 0 },
};

static const struct num_case sizes[] = {
	{ "0", 0, 0 },
	{ "1", 0, 1 },
	{ "1024", 0, 1024 },
	{ "512K", 0, 512ULL << 10 },
	{ "512k", 0, 512ULL << 10 },
	{ "35M", 0, 35ULL << 20 },
	{ "35m", 0, 35ULL << 20 },
	{ "1G", 0, 1ULL << 30 },
	{ "4g", 0, 4ULL << 30 },
	{ "18446744073709551615", 0, UINT64_MAX },
	{ "17179869183G", 0, 17179869183ULL << 30 },
	{ "18446744073709551616", -1, 0 },
	{ "17179869184G", -1, 0 },
	{ "18014398509481984K", -1, 0 },
	{ "", -1, 0 },
	{ "5x", -1, 0 },
	{ "-1", -1, 0 },
	{ "K", -1, 0 },
	{ "1KB", -1, 0 },
	{ "1T", -1, 0 },
	{ " 1K", -1, 0 },
	{ "1 K", -1, 0 },
	{ "1.5M", -1, 0 },
};

static void test_durations(void)
{
	for (size_t i = 0; i < sizeof(durations) / sizeof(*durations); i++) {
		const struct num_case *t = &durations[i];
		uint64_t got = 12345;
		char what[80];
		int r = config_parse_duration(t->in, &got);

		snprintf(what, sizeof(what), "duration \"%s\" result", t->in);
		CHECK_INT(r, t->ret, what);
		snprintf(what, sizeof(what), "duration \"%s\" usec", t->in);
		if (t->ret == 0)
			CHECK(got == t->out, "%s: got %llu, want %llu", what,
			      (unsigned long long)got,
			      (unsigned long long)t->out);
	}
}

static void test_sizes(void)
{
	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
		const struct num_case *t = &sizes[i];
		uint64_t got = 12345;
		char what[80];
		int r = config_parse_size(t->in, &got);

		snprintf(what, sizeof(what), "size \"%s\" result", t->in);
		CHECK_INT(r, t->ret, what);
		snprintf(what, sizeof(what), "size \"%s\" bytes", t->in);
		if (t->ret == 0)
			CHECK(got == t->out, "%s: got %llu, want %llu", what,
			      (unsigned long long)got,
			      (unsigned long long)t->out);
	}
}

static void test_bools(void)
{
	static const struct {
		const char *in;
		int ret;
		bool out;
	} cases[] = {
		{ "yes", 0, true }, { "no", 0, false },
		{ "true", 0, true }, { "false", 0, false },
		{ "on", 0, true }, { "off", 0, false },
		{ "1", 0, true }, { "0", 0, false },
		{ "YES", 0, true }, { "False", 0, false },
		{ "", -1, false }, { "2", -1, false }, { "y", -1, false },
		{ "yess", -1, false }, { "enabled", -1, false },
		{ " yes", -1, false }, { "01", -1, false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		bool got = !cases[i].out;
		char what[64];
		int r = config_parse_bool(cases[i].in, &got);

		snprintf(what, sizeof(what), "bool \"%s\" result", cases[i].in);
		CHECK_INT(r, cases[i].ret, what);
		snprintf(what, sizeof(what), "bool \"%s\" value", cases[i].in);
		if (r == 0)
			CHECK_INT(got, cases[i].out, what);
	}
}

/* --- whole files --- */

struct want_error {
	unsigned line;		/* 0: a whole-file error, "FILE: ..." */
	const char *substr;
};

#define MAX_WANT 8

struct file_case {
	const char *name;
	const char *text;
	bool bare;		/* do not append minimal[] */
	struct want_error errors[MAX_WANT];	/* in order; none: valid */
	void (*check)(const struct config *c);
};

static void check_comments(const struct config *c)
{
	CHECK_INT(c->max_recipients, 7, "max_recipients");
	CHECK_STR(c->hostname, "h.example", "hostname");
	CHECK_STR(c->ldap_base, "dc=a;b", "ldap_base");
	CHECK_STR(c->ldap_user_filter, "(uid=%u)#x", "ldap_user_filter");
	CHECK_STR(c->pam_service, "svc", "pam_service");
}

static void check_empty_values(const struct config *c)
{
	CHECK_STR(c->identity_header, "", "identity_header");
	CHECK_STR(c->ldap_user_dn_template, NULL, "ldap_user_dn_template");
	CHECK_INT(c->n_require_group, 0, "n_require_group");
	CHECK_STR(c->relay_ca_file, NULL, "relay_ca_file");
	CHECK_STR(c->ldap_ca_file, NULL, "ldap_ca_file");
	CHECK_STR(c->tls_ciphers, NULL, "tls_ciphers");
	CHECK_STR(c->address_domain, NULL, "address_domain");
	CHECK_STR(c->relay_auth_user, NULL, "relay_auth_user");
}

static void check_listen(const struct config *c)
{
	static const struct {
		const char *host, *port;
		enum listen_mode mode;
		unsigned line;
	} want[] = {
		{ "0.0.0.0", "587", LISTEN_STARTTLS, 2 },
		{ "::", "587", LISTEN_STARTTLS, 3 },
		{ "0.0.0.0", "465", LISTEN_TLS, 4 },
		{ "::", "465", LISTEN_TLS, 5 },
		{ "127.0.0.1", "2525", LISTEN_STARTTLS, 6 },
		{ "localhost", "10587", LISTEN_STARTTLS, 7 },
		{ "fe80::1%eth0", "587", LISTEN_STARTTLS, 8 },
		{ "::ffff:192.0.2.1", "587", LISTEN_STARTTLS, 9 },
		{ "192.0.2.1", "65535", LISTEN_TLS, 10 },
		{ "192.0.2.1", "1", LISTEN_STARTTLS, 11 },
	};
	size_t n = sizeof(want) / sizeof(*want);

	CHECK_INT(c->n_listen, n, "n_listen");
	for (size_t i = 0; i < n && i < c->n_listen; i++) {
		CHECK_STR(c->listen[i].host, want[i].host, "listen host");
		CHECK_STR(c->listen[i].port, want[i].port, "listen port");
		CHECK_INT(c->listen[i].mode, want[i].mode, "listen mode");
		CHECK_INT(c->listen[i].line, want[i].line, "listen line");
	}
}

static void check_smarthost(const struct config *c)
{
	static const struct {
		const char *host, *port;
	} want[] = {
		{ "smtp.example.com", "25" },
		{ "smtp2.example.com", "587" },
		{ "2001:db8::1", "25" },
		{ "2001:db8::2", "2525" },
		{ "10.0.0.1", "25" },
		/* from minimal[] */
		{ "smtp.internal.example.com", "25" },
	};
	size_t n = sizeof(want) / sizeof(*want);

	CHECK_INT(c->n_smarthost, n, "n_smarthost");
	for (size_t i = 0; i < n && i < c->n_smarthost; i++) {
		CHECK_STR(c->smarthost[i].host, want[i].host, "smarthost host");
		CHECK_STR(c->smarthost[i].port, want[i].port, "smarthost port");
	}
	if (c->n_smarthost > 0)
		CHECK_INT(c->smarthost[0].line, 2, "smarthost line");
}

static void check_repeated(const struct config *c)
{
	CHECK_INT(c->n_require_group, 2, "n_require_group");
	if (c->n_require_group == 2) {
		CHECK_STR(c->require_group[0], "mail-senders", "group 0");
		CHECK_STR(c->require_group[1],
			  "cn=Mail Senders,ou=groups,dc=example,dc=com",
			  "group 1");
	}
	CHECK_INT(c->n_tls, 2, "n_tls");
	if (c->n_tls == 2) {
		CHECK_STR(c->tls[0].cert, "/etc/authrelay/rsa.pem", "cert 0");
		CHECK_STR(c->tls[0].key, "/etc/authrelay/rsa.key", "key 0");
		CHECK_STR(c->tls[1].cert, "/etc/authrelay/ec.pem", "cert 1");
		CHECK_STR(c->tls[1].key, "/etc/authrelay/ec.key", "key 1");
		CHECK_INT(c->tls[0].cert_line, 8, "cert 0 line");
		CHECK_INT(c->tls[0].key_line, 10, "key 0 line");
		CHECK_INT(c->tls[1].cert_line, 9, "cert 1 line");
		CHECK_INT(c->tls[1].key_line, 11, "key 1 line");
	}
	CHECK_INT(c->threads, 2, "threads");
	CHECK_INT(c->max_bad_commands, 3, "max_bad_commands");
	CHECK(c->xclient, "xclient: got no, want yes");
}

static void check_enums(const struct config *c)
{
	CHECK_INT(c->backend, AUTH_BACKEND_LDAP, "backend");
	CHECK_INT(c->mechanisms, AUTH_MECH_PLAIN, "mechanisms");
	CHECK_INT(c->tls_min_version, 0x0304, "tls_min_version");
	CHECK_INT(c->ldap_group_membership, LDAP_MEMBER_OF, "membership");
	CHECK_INT(c->relay_tls, RELAY_TLS_TLS, "relay_tls");
	CHECK_INT(c->sender_check, SENDER_CHECK_ENVELOPE, "sender_check");
	CHECK_INT(c->bare_newline, BARE_NEWLINE_NORMALIZE, "bare_newline");
	CHECK_INT(c->n_ldap_uri, 2, "n_ldap_uri");
	if (c->n_ldap_uri == 2) {
		CHECK_STR(c->ldap_uri[0], "ldaps://dc1.example.com", "uri 0");
		CHECK_STR(c->ldap_uri[1], "ldap://dc2.example.com", "uri 1");
	}
	CHECK_INT(c->n_ldap_address_attributes, 2, "n_address_attributes");
	if (c->n_ldap_address_attributes == 2)
		CHECK_STR(c->ldap_address_attributes[1],
			  "mailAlternateAddress", "address attribute 1");
}

static void check_bounds(const struct config *c)
{
	CHECK(c->max_message_size == 4ULL << 30, "max_message_size: got %llu, "
	      "want 4G", (unsigned long long)c->max_message_size);
	CHECK_INT(c->max_recipients, 100000, "max_recipients");
	CHECK_INT(c->threads, 0, "threads");
	CHECK(c->command_timeout_usec == 3600 * SEC, "command_timeout: got "
	      "%llu", (unsigned long long)c->command_timeout_usec);
	CHECK(c->data_timeout_usec == SEC, "data_timeout: got %llu",
	      (unsigned long long)c->data_timeout_usec);
	CHECK_INT(c->shutdown_timeout_usec, 0, "shutdown_timeout");
	CHECK(c->ldap_timeout_usec == 500 * MS, "ldap timeout: got %llu",
	      (unsigned long long)c->ldap_timeout_usec);
}

static const struct file_case file_cases[] = {
	{ "minimal", "", false, { { 0, NULL } }, NULL },
	{ "comments and whitespace",
	  "# a comment\n"
	  "; another\n"
	  "   # indented comment\n"
	  "\n"
	  "  [server]   # section comment\n"
	  "\tmax_recipients\t=\t7\t# tabs\n"
	  "hostname=h.example;not-a-comment-without-space ; but this is\n"
	  "[ldap]\n"
	  "base = dc=a;b\n"
	  "user_filter = (uid=%u)#x\n"
	  "[ pam ]\n"
	  "service = svc ;\n",
	  false, { { 7, "not a host name" } }, NULL },
	{ "comments ok",
	  "# a comment\n"
	  "; another\n"
	  "   # indented comment\n"
	  "\n"
	  "  [server]   # section comment\n"
	  "\tmax_recipients\t=\t7\t# tabs\n"
	  "hostname=h.example ; comment\n"
	  "[ldap]\n"
	  "base = dc=a;b\n"
	  "user_filter = (uid=%u)#x\n"
	  "[ pam ]\n"
	  "service = svc ;\n",
	  false, { { 0, NULL } }, check_comments },
	{ "CRLF and BOM",
	  "\xef\xbb\xbf[server]\r\nmax_recipients = 7\r\n"
	  "hostname = h.example\r\n[ldap]\r\nbase = dc=a;b\r\n"
	  "user_filter = (uid=%u)#x\r\n[pam]\r\nservice = svc\r\n",
	  false, { { 0, NULL } }, check_comments },
	{ "empty values where meaningful",
	  "[relay]\n"
	  "identity_header =\n"
	  "ca_file =          # unset\n"
	  "auth_user =\n"
	  "auth_password_file =\n"
	  "[ldap]\n"
	  "user_dn_template =                 # e.g. uid=%u,dc=x\n"
	  "ca_file =\n"
	  "bind_dn =\n"
	  "[auth]\n"
	  "require_group =\n"
	  "[tls]\n"
	  "ciphers =\n"
	  "[pam]\n"
	  "address_domain =\n",
	  false, { { 0, NULL } }, check_empty_values },
	{ "empty values where not",
	  "[server]\n"
	  "max_recipients =\n"
	  "hostname =\n"
	  "command_timeout = # nothing\n"
	  "[auth]\n"
	  "mechanisms =\n"
	  "worker_path =\n"
	  "[ldap]\n"
	  "uri =\n",
	  false, { { 2, "[server] max_recipients: empty value" },
		   { 3, "[server] hostname: empty value" },
		   { 4, "[server] command_timeout: empty value" },
		   { 6, "[auth] mechanisms: empty value" },
		   { 7, "[auth] worker_path: empty value" },
		   { 9, "[ldap] uri: empty value" } }, NULL },
	{ "unknown section, its keys not reported",
	  "[server]\nthreads = 1\n[smtp]\nfoo = 1\nbar = 2\n[server]\n"
	  "frobnicate = 3\n",
	  false, { { 3, "unknown section [smtp]" },
		   { 7, "unknown key \"frobnicate\" in section [server]" } },
	  NULL },
	{ "unknown key names its section",
	  "[relay]\nlisten = 0.0.0.0:587\n",
	  false, { { 2, "unknown key \"listen\" in section [relay]" } },
	  NULL },
	{ "keys are case-sensitive",
	  "[server]\nHostname = x\n",
	  false, { { 2, "unknown key \"Hostname\"" } }, NULL },
	{ "key outside any section",
	  "hostname = x\n[server]\n",
	  false, { { 1, "key \"hostname\" outside any section" } }, NULL },
	{ "line without =",
	  "[server]\nhostname\nmax_recipients 5\n",
	  false, { { 2, "expected \"key = value\"" },
		   { 3, "expected \"key = value\"" } }, NULL },
	{ "missing key",
	  "[server]\n= 5\n",
	  false, { { 2, "missing key before '='" } }, NULL },
	{ "bad section headers",
	  "[server\nthreads = 1\n[]\n[server] x\n[server]]\n",
	  false, { { 1, "missing ']'" }, { 3, "empty section name" },
		   { 4, "text after section header" },
		   { 5, "text after section header" } }, NULL },
	{ "non-repeatable key twice",
	  "[server]\nmax_recipients = 1\nmax_recipients = 2\n"
	  "[relay]\ntls = none\n[relay]\ntls = tls\n",
	  false, { { 3, "[server] max_recipients given twice (first at "
		      "line 2)" },
		   { 7, "[relay] tls given twice (first at line 5)" } },
	  NULL },
	{ "repeatable keys",
	  "[auth]\n"
	  "require_group = mail-senders\n"
	  "require_group =\n"
	  "require_group = cn=Mail Senders,ou=groups,dc=example,dc=com\n"
	  "[server]\nthreads = 2\n"
	  "[tls]\ncert = /etc/authrelay/rsa.pem\ncert = /etc/authrelay/ec.pem\n"
	  "key = /etc/authrelay/rsa.key\nkey = /etc/authrelay/ec.key\n"
	  "[relay]\nsmarthost = a.example\nxclient = yes\n"
	  "[server]\nmax_bad_commands = 3\n",
	  true, { { 0, NULL } }, check_repeated },
	{ "listen entries",
	  "[server]\n"
	  "listen = 0.0.0.0:587\n"
	  "listen = [::]:587 starttls\n"
	  "listen = 0.0.0.0:465 tls\n"
	  "listen = [::]:465   TLS\n"
	  "listen = 127.0.0.1:2525 STARTTLS\n"
	  "listen = localhost:10587\n"
	  "listen = [fe80::1%eth0]:587\n"
	  "listen = [::ffff:192.0.2.1]:587\n"
	  "listen = 192.0.2.1:65535 tls\n"
	  "listen = 192.0.2.1:1\n",
	  false, { { 0, NULL } }, check_listen },
	{ "bad listen entries",
	  "[server]\n"
	  "listen = 0.0.0.0\n"
	  "listen = 0.0.0.0:0\n"
	  "listen = 0.0.0.0:70000\n"
	  "listen = :587\n"
	  "listen = [::]\n"
	  "listen = ::587\n"
	  "listen = [::1:587\n"
	  "listen = [::]587\n",
	  false, { { 2, "missing port" }, { 3, "bad port (1..65535)" },
		   { 4, "bad port" }, { 5, "missing host" },
		   { 6, "missing port" }, { 7, "needs [brackets]" },
		   { 8, "missing ']'" }, { 9, "expected ':' after ']'" } },
	  NULL },
	{ "more bad listen entries",
	  "[server]\n"
	  "listen = 0.0.0.0:587 ssl\n"
	  "listen = 0.0.0.0:587 tls now\n"
	  "listen = [zz]:587\n"
	  "listen = [192.0.2.1]:587\n"
	  "listen = 0.0.0.0:587x\n"
	  "listen = 0.0.0.0:+587\n"
	  "listen = 0.0.0.0:587\n"
	  "listen = 0.0.0.0:0587 tls\n",
	  false, { { 2, "mode is not starttls or tls" },
		   { 3, "too many words" },
		   { 4, "not an IPv6 address" },
		   { 5, "not an IPv6 address" },
		   { 6, "bad port" }, { 7, "bad port" },
		   { 9, "0.0.0.0:587 given twice (first at line 8)" } },
	  NULL },
	{ "smarthosts",
	  "[relay]\n"
	  "smarthost = smtp.example.com\n"
	  "smarthost = smtp2.example.com:587\n"
	  "smarthost = [2001:db8::1]\n"
	  "smarthost = [2001:db8::2]:2525\n"
	  "smarthost = 10.0.0.1\n",
	  false, { { 0, NULL } }, check_smarthost },
	{ "bad smarthosts",
	  "[relay]\n"
	  "smarthost = smtp.example.com:0\n"
	  "smarthost = smtp.example.com:70000\n"
	  "smarthost = smtp.example.com:\n"
	  "smarthost = smtp.example.com 25\n"
	  "smarthost = 2001:db8::1\n"
	  "smarthost = [2001:db8::1\n"
	  "smarthost = :25\n"
	  "smarthost = smtp/example\n",
	  false, { { 2, "bad port" }, { 3, "bad port" }, { 4, "bad port" },
		   { 5, "spaces" }, { 6, "needs [brackets]" },
		   { 7, "missing ']'" }, { 8, "missing host" },
		   { 9, "bad host name" } }, NULL },
	{ "values",
	  "[auth]\nbackend = LDAP\nmechanisms = plain\n"
	  "[tls]\nmin_version = TLSv1.3\n"
	  "[ldap]\nuri = ldaps://dc1.example.com  ldap://dc2.example.com\n"
	  "base = dc=example,dc=com\ngroup_membership = memberof\n"
	  "address_attributes = mail mailAlternateAddress\n"
	  "[relay]\ntls = tls\n"
	  "[policy]\nsender_check = envelope\nbare_newline = normalize\n",
	  false, { { 0, NULL } }, check_enums },
	{ "range bounds",
	  "[server]\nmax_message_size = 4G\nmax_recipients = 100000\n"
	  "threads = 0\ncommand_timeout = 1h\ndata_timeout = 1000ms\n"
	  "shutdown_timeout = 0\n[ldap]\ntimeout = 500ms\n",
	  false, { { 0, NULL } }, check_bounds },
	{ "bad values",
	  "[server]\n"
	  "command_timeout = 5x\n"
	  "data_timeout = 2h\n"
	  "shutdown_timeout = 99999999999999999999\n"
	  "max_message_size = 35MB\n"
	  "proxy_protocol = maybe\n"
	  "max_recipients = -5\n"
	  "max_connections = 1e3\n"
	  "threads = 257\n",
	  false, { { 2, "[server] command_timeout: bad duration \"5x\"" },
		   { 3, "[server] data_timeout: 2h out of range 1s..1h" },
		   { 4, "bad duration" },
		   { 5, "[server] max_message_size: bad size \"35MB\"" },
		   { 6, "[server] proxy_protocol: bad boolean \"maybe\"" },
		   { 7, "[server] max_recipients: bad number \"-5\"" },
		   { 8, "bad number \"1e3\"" },
		   { 9, "[server] threads: 257 out of range 0..256" } },
	  NULL },
	{ "out of range",
	  "[server]\n"
	  "max_message_size = 1023\n"
	  "max_message_size = 5G\n"
	  "[server]\n"
	  "max_recipients = 0\n"
	  "max_connections_per_ip = 1000001\n"
	  "command_timeout = 0\n"
	  "[auth]\nfailure_delay = 61s\ncache_ttl = 2d\n",
	  false, { { 2, "max_message_size: 1023 out of range 1K..4G" },
		   { 3, "given twice" },
		   { 5, "max_recipients: 0 out of range 1..100000" },
		   { 6, "out of range 1..1000000" },
		   { 7, "command_timeout: 0 out of range 1s..1h" },
		   { 9, "failure_delay: 61s out of range 0..1m" },
		   { 10, "cache_ttl: 2d out of range 0..1d" } }, NULL },
	{ "bad enums",
	  "[auth]\nbackend = kerberos\nmechanisms = PLAIN CRAM-MD5 XOAUTH2\n"
	  "[tls]\nmin_version = TLSv1.1\n"
	  "[ldap]\ngroup_membership = members\n"
	  "[relay]\ntls = ssl\n"
	  "[policy]\nbare_newline = strip\n",
	  false, { { 2, "[auth] backend: \"kerberos\" is not one of: pam, "
		      "ldap" },
		   { 3, "unsupported mechanism \"CRAM-MD5\"" },
		   { 3, "unsupported mechanism \"XOAUTH2\"" },
		   { 5, "[tls] min_version: \"TLSv1.1\" is not one of: "
		      "TLSv1.2, TLSv1.3" },
		   { 7, "group_membership: \"members\" is not one of" },
		   { 9, "[relay] tls: \"ssl\" is not one of: none, "
		      "starttls, tls" },
		   { 11, "bare_newline: \"strip\"" } }, NULL },
	{ "bad strings",
	  "[server]\nhostname = mail example.com\n"
	  "[relay]\nidentity_header = X-Auth User\n"
	  "ca_file = certs/ca.pem\n"
	  "[pam]\nservice = /etc/pam.d/other\n"
	  "[ldap]\nuser_filter = (uid=alice)\n"
	  "user_dn_template = uid=admin,dc=example,dc=com\n"
	  "uri = ldap://a http://b\n"
	  "address_attributes = mail bad_attr\n",
	  false, { { 2, "not a host name" },
		   { 4, "not a header field name" },
		   { 5, "not an absolute path" },
		   { 7, "not a path" },
		   { 9, "must contain %u" }, { 10, "must contain %u" },
		   { 11, "\"http://b\" is not an ldap://" },
		   { 12, "\"bad_attr\" is not an attribute name" } }, NULL },
	{ "tls: no cert at all",
	  "[relay]\nsmarthost = a.example\n",
	  true, { { 0, "no [tls] cert configured" } }, NULL },
	{ "tls: more certs than keys",
	  "[tls]\ncert = /a.pem\ncert = /b.pem\nkey = /a.key\n"
	  "[relay]\nsmarthost = a.example\n",
	  true, { { 3, "[tls] cert without a matching key (2 cert, 1 key" } },
	  NULL },
	{ "tls: key only",
	  "[tls]\nkey = /a.key\n[relay]\nsmarthost = a.example\n",
	  true, { { 0, "no [tls] cert configured" },
		  { 2, "[tls] key without a matching cert (0 cert, 1 key" } },
	  NULL },
	{ "tls: a bad path keeps its place",
	  "[tls]\ncert = a.pem\nkey = /a.key\n"
	  "[relay]\nsmarthost = a.example\n",
	  true, { { 2, "[tls] cert: \"a.pem\": not an absolute path" } },
	  NULL },
	{ "ldap needs uri and base",
	  "[auth]\nbackend = ldap\n",
	  false, { { 0, "[auth] backend = ldap needs [ldap] uri" },
		   { 0, "[auth] backend = ldap needs [ldap] base" } }, NULL },
	{ "ldap with uri and base",
	  "[auth]\nbackend = ldap\n[ldap]\nuri = ldap://localhost\n"
	  "base = dc=example,dc=com\nstarttls = yes\n",
	  false, { { 0, NULL } }, NULL },
	{ "secret files need their user",
	  "[ldap]\nbind_dn = cn=x,dc=example,dc=com\n"
	  "[relay]\nauth_password_file = /etc/authrelay/relay.secret\n",
	  false, { { 2, "[ldap] bind_dn needs bind_password_file" },
		   { 4, "[relay] auth_password_file needs auth_user" } },
	  NULL },
	{ "no smarthost",
	  "[tls]\ncert = /a.pem\nkey = /a.key\n",
	  true, { { 0, "no [relay] smarthost configured" } }, NULL },
	{ "control characters",
	  "[server]\nhostname = a\rb\nthreads = 1\x01\n"
	  "max_recipients = 5\x7f\n",
	  false, { { 2, "control character 0x0d" },
		   { 3, "control character 0x01" },
		   { 4, "control character 0x7f" } }, NULL },
	{ "high bytes are quoted in messages",
	  "[server]\n\xff\xfe = 1\n",
	  false, { { 2, "unknown key \"\\xff\\xfe\" in section [server]" } },
	  NULL },
	{ "empty file",
	  "", true, { { 0, "no [tls] cert configured" },
		      { 0, "no [relay] smarthost configured" } }, NULL },
};

static void run_file_case(const struct file_case *t)
{
	struct config_errors errs = { NULL, 0 };
	size_t n_want = 0;
	char *text;
	struct config *c;

	while (n_want < MAX_WANT && t->errors[n_want].substr != NULL)
		n_want++;
	if (t->bare)
		text = strdup(t->text);
	else if (asprintf(&text, "%s%s", t->text, minimal) < 0)
		text = NULL;
	if (text == NULL)
		abort();
	c = load_text(text, strlen(text), &errs);
	free(text);

	CHECK((c != NULL) == (n_want == 0), "%s: got %s, want %s", t->name,
	      c != NULL ? "a config" : "NULL", n_want == 0 ? "a config" :
	      "NULL");
	CHECK(errs.n == n_want, "%s: got %zu errors, want %zu", t->name,
	      errs.n, n_want);
	for (size_t i = 0; i < n_want && i < errs.n; i++) {
		const struct want_error *w = &t->errors[i];
		char prefix[32];
		const char *m = errs.msg[i];

		if (w->line != 0)
			snprintf(prefix, sizeof(prefix), "FILE:%u: ", w->line);
		else
			snprintf(prefix, sizeof(prefix), "FILE: ");
		CHECK(strncmp(m, prefix, strlen(prefix)) == 0 &&
		      strstr(m + strlen(prefix), w->substr) != NULL,
		      "%s: error %zu: got \"%s\", want \"%s...%s...\"",
		      t->name, i, m, prefix, w->substr);
	}
	if (errs.n != n_want)
		print_errors(&errs);
	if (c != NULL && t->check != NULL)
		t->check(c);
	config_free(&c);
	CHECK(c == NULL, "%s: config_free did not null the pointer", t->name);
	config_errors_clear(&errs);
}

static void test_file_cases(void)
{
	for (size_t i = 0; i < sizeof(file_cases) / sizeof(*file_cases); i++)
		run_file_case(&file_cases[i]);
}

static void test_defaults(void)
{
	struct config_errors errs = { NULL, 0 };
	struct config *c = load_text(minimal, strlen(minimal), &errs);
	char host[256] = "";

	CHECK(c != NULL, "defaults: got NULL, want a config");
	print_errors(&errs);
	config_errors_clear(&errs);
	if (c == NULL)
		return;
	gethostname(host, sizeof(host) - 1);
	CHECK_STR(c->hostname, host, "hostname");
	CHECK_INT(c->n_listen, 0, "n_listen");
	CHECK(c->max_message_size == 35ULL << 20, "max_message_size: got %llu,"
	      " want 35M", (unsigned long long)c->max_message_size);
	CHECK_INT(c->max_recipients, 100, "max_recipients");
	CHECK_INT(c->max_connections, 10000, "max_connections");
	CHECK_INT(c->max_connections_per_ip, 50, "max_connections_per_ip");
	CHECK_INT(c->max_bad_commands, 20, "max_bad_commands");
	CHECK_INT(c->command_timeout_usec, 300 * SEC, "command_timeout");
	CHECK_INT(c->data_timeout_usec, 600 * SEC, "data_timeout");
	CHECK_INT(c->shutdown_timeout_usec, 30 * SEC, "shutdown_timeout");
	CHECK_INT(c->proxy_protocol, false, "proxy_protocol");
	CHECK_INT(c->threads, 0, "threads");

	CHECK_INT(c->n_tls, 1, "n_tls");
	CHECK_STR(c->tls[0].cert, "/etc/authrelay/tls/fullchain.pem", "cert");
	CHECK_STR(c->tls[0].key, "/etc/authrelay/tls/privkey.pem", "key");
	CHECK_INT(c->tls[0].cert_line, 3, "cert_line");
	CHECK_INT(c->tls[0].key_line, 4, "key_line");
	CHECK_INT(c->tls_min_version, 0x0303, "tls_min_version");
	CHECK_STR(c->tls_ciphers, NULL, "tls_ciphers");
	CHECK_INT(c->handshake_timeout_usec, 30 * SEC, "handshake_timeout");

	CHECK_INT(c->backend, AUTH_BACKEND_PAM, "backend");
	CHECK_INT(c->mechanisms, AUTH_MECH_PLAIN | AUTH_MECH_LOGIN,
		  "mechanisms");
	CHECK_INT(c->n_require_group, 0, "n_require_group");
	CHECK_INT(c->cache_ttl_usec, 60 * SEC, "cache_ttl");
	CHECK_INT(c->failure_delay_usec, 2 * SEC, "failure_delay");
	/* AUTH_WORKER_PATH is known to common/ only. */
	CHECK(c->worker_path[0] == '/' && strlen(c->worker_path) > 15 &&
	      strcmp(c->worker_path + strlen(c->worker_path) - 15,
		     "/authrelay-auth") == 0,
	      "worker_path: got %s, want .../authrelay-auth", c->worker_path);
	CHECK_INT(c->workers, 4, "workers");
	CHECK_INT(c->worker_max_requests, 100, "worker_max_requests");
	CHECK_INT(c->worker_timeout_usec, 30 * SEC, "worker_timeout");

	CHECK_STR(c->pam_service, "authrelay", "pam_service");
	CHECK_STR(c->address_domain, NULL, "address_domain");

	CHECK_INT(c->n_ldap_uri, 0, "n_ldap_uri");
	CHECK_INT(c->ldap_starttls, false, "ldap_starttls");
	CHECK_STR(c->ldap_ca_file, NULL, "ldap_ca_file");
	CHECK_INT(c->ldap_timeout_usec, 5 * SEC, "ldap_timeout");
	CHECK_STR(c->ldap_base, NULL, "ldap_base");
	CHECK_STR(c->ldap_bind_dn, NULL, "ldap_bind_dn");
	CHECK_STR(c->ldap_bind_password_file, NULL, "bind_password_file");
	CHECK_STR(c->ldap_user_filter, "(&(objectClass=inetOrgPerson)(uid=%u))",
		  "ldap_user_filter");
	CHECK_STR(c->ldap_user_dn_template, NULL, "ldap_user_dn_template");
	CHECK_INT(c->ldap_group_membership, LDAP_MEMBER, "group_membership");
	CHECK_INT(c->ldap_nested_groups, false, "nested_groups");
	CHECK_INT(c->n_ldap_address_attributes, 1, "n_address_attributes");
	CHECK_STR(c->ldap_address_attributes[0], "mail", "address_attributes");

	CHECK_INT(c->n_smarthost, 1, "n_smarthost");
	CHECK_STR(c->smarthost[0].host, "smtp.internal.example.com",
		  "smarthost host");
	CHECK_STR(c->smarthost[0].port, "25", "smarthost port");
	CHECK_INT(c->smarthost[0].line, 6, "smarthost line");
	CHECK_INT(c->relay_tls, RELAY_TLS_STARTTLS, "relay_tls");
	CHECK_INT(c->relay_tls_verify, true, "relay_tls_verify");
	CHECK_STR(c->relay_ca_file, NULL, "relay_ca_file");
	CHECK_STR(c->relay_auth_user, NULL, "relay_auth_user");
	CHECK_STR(c->relay_auth_password_file, NULL, "auth_password_file");
	CHECK_INT(c->relay_connect_timeout_usec, 30 * SEC, "connect_timeout");
	CHECK_STR(c->identity_header, "X-Authenticated-User",
		  "identity_header");
	CHECK_INT(c->xclient, false, "xclient");

	CHECK_INT(c->sender_check, SENDER_CHECK_BOTH, "sender_check");
	CHECK_INT(c->bare_newline, BARE_NEWLINE_REJECT, "bare_newline");
	config_free(&c);
}

/* --- limits and garbage --- */

static void test_long_lines(void)
{
	struct config_errors errs = { NULL, 0 };
	char *text = malloc(20000);
	struct config *c;
	size_t n = 0;

	if (text == NULL)
		abort();
	/* Line 1: exactly 4096 octets and a CRLF, fine. */
	n += (size_t)sprintf(text + n, "# ");
	memset(text + n, 'x', 4094);
	n += 4094;
	n += (size_t)sprintf(text + n, "\r\n[server]\n");
	/* Line 3: 4097 octets. */
	n += (size_t)sprintf(text + n, "# ");
	memset(text + n, 'x', 4095);
	n += 4095;
	/* Line 4: 5000 octets of a value. */
	n += (size_t)sprintf(text + n, "\nhostname = ");
	memset(text + n, 'a', 5000);
	n += 5000;
	/* Line 5 is still read and numbered right. */
	n += (size_t)sprintf(text + n, "\nbogus = 1\n%s", minimal);
	c = load_text(text, n, &errs);
	free(text);
	CHECK(c == NULL, "long lines: got a config, want NULL");
	CHECK_INT(errs.n, 3, "long lines: errors");
	if (errs.n == 3) {
		CHECK_STR(errs.msg[0], "FILE:3: line too long (more than 4096 "
			  "octets)", "error 0");
		CHECK_STR(errs.msg[1], "FILE:4: line too long (more than 4096 "
			  "octets)", "error 1");
		CHECK_STR(errs.msg[2], "FILE:5: unknown key \"bogus\" in "
			  "section [server]", "error 2");
	} else {
		print_errors(&errs);
	}
	config_errors_clear(&errs);
	config_free(&c);

	/* A file that ends in the middle of a long line, no newline. */
	text = malloc(100000);
	if (text == NULL)
		abort();
	memset(text, '=', 100000);
	c = load_text(text, 100000, &errs);
	free(text);
	CHECK(c == NULL, "one huge line: got a config, want NULL");
	CHECK(errs.n >= 1 && strcmp(errs.msg[0], "FILE:1: line too long (more "
	      "than 4096 octets)") == 0, "one huge line: got \"%s\"",
	      errs.n > 0 ? errs.msg[0] : "(no error)");
	config_errors_clear(&errs);
}

static uint32_t rnd_state = 2463534242u;

static uint32_t rnd(void)
{
	/* xorshift32: the same garbage on every run. */
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

static void load_garbage(const char *what, const char *text, size_t len)
{
	struct config_errors errs = { NULL, 0 };
	struct config *c = load_text(text, len, &errs);

	/* NULL exactly when there are errors, and every error is one line
	 * that names the file. */
	CHECK((c == NULL) == (errs.n > 0), "%s: got config %p with %zu errors",
	      what, (void *)c, errs.n);
	for (size_t i = 0; i < errs.n; i++)
		CHECK(strncmp(errs.msg[i], "FILE:", 5) == 0 &&
		      strchr(errs.msg[i], '\n') == NULL &&
		      strchr(errs.msg[i], '\r') == NULL,
		      "%s: bad message \"%s\"", what, errs.msg[i]);
	CHECK(errs.n <= 101, "%s: got %zu errors, want at most 101", what,
	      errs.n);
	config_free(&c);
	config_errors_clear(&errs);
}

static void test_garbage(void)
{
	static const char binary[] =
		"\x7f" "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0\x01\0\0\0"
		"\n[server]\n\0hostname = x\n\xff\xfe\xfd=\x80\n[\xc3\xa9]\n";
	struct config_errors errs = { NULL, 0 };
	char *valid = NULL;
	struct config *c;
	size_t n;

	c = load_text(binary, sizeof(binary) - 1, &errs);
	CHECK(c == NULL, "binary: got a config, want NULL");
	CHECK(errs.n >= 1 && strcmp(errs.msg[0], "FILE:1: control character "
				    "0x7f in line") == 0,
	      "binary: got \"%s\", want \"FILE:1: control character 0x7f in "
	      "line\"", errs.n > 0 ? errs.msg[0] : "(no error)");
	CHECK(errs.n >= 2 && strcmp(errs.msg[1], "FILE:3: control character "
				    "0x00 in line") == 0,
	      "binary: got \"%s\", want NUL on line 3",
	      errs.n > 1 ? errs.msg[1] : "(no error)");
	config_errors_clear(&errs);
	config_free(&c);

	/* 300 bad lines: stop at 100 errors and say so. */
	{
		char text[300 * 4 + 1];

		for (int i = 0; i < 300; i++)
			memcpy(text + 4 * i, "xyz\n", 4);
		c = load_text(text, 300 * 4, &errs);
		CHECK_INT(errs.n, 101, "too many errors: count");
		if (errs.n == 101)
			CHECK_STR(errs.msg[100], "FILE: too many errors, "
				  "giving up", "too many errors: last");
		config_errors_clear(&errs);
	}

	/* Random bytes, random printable lines, and a valid file with bytes
	 * flipped: no crash, no leak (ASan), consistent result. */
	for (int round = 0; round < 300; round++) {
		char buf[2048];
		size_t len = rnd() % sizeof(buf);

		for (size_t i = 0; i < len; i++)
			buf[i] = (char)rnd();
		load_garbage("random bytes", buf, len);
		for (size_t i = 0; i < len; i++) {
			static const char alphabet[] =
				"[]=#; \t\n:abclstenp0123456789.KMGsmhd%/";

			buf[i] = alphabet[rnd() % (sizeof(alphabet) - 1)];
		}
		load_garbage("random text", buf, len);
	}
	if (asprintf(&valid, "[server]\nlisten = [::]:587 tls\n"
		     "max_message_size = 35M\ncommand_timeout = 5m\n"
		     "[auth]\nbackend = ldap\nmechanisms = PLAIN LOGIN\n"
		     "[ldap]\nuri = ldap://a ldaps://b\nbase = dc=x\n"
		     "[relay]\nsmarthost = [2001:db8::1]:25\n%s", minimal) < 0)
		abort();
	n = strlen(valid);
	for (int round = 0; round < 2000; round++) {
		char *m = strdup(valid);

		if (m == NULL)
			abort();
		for (int k = 0; k < 1 + round % 4; k++)
			m[rnd() % n] = (char)rnd();
		load_garbage("mutated", m, n);
		free(m);
	}
	free(valid);
}

static void test_open_errors(void)
{
	struct config_errors errs = { NULL, 0 };
	struct config *c;
	char dir[] = "/tmp/test_config.XXXXXX";
	char *want;

	c = config_load("/nonexistent/authrelay.conf", false, &errs);
	CHECK(c == NULL, "missing file: got a config, want NULL");
	CHECK_INT(errs.n, 1, "missing file: errors");
	if (errs.n == 1)
		CHECK_STR(errs.msg[0], "/nonexistent/authrelay.conf: cannot "
			  "open: No such file or directory", "missing file");
	config_errors_clear(&errs);

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	c = config_load(dir, false, &errs);
	CHECK(c == NULL, "directory: got a config, want NULL");
	CHECK_INT(errs.n, 1, "directory: errors");
	if (asprintf(&want, "%s: not a regular file", dir) < 0)
		abort();
	if (errs.n == 1)
		CHECK_STR(errs.msg[0], want, "directory");
	free(want);
	config_errors_clear(&errs);
	rmdir(dir);

	/* errs may be NULL: the result alone says valid or not. */
	c = config_load("/nonexistent/authrelay.conf", false, NULL);
	CHECK(c == NULL, "NULL errs: got a config, want NULL");
}

static void touch(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || fchmod(fd, mode) < 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

/* check_files: every named file must open, the worker must execute. */
static void test_check_files(void)
{
	char dir[] = "/tmp/test_config.XXXXXX";
	static const char *const files[] = {
		"cert.pem", "key.pem", "ca.pem", "ldap.secret", "relay.secret",
	};
	struct config_errors errs = { NULL, 0 };
	char path[PATH_MAX], *text, *conf;
	struct config *c;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		touch(path, 0600);
	}
	snprintf(path, sizeof(path), "%s/worker", dir);
	touch(path, 0755);
	snprintf(path, sizeof(path), "%s/noexec", dir);
	touch(path, 0644);
	snprintf(path, sizeof(path), "%s/subdir", dir);
	mkdir(path, 0755);

	/* All there. */
	if (asprintf(&text,
		     "[tls]\ncert = %1$s/cert.pem\nkey = %1$s/key.pem\n"
		     "[auth]\nworker_path = %1$s/worker\n"
		     "[ldap]\nca_file = %1$s/ca.pem\n"
		     "bind_dn = cn=authrelay,dc=example,dc=com\n"
		     "bind_password_file = %1$s/ldap.secret\n"
		     "[relay]\nsmarthost = localhost\nca_file = %1$s/ca.pem\n"
		     "auth_user = authrelay\n"
		     "auth_password_file = %1$s/relay.secret\n", dir) < 0)
		abort();
	conf = write_temp(text, strlen(text));
	free(text);
	c = config_load(conf, true, &errs);
	CHECK(c != NULL, "check_files, all there: got NULL, want a config");
	print_errors(&errs);
	config_errors_clear(&errs);
	config_free(&c);
	unlink(conf);
	free(conf);

	/* None there, or the wrong kind. */
	if (asprintf(&text,
		     "[tls]\ncert = %1$s/cert.pem\nkey = %1$s/nokey.pem\n"
		     "cert = %1$s/subdir\nkey = %1$s/key.pem\n"
		     "[auth]\nworker_path = %1$s/noexec\n"
		     "[ldap]\nca_file = %1$s/none.pem\n"
		     "bind_dn = cn=authrelay,dc=example,dc=com\n"
		     "bind_password_file = %1$s/none.secret\n"
		     "[relay]\nsmarthost = localhost\nca_file = %1$s/none.pem\n"
		     "auth_user = authrelay\n"
		     "auth_password_file = %1$s/none.secret\n", dir) < 0)
		abort();
	conf = write_temp(text, strlen(text));
	free(text);

	/* Without check_files the same text is fine. */
	c = config_load(conf, false, &errs);
	CHECK(c != NULL, "check_files off: got NULL, want a config");
	print_errors(&errs);
	config_errors_clear(&errs);
	config_free(&c);

	c = config_load(conf, true, &errs);
	CHECK(c == NULL, "check_files, missing: got a config, want NULL");
	{
		/* Each message is "[section] key: ..." with the temp dir
		 * between what and the rest. */
		static const struct {
			unsigned line;
			const char *before, *after;
		} want[] = {
			{ 3, "[tls] key: cannot open ", "/nokey.pem: No such "
			     "file or directory" },
			{ 4, "[tls] cert: ", "/subdir is a directory" },
			{ 7, "[auth] worker_path: cannot execute ", "/noexec: "
			     "Permission denied" },
			{ 9, "[ldap] ca_file: cannot open ", "/none.pem: No "
			     "such file or directory" },
			{ 11, "[ldap] bind_password_file: cannot open ",
			      "/none.secret: No such file or directory" },
			{ 14, "[relay] ca_file: cannot open ", "/none.pem: No "
			      "such file or directory" },
			{ 16, "[relay] auth_password_file: cannot open ",
			      "/none.secret: No such file or directory" },
		};
		size_t n = sizeof(want) / sizeof(*want);

		CHECK(errs.n == n, "check_files: got %zu errors, want %zu",
		      errs.n, n);
		for (size_t i = 0; i < n && i < errs.n; i++) {
			char *full;

			if (asprintf(&full, "%s:%u: %s%s%s", conf,
				     want[i].line, want[i].before, dir,
				     want[i].after) < 0)
				abort();
			CHECK_STR(errs.msg[i], full, "check_files error");
			free(full);
		}
		if (errs.n != n)
			print_errors(&errs);
	}
	config_errors_clear(&errs);
	unlink(conf);
	free(conf);

	/* The default worker_path has no line of its own. */
	if (asprintf(&text, "[tls]\ncert = %1$s/cert.pem\nkey = %1$s/key.pem\n"
		     "[relay]\nsmarthost = localhost\n", dir) < 0)
		abort();
	conf = write_temp(text, strlen(text));
	free(text);
	c = config_load(conf, false, &errs);
	CHECK(c != NULL, "default worker: got NULL, want a config");
	if (c != NULL && access(c->worker_path, F_OK) < 0) {
		char *want;

		if (asprintf(&want, "%s: [auth] worker_path: %s: No such file "
			     "or directory", conf, c->worker_path) < 0)
			abort();
		config_free(&c);
		c = config_load(conf, true, &errs);
		CHECK(c == NULL, "default worker: got a config, want NULL");
		CHECK_INT(errs.n, 1, "default worker: errors");
		if (errs.n == 1)
			CHECK_STR(errs.msg[0], want, "default worker");
		free(want);
	}
	config_errors_clear(&errs);
	config_free(&c);
	unlink(conf);
	free(conf);

	static const char *const rm[] = {
		"cert.pem", "key.pem", "ca.pem", "ldap.secret", "relay.secret",
		"worker", "noexec",
	};
	for (size_t i = 0; i < sizeof(rm) / sizeof(*rm); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, rm[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/subdir", dir);
	rmdir(path);
	rmdir(dir);
}

/* --- golden files: config/NAME.conf gives exactly config/NAME.ref --- */

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t size = 0, n = 0, r;

	if (f == NULL)
		return NULL;
	do {
		if (n + 4096 + 1 > size) {
			size = (n + 4096 + 1) * 2;
			buf = realloc(buf, size);
			if (buf == NULL)
				abort();
		}
		r = fread(buf + n, 1, 4096, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void test_golden(void)
{
	static const char *const names[] = { "errors", "more-errors", "ldap" };

	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		struct config_errors errs = { NULL, 0 };
		char conf[PATH_MAX], ref[PATH_MAX], what[64];
		char *want, *got = NULL, *line;
		size_t got_len = 0;
		FILE *out;
		struct config *c;

		snprintf(conf, sizeof(conf), "%s/config/%s.conf", SRCDIR,
			 names[i]);
		snprintf(ref, sizeof(ref), "%s/config/%s.ref", SRCDIR,
			 names[i]);
		want = read_file(ref);
		CHECK(want != NULL, "%s: %s", ref, strerror(errno));
		if (want == NULL)
			continue;
		c = config_load(conf, false, &errs);
		/* The .ref names the file as FILE, wherever srcdir is. */
		out = open_memstream(&got, &got_len);
		for (size_t j = 0; j < errs.n; j++) {
			line = errs.msg[j];
			if (strncmp(line, conf, strlen(conf)) == 0)
				fprintf(out, "FILE%s\n", line + strlen(conf));
			else
				fprintf(out, "%s\n", line);
		}
		fclose(out);
		snprintf(what, sizeof(what), "golden %s", names[i]);
		CHECK((c == NULL) == (errs.n > 0), "%s: NULL iff errors", what);
		if (strcmp(got, want) != 0)
			CHECK(0, "%s: got\n%s\nwant\n%s", what, got, want);
		else
			CHECK(1, "%s", what);
		config_free(&c);
		config_errors_clear(&errs);
		free(got);
		free(want);
	}
}

/* The example with each "#key = value" line that shows a value
 * uncommented (listen's lines are examples, not defaults): written to a
 * temporary file whose path goes to path_r. */
static int uncomment_defaults(const char *src, char *path_r, size_t size)
{
	char line[4200];
	FILE *in = fopen(src, "r"), *out;
	int fd;

	snprintf(path_r, size, "/tmp/test_config_example.XXXXXX");
	fd = mkstemp(path_r);
	if (in == NULL || fd < 0 || (out = fdopen(fd, "w")) == NULL) {
		if (in != NULL)
			fclose(in);
		return -1;
	}
	while (fgets(line, sizeof(line), in) != NULL) {
		const char *eq = strstr(line, " = ");
		bool key = line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' &&
			   eq != NULL && eq[3] != '\n' &&
			   strncmp(line, "#listen", 7) != 0;

		fputs(key ? line + 1 : line, out);
	}
	fclose(in);
	return fclose(out);
}

/* The shipped example must stay valid and mean what it says: only cert,
 * key and smarthost are set, and every value it shows commented out is
 * the default. */
static void test_example(void)
{
	struct config_errors errs = { NULL, 0 };
	char path[PATH_MAX], tmp[64];
	struct config *c, *d = NULL;

	snprintf(path, sizeof(path), "%s/../../contrib/authrelay.conf",
		 SRCDIR);
	c = config_load(path, false, &errs);
	CHECK(c != NULL, "%s: got NULL, want a config", path);
	print_errors(&errs);
	config_errors_clear(&errs);
	if (uncomment_defaults(path, tmp, sizeof(tmp)) == 0) {
		d = config_load(tmp, false, &errs);
		CHECK(d != NULL, "example with the defaults uncommented: got "
		      "NULL, want a config");
		print_errors(&errs);
		config_errors_clear(&errs);
		unlink(tmp);
	} else {
		CHECK(0, "cannot write %s", tmp);
	}
	if (c == NULL || d == NULL) {
		config_free(&c);
		config_free(&d);
		return;
	}
	CHECK_INT(c->n_listen, 0, "example n_listen");
	CHECK_INT(c->n_tls, 1, "example n_tls");
	CHECK_INT(c->n_smarthost, 1, "example n_smarthost");
	CHECK_INT(c->n_require_group, 0, "example n_require_group");
	CHECK_STR(c->tls[0].cert, "/etc/authrelay/tls/fullchain.pem",
		  "example cert");
	CHECK_STR(c->tls[0].key, "/etc/authrelay/tls/privkey.pem",
		  "example key");
#define SAME(f) CHECK_INT(d->f, c->f, "example, default shown for " #f)
	SAME(max_message_size); SAME(max_recipients); SAME(max_connections);
	SAME(max_connections_per_ip); SAME(max_bad_commands);
	SAME(command_timeout_usec); SAME(data_timeout_usec);
	SAME(shutdown_timeout_usec); SAME(proxy_protocol); SAME(threads);
	SAME(tls_min_version); SAME(handshake_timeout_usec);
	SAME(backend); SAME(mechanisms); SAME(cache_ttl_usec);
	SAME(failure_delay_usec); SAME(workers); SAME(worker_max_requests);
	SAME(worker_timeout_usec); SAME(max_failures_per_ip);
	SAME(failure_window_usec); SAME(block_time_usec);
	SAME(ldap_starttls); SAME(ldap_timeout_usec);
	SAME(ldap_group_membership); SAME(ldap_nested_groups);
	SAME(n_ldap_address_attributes); SAME(relay_tls);
	SAME(relay_tls_verify); SAME(relay_connect_timeout_usec);
	SAME(xclient); SAME(sender_check); SAME(bare_newline);
	SAME(allow_null_sender);
#undef SAME
	CHECK_STR(d->pam_service, c->pam_service, "example pam service");
	CHECK_STR(d->ldap_user_filter, c->ldap_user_filter,
		  "example user_filter");
	CHECK_STR(d->identity_header, c->identity_header,
		  "example identity_header");
	config_free(&c);
	config_free(&d);
}

int main(void)
{
	test_durations();
	test_sizes();
	test_bools();
	test_defaults();
	test_file_cases();
	test_long_lines();
	test_garbage();
	test_open_errors();
	test_check_files();
	test_golden();
	test_example();
	return test_done("test_config");
}
