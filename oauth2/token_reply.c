#include "autoconf.h"

#include "token_reply.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

/* Nesting allowed in a response: a token response is one flat object. */
#define JSON_DEPTH 8

void token_reason_clean(char *s)
{
	for (; *s != '\0'; s++)
		if (*s < ' ' || *s > '~')
			*s = '?';
}

static void set(struct token_reply *r, enum token_result result,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set(struct token_reply *r, enum token_result result,
		const char *fmt, ...)
{
	va_list ap;

	r->result = result;
	r->expires_in = 0;
	explicit_bzero(r->token, sizeof(r->token));
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	token_reason_clean(r->reason);
}

/* RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
 * "+" / "/" ) *"=": safe in an SMTP line and in our one-line output. */
static bool b64token(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0)
		return false;
	for (; i < len && s[i] != '='; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("-._~+/", s[i])))
			return false;
	if (i == 0)
		return false;
	for (; i < len; i++)
		if (s[i] != '=')
			return false;
	return true;
}

static const char *get_string(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* RFC 6749 §5.1; a number, or a string of digits as some endpoints
 * send. */
static long get_expires_in(json_object *o)
{
	json_object *v;
	const char *s;
	long n = 0;

	if (!json_object_object_get_ex(o, "expires_in", &v))
		return TOKEN_DEFAULT_LIFETIME;
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);

		return i < 0 ? -1 : i > 86400 * 366 ? 86400 * 366 : (long)i;
	}
	if (!json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	if (*s == '\0' || strlen(s) > 9)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (*s - '0');
	}
	return n;
}

static void success(json_object *o, struct token_reply *r)
{
	const char *token = get_string(o, "access_token");
	const char *type = get_string(o, "token_type");
	long expires;
	size_t len;

	if (token == NULL) {
		set(r, TOKEN_TEMPFAIL, "malformed token response: no "
		    "access_token");
		return;
	}
	len = strlen(token);
	if (len > TOKEN_MAX || !b64token(token, len)) {
		set(r, TOKEN_TEMPFAIL, "malformed token response: access_token "
		    "not a bearer token of at most %d octets", TOKEN_MAX);
		return;
	}
	/* RFC 6750 §4: the type is case-insensitive. */
	if (type != NULL && strcasecmp(type, "Bearer") != 0) {
		set(r, TOKEN_TEMPFAIL, "token_type %.40s, not Bearer", type);
		return;
	}
	expires = get_expires_in(o);
	if (expires < 0) {
		set(r, TOKEN_TEMPFAIL, "malformed token response: expires_in");
		return;
	}
	r->result = TOKEN_OK;
	r->expires_in = expires;
	memcpy(r->token, token, len + 1);
	r->reason[0] = '\0';
}

/* The Entra ID error code in a description: "AADSTS65001: ...". */
static const char *aadsts(const char *desc, char *buf, size_t size)
{
	const char *p = desc != NULL ? strstr(desc, "AADSTS") : NULL;
	size_t n = 6;

	if (p == NULL)
		return NULL;
	while (p[n] >= '0' && p[n] <= '9' && n < size - 1)
		n++;
	if (n == 6)
		return NULL;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return buf;
}

static void error(long status, json_object *o, struct token_reply *r)
{
	const char *code = get_string(o, "error");
	const char *desc = get_string(o, "error_description");
	char aad[24];
	const char *ms = aadsts(desc, aad, sizeof(aad));
	const char *hint = "";

	if (code == NULL) {
		set(r, TOKEN_TEMPFAIL, "endpoint answered HTTP %ld", status);
		return;
	}
	/* RFC 6749 §5.2, and what the two providers put behind them. */
	if (ms != NULL && (strcmp(ms, "AADSTS65001") == 0 ||
			   strcmp(ms, "AADSTS650057") == 0))
		hint = "consent missing: grant admin consent for the "
		       "application; ";
	else if (strcmp(code, "unauthorized_client") == 0)
		hint = "consent or domain-wide delegation missing; ";
	else if (strcmp(code, "invalid_client") == 0)
		hint = "wrong client id, secret or certificate; ";
	else if (strcmp(code, "invalid_grant") == 0)
		hint = "assertion refused (unknown user, clock skew?); ";
	if (strcmp(code, "temporarily_unavailable") == 0 ||
	    strcmp(code, "server_error") == 0 || status >= 500)
		set(r, TOKEN_TEMPFAIL, "%.40s (HTTP %ld)%s%s", code, status,
		    ms != NULL ? " " : "", ms != NULL ? ms : "");
	else
		set(r, TOKEN_PERMFAIL, "%s%.40s (HTTP %ld)%s%s", hint, code,
		    status, ms != NULL ? " " : "", ms != NULL ? ms : "");
}

void token_reply_parse(long status, const char *body, size_t len,
		       struct token_reply *r)
{
	json_tokener *tok;
	json_object *o;

	memset(r, 0, sizeof(*r));
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (tok == NULL) {
		set(r, TOKEN_TEMPFAIL, "out of memory");
		return;
	}
	o = len > 0 && len <= TOKEN_RESPONSE_MAX && len < (size_t)INT_MAX ?
	    json_tokener_parse_ex(tok, body, (int)len) : NULL;
	/* The whole body must be one JSON value. */
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
			  json_tokener_get_parse_end(tok) != len)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		if (status >= 500 || status == 429)
			set(r, TOKEN_TEMPFAIL, "endpoint answered HTTP %ld",
			    status);
		else if (status == 200)
			set(r, TOKEN_TEMPFAIL, "malformed token response: "
			    "not a JSON object");
		else
			set(r, TOKEN_TEMPFAIL, "endpoint answered HTTP %ld "
			    "without an OAuth2 error", status);
		json_object_put(o);
		return;
	}
	if (status == 200)
		success(o, r);
	else if (status == 429)
		set(r, TOKEN_TEMPFAIL, "endpoint answered HTTP 429 (too many "
		    "requests)");
	else
		error(status, o, r);
	json_object_put(o);
}
