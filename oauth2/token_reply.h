/* The token endpoint's answer (RFC 6749 §5.1 success, §5.2 error),
 * classified into the one line authrelay-token prints: OK with the
 * access token and its lifetime, TEMPFAIL (try again later) or PERMFAIL
 * (the configuration or the provider's setup is wrong) with a reason
 * for the log. */
#ifndef AUTHRELAY_TOKEN_REPLY_H
#define AUTHRELAY_TOKEN_REPLY_H

#include <stddef.h>

/* Longest access token taken (Entra ID tokens are a few KiB). */
#define TOKEN_MAX 8192
#define TOKEN_REASON_MAX 200
/* Longest response body read from the endpoint. */
#define TOKEN_RESPONSE_MAX (64 * 1024)
/* Lifetime assumed when the endpoint gives none (RFC 6749 §5.1:
 * expires_in is only RECOMMENDED). */
#define TOKEN_DEFAULT_LIFETIME 3600

enum token_result { TOKEN_OK, TOKEN_TEMPFAIL, TOKEN_PERMFAIL };

struct token_reply {
	enum token_result result;
	long expires_in;			/* seconds, OK only */
	char token[TOKEN_MAX + 1];		/* OK only */
	char reason[TOKEN_REASON_MAX + 1];	/* printable ASCII */
};

/* Classify an HTTP status and body (not NUL-terminated). */
void token_reply_parse(long http_status, const char *body, size_t len,
		       struct token_reply *r);

/* Every octet of s outside printable ASCII becomes '?': a reason is one
 * line of the log, whatever a server sent. */
void token_reason_clean(char *s);

#endif
