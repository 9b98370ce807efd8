/* authrelay.conf: INI with [section] headers, key = value, # and ;
 * comments (whole line, or after whitespace), durations (30s 5m 1h 500ms,
 * bare number = seconds) and sizes (512K 35M 1G, bare number = bytes).
 * Unknown sections and keys are errors with their line. Keys marked
 * repeatable may appear more than once; any other key given twice is an
 * error. */
#ifndef AUTHRELAY_CONFIG_H
#define AUTHRELAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define USEC_PER_SEC 1000000ULL

enum listen_mode { LISTEN_STARTTLS, LISTEN_TLS };

struct config_listen {
	char *host;		/* "0.0.0.0", "::" (brackets removed), "127.0.0.1" */
	char *port;		/* "587" */
	enum listen_mode mode;
	unsigned line;
};

struct config_tls_pair {
	char *cert;
	char *key;
	unsigned cert_line, key_line;
};

enum auth_backend { AUTH_BACKEND_PAM, AUTH_BACKEND_LDAP };
#define AUTH_MECH_PLAIN 0x1u
#define AUTH_MECH_LOGIN 0x2u

enum ldap_membership { LDAP_MEMBER, LDAP_UNIQUE_MEMBER, LDAP_MEMBER_UID,
		       LDAP_MEMBER_OF };
enum relay_tls { RELAY_TLS_NONE, RELAY_TLS_STARTTLS, RELAY_TLS_TLS };
enum sender_check { SENDER_CHECK_OFF, SENDER_CHECK_ENVELOPE,
		    SENDER_CHECK_HEADER, SENDER_CHECK_BOTH };
enum bare_newline { BARE_NEWLINE_REJECT, BARE_NEWLINE_NORMALIZE };
/* [policy] shared_state_failure: what a check does when Redis does not
 * answer in time. */
enum shared_failure { SHARED_FAILURE_OPEN, SHARED_FAILURE_CLOSED };
/* [relay] auth_mechanism: AUTO takes PLAIN, else LOGIN, as the smarthost
 * offers them (with auth_user and auth_password_file). */
enum relay_auth_mech { RELAY_AUTH_AUTO, RELAY_AUTH_PLAIN, RELAY_AUTH_LOGIN,
		       RELAY_AUTH_XOAUTH2, RELAY_AUTH_OAUTHBEARER };
enum oauth2_grant { OAUTH2_GRANT_NONE, OAUTH2_GRANT_CLIENT_CREDENTIALS,
		    OAUTH2_GRANT_JWT_BEARER };
/* Which [relay] keys a profile filled in (config_describe_relay). */
#define RELAY_FILLED_SMARTHOST	0x01u
#define RELAY_FILLED_TLS	0x02u
#define RELAY_FILLED_MECH	0x04u
#define RELAY_FILLED_USER	0x08u
#define RELAY_FILLED_GRANT	0x10u
#define RELAY_FILLED_TOKEN_URL	0x20u
#define RELAY_FILLED_SCOPE	0x40u
#define RELAY_DEFAULT_SCOPE	0x80u	/* the grant's default scope */

/* [policy] send_as = ADDRESS GROUP: members of GROUP (an NSS group name
 * for pam, a group DN for ldap) may send as ADDRESS (shared mailboxes). */
struct config_send_as {
	char *address;
	char *group;
	unsigned line;
};

/* "N/DURATION": at most count events per window; count 0 = no limit. */
struct config_rate {
	unsigned count;
	uint64_t window_usec;
};

/* [policy] group_rate / group_recipient_rate = COUNT/DURATION GROUP:
 * members of GROUP get this limit instead of user_rate (the first entry
 * whose group the user is in). */
struct config_group_rate {
	struct config_rate rate;
	char *group;
	unsigned line;
};

struct config_hostport {
	char *host;
	char *port;
	unsigned line;
};

struct config {
	char *path;		/* the file it was read from */
	unsigned *key_line;	/* first line of each key, 0: not given
				 * (config_key_line) */

	/* [server] */
	char *hostname;		/* default: gethostname() */
	struct config_listen *listen;	/* repeatable */
	size_t n_listen;
	uint64_t max_message_size;	/* default 35M, range 1K..4G */
	unsigned max_recipients;	/* default 100, 1..100000 */
	unsigned max_connections;	/* default 10000, 1..1000000 */
	unsigned max_connections_per_ip;	/* default 50, 1..1000000 */
	unsigned max_bad_commands;	/* default 20, 1..1000 */
	uint64_t command_timeout_usec;	/* default 5m, 1s..1h */
	uint64_t data_timeout_usec;	/* default 10m, 1s..1h */
	uint64_t shutdown_timeout_usec;	/* default 30s, 0..1h */
	bool proxy_protocol;		/* default no */
	unsigned threads;		/* default 0 = one per core, 0..256 */
	char *run_user;		/* default "authrelay": the network process */
	/* metrics_listen: host NULL = off (the default) */
	struct config_hostport metrics_listen;

	/* [tls] */
	struct config_tls_pair *tls;	/* cert/key repeatable, paired by order */
	size_t n_tls;
	int tls_min_version;	/* 0x0303 TLSv1.2 (default), 0x0304 TLSv1.3 */
	char *tls_ciphers;	/* TLS <= 1.2 cipher list, NULL = OpenSSL default */
	uint64_t handshake_timeout_usec;	/* default 30s, 1s..10m */
	/* Session tickets (RFC 5077, RFC 8446 §4.6.1): a key encrypts new
	 * tickets this long, then only opens them as long again; 0: no
	 * tickets. Default 1h, 0..1d. */
	uint64_t tls_ticket_lifetime_usec;

	/* [auth] */
	enum auth_backend backend;	/* default pam */
	unsigned mechanisms;		/* AUTH_MECH_* bits, default PLAIN|LOGIN */
	char **require_group;		/* repeatable; empty value ignored */
	unsigned *require_group_line;	/* the line of each */
	size_t n_require_group;
	uint64_t cache_ttl_usec;	/* default 60s, 0..1d */
	uint64_t failure_delay_usec;	/* default 2s, 0..1m */
	char *worker_path;		/* default AUTH_WORKER_PATH */
	unsigned workers;		/* default 4, 1..256: whole pool */
	unsigned worker_max_requests;	/* default 100, 1..1000000 */
	uint64_t worker_timeout_usec;	/* default 30s, 1s..10m */
	/* Brute force: failed logins from one client address within
	 * failure_window; at max_failures_per_ip (0: never) the address
	 * is blocked for block_time, doubled each time up to 24h. */
	unsigned max_failures_per_ip;	/* default 20, 0..100000 */
	uint64_t failure_window_usec;	/* default 15m, 1s..1d */
	uint64_t block_time_usec;	/* default 15m, 1s..1d */

	/* [pam] */
	char *pam_service;		/* default "authrelay" */
	char *address_domain;		/* default NULL */

	/* [ldap] */
	char **ldap_uri;		/* space-separated list, >= 1 if ldap */
	size_t n_ldap_uri;
	bool ldap_starttls;
	char *ldap_ca_file;
	uint64_t ldap_timeout_usec;	/* default 5s */
	char *ldap_base;
	char *ldap_bind_dn;
	char *ldap_bind_password_file;
	char *ldap_user_filter;		/* default (&(objectClass=inetOrgPerson)(uid=%u)) */
	char *ldap_user_dn_template;
	enum ldap_membership ldap_group_membership;	/* default member */
	bool ldap_nested_groups;
	char **ldap_address_attributes;	/* space-separated, default mail */
	size_t n_ldap_address_attributes;

	/* [relay] */
	struct config_hostport *smarthost;	/* repeatable; port default 25 */
	size_t n_smarthost;
	enum relay_tls relay_tls;	/* default starttls */
	bool relay_tls_verify;		/* default yes */
	char *relay_ca_file;
	char *relay_auth_user;
	char *relay_auth_password_file;
	uint64_t relay_connect_timeout_usec;	/* default 30s */
	char *identity_header;		/* default X-Authenticated-User, "" = none */
	bool xclient;
	/* Idle smarthost connections kept per serving thread for the next
	 * session (0: none; default 4, 0..1000), and how long each waits
	 * (default 30s, 1s..1h). */
	unsigned relay_cache_max;
	uint64_t relay_cache_idle_usec;
	/* profile = NAME[:ARG] fills the keys above and below that are not
	 * given (common/relay_profile.h); relay_filled says which. */
	char *relay_profile;
	unsigned relay_filled;		/* RELAY_FILLED_* */
	enum relay_auth_mech relay_auth_mech;	/* default auto */
	char *token_program;	/* authrelay-token, run by the supervisor */
	/* auth_user = @sender: each user authenticates upstream as their
	 * own address (relay_auth_user is then NULL). */
	bool relay_auth_sender;
	enum oauth2_grant oauth2_grant;
	char *oauth2_token_url;		/* https:// only */
	char *oauth2_client_id;
	char *oauth2_scope;		/* default per grant */
	char *oauth2_ca_file;		/* NULL: the system store */
	char *oauth2_client_secret_file;
	char *oauth2_client_certificate;	/* PEM, with oauth2_client_key */
	char *oauth2_client_key;
	char *oauth2_service_account_file;	/* Google's JSON key */
	uint64_t oauth2_timeout_usec;	/* whole token request, default 20s */

	/* [policy] */
	enum sender_check sender_check;	/* default both */
	bool allow_null_sender;		/* MAIL FROM:<>, default no */
	struct config_send_as *send_as;	/* repeatable */
	size_t n_send_as;
	enum bare_newline bare_newline;	/* default reject */
	struct config_rate user_rate;		/* messages per user */
	struct config_rate user_recipient_rate;	/* recipients per user */
	struct config_group_rate *group_rate;	/* repeatable */
	size_t n_group_rate;
	struct config_group_rate *group_recipient_rate;	/* repeatable */
	size_t n_group_recipient_rate;
	/* Limits, brute-force counts and blocks shared by several nodes
	 * through Redis (common/redis_uri.h); NULL: per instance. */
	char *shared_state;
	char *shared_state_password_file;
	enum shared_failure shared_state_failure;	/* default open */
	uint64_t shared_state_timeout_usec;	/* default 200ms, 10ms..10s */
	char *shared_state_prefix;	/* default "authrelay:" */
};

/* Errors: one "FILE:LINE: message" (or "FILE: message") string each. */
struct config_errors {
	char **msg;
	size_t n;
};

/* Parse and validate path. Returns the config, or NULL with every error
 * found appended to errs (parsing goes on after an error, so all are
 * reported at once). check_files: also check that every named file
 * (cert, key, ca_file, password files, worker_path) can be opened. */
struct config *config_load(const char *path, bool check_files,
			   struct config_errors *errs);
/* The same, reading the text from fd (from its start; fd stays open) and
 * naming path in messages: the daemon parses a private snapshot of the
 * file, which its auth workers then read too, so all see the same text. */
struct config *config_load_fd(const char *path, int fd, bool check_files,
			      struct config_errors *errs);
/* The same, from a text in memory (the config entry of a bundle). */
struct config *config_load_mem(const char *path, const void *text,
			       size_t len, bool check_files,
			       struct config_errors *errs);
void config_free(struct config **config);

/* The line key [section] name was first given on; 0 when it was not
 * (its default applies) or the key is unknown. */
unsigned config_key_line(const struct config *config, const char *section,
			 const char *name);
/* The keys the parser knows, in table order: the i-th key's name with its
 * section in *section_r, NULL past the last (for the documentation
 * check). */
const char *config_key_at(size_t i, const char **section_r);
/* What [relay] amounts to after the profile, one "[relay] key = value"
 * line each with where it came from ("profile NAME" or "set"), for
 * `authrelay -t`. Prints nothing when no profile is set. Never prints a
 * secret: files are named, not read. */
void config_describe_relay(const struct config *cfg, FILE *out);

void config_errors_add(struct config_errors *errs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void config_errors_clear(struct config_errors *errs);

/* Value parsers, exposed for tests. Return 0 on success, -1 on error. */
int config_parse_duration(const char *s, uint64_t *usec_r);
int config_parse_size(const char *s, uint64_t *bytes_r);
int config_parse_bool(const char *s, bool *b_r);
/* "500/1h" (count/duration); "0" or "" for no limit. */
int config_parse_rate(const char *s, struct config_rate *rate_r);

#endif
