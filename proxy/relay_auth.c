/* Our own AUTH at the smarthost (RFC 4954): PLAIN (RFC 4616) or LOGIN
 * with the [relay] credential, or XOAUTH2 / OAUTHBEARER (RFC 7628) with
 * an access token from relay_token. A credential that is refused fails
 * the relay; the secret is wiped from every buffer once written. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_proto.h"
#include "base64.h"
#include "conn.h"
#include "relay.h"
#include "relay_int.h"
#include "relay_targets.h"
#include "relay_token.h"
#include "settings.h"
#include "xalloc.h"

/* Credentials */

/* The relay credential, read by the privileged side at start and at
 * reload (settings.relay_secret): this process never opens the file. */
static int read_secret(const struct relay *r, char *buf, size_t size)
{
	const char *secret = r->st->relay_secret;

	if (secret == NULL || secret[0] == '\0' || strlen(secret) >= size)
		return -1;
	snprintf(buf, size, "%s", secret);
	return 0;
}

static void send_auth_plain(struct relay *r)
{
	char secret[RELAY_SECRET_MAX + 1];
	unsigned char raw[AUTH_USER_MAX + RELAY_SECRET_MAX + 2];
	char b64[BASE64_ENCODED_LEN(sizeof(raw)) + 1];
	size_t ulen = strlen(r->cfg->relay_auth_user), plen;

	if (read_secret(r, secret, sizeof(secret)) < 0 || ulen > AUTH_USER_MAX) {
		relay_fail(r, "cannot read [relay] auth_password_file");
		return;
	}
	plen = strlen(secret);
	/* RFC 4616: authzid (empty) NUL authcid NUL passwd */
	raw[0] = '\0';
	memcpy(raw + 1, r->cfg->relay_auth_user, ulen);
	raw[1 + ulen] = '\0';
	memcpy(raw + 2 + ulen, secret, plen);
	base64_encode(raw, 2 + ulen + plen, b64);
	relay_send_line(r, R_AUTH, r->cfg->command_timeout_usec, "AUTH PLAIN %s", b64);
	explicit_bzero(secret, sizeof(secret));
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(b64, sizeof(b64));
}

static void send_login_secret(struct relay *r, bool password)
{
	char secret[RELAY_SECRET_MAX + 1];
	char b64[BASE64_ENCODED_LEN(RELAY_SECRET_MAX) + 1];

	if (password) {
		if (read_secret(r, secret, sizeof(secret)) < 0) {
			relay_fail(r, "cannot read [relay] auth_password_file");
			return;
		}
	} else {
		snprintf(secret, sizeof(secret), "%s", r->cfg->relay_auth_user);
	}
	base64_encode((const unsigned char *)secret, strlen(secret), b64);
	relay_send_line(r, password ? R_AUTH : R_AUTH_LOGIN_PASS,
		  r->cfg->command_timeout_usec, "%s", b64);
	explicit_bzero(secret, sizeof(secret));
	explicit_bzero(b64, sizeof(b64));
}

/* OAuth2 (the token comes from the supervisor through relay_token) */

static const char *oauth_mailbox(const struct relay *r)
{
	return r->cfg->relay_auth_sender ? r->address : r->cfg->relay_auth_user;
}

/* Our credential cannot be used or was refused: no other smarthost
 * would take it either. The client gets 451 4.7.0 and keeps the
 * message. */
static void relay_fail_auth(struct relay *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void relay_fail_auth(struct relay *r, const char *fmt, ...)
{
	char reason[RELAY_TEXT_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	r->fail_enh = "4.7.0";
	r->setting_up = false;
	relay_fail(r, "%s", reason);
}

/* RFC 5801 §4 saslname: ',' and '=' escaped in the gs2 header. */
static size_t saslname(char *out, const char *in)
{
	size_t o = 0;

	for (; *in != '\0'; in++) {
		if (*in == ',' || *in == '=') {
			memcpy(out + o, *in == ',' ? "=2C" : "=3D", 3);
			o += 3;
		} else {
			out[o++] = *in;
		}
	}
	return o;
}

static void send_auth_oauth(struct relay *r)
{
	bool bearer = r->cfg->relay_auth_mech == RELAY_AUTH_OAUTHBEARER;
	const char *mailbox = oauth_mailbox(r);
	const char *mech = bearer ? "OAUTHBEARER" : "XOAUTH2";
	const struct relay_target *t = relay_cur_target(r);
	char *token, *raw, *b64;
	size_t n = 0, tlen, rawmax;

	if (!(bearer ? r->caps.auth_oauthbearer : r->caps.auth_xoauth2)) {
		relay_fail(r, "AUTH %s not offered", mech);
		return;
	}
	if (mailbox == NULL || strlen(mailbox) > AUTH_USER_MAX) {
		relay_fail_auth(r, "no address of the user to authenticate "
				"upstream as (auth_user = @sender)");
		return;
	}
	token = xmalloc(RELAY_TOKEN_MAX + 1);
	if (relay_token_lookup(mailbox, token, RELAY_TOKEN_MAX + 1) < 0) {
		free(token);
		relay_fail_auth(r, "no OAuth2 access token for %s yet (one "
				"is being fetched; see authrelay-token's log)",
				mailbox);
		return;
	}
	tlen = strlen(token);
	rawmax = 3 * AUTH_USER_MAX + strlen(t->host) + strlen(t->port) +
		 tlen + 64;
	raw = xmalloc(rawmax);
	if (bearer) {
		/* RFC 7628 §3.1: gs2-header, then key=value pairs each
		 * ended by ^A, and a final ^A. */
		memcpy(raw, "n,a=", 4);
		n = 4 + saslname(raw + 4, mailbox);
		n += (size_t)snprintf(raw + n, rawmax - n,
				      ",\x01host=%s\x01port=%s\x01"
				      "auth=Bearer %s\x01\x01", t->host,
				      t->port, token);
	} else {
		/* Google's and Microsoft's XOAUTH2: "user=" U ^A
		 * "auth=Bearer " T ^A ^A. */
		n = (size_t)snprintf(raw, rawmax, "user=%s\x01"
				     "auth=Bearer %s\x01\x01", mailbox, token);
	}
	free_secret(token, RELAY_TOKEN_MAX + 1);
	b64 = xmalloc(BASE64_ENCODED_LEN(n) + 1);
	base64_encode((const unsigned char *)raw, n, b64);
	free_secret(raw, rawmax);
	if (line_reader_pending(conn_input(r->conn)) > 0) {
		free_secret(b64, BASE64_ENCODED_LEN(n) + 1);
		relay_fail(r, "reply before the command");
		return;
	}
	/* RFC 4954 §4: the initial response on the AUTH line (at most
	 * 12288 octets, which a RELAY_TOKEN_MAX token fits). */
	conn_write(r->conn, "AUTH ", 5);
	conn_write(r->conn, mech, strlen(mech));
	conn_write(r->conn, " ", 1);
	conn_write(r->conn, b64, strlen(b64));
	conn_write(r->conn, "\r\n", 2);
	free_secret(b64, BASE64_ENCODED_LEN(n) + 1);
	r->oauth_error[0] = '\0';
	relay_sent(r, R_AUTH_OAUTH, r->cfg->command_timeout_usec);
}

/* A 334 to our token is the error challenge: base64 of a JSON status
 * (Google: {"status":"401","schemes":"Bearer","scope":...}; RFC 7628
 * §3.2.2). Keep its printable part for the log, then finish the
 * exchange: XOAUTH2 with an empty line, OAUTHBEARER with ^A (RFC 7628
 * §3.2.3); the server then answers 535. */
static void oauth_challenge(struct relay *r)
{
	unsigned char dec[BASE64_DECODED_MAX(RELAY_TEXT_MAX) + 1];
	const char *text = r->reply.text;
	long len = base64_decode(text, strlen(text), dec, sizeof(dec) - 1);
	size_t o = 0;

	for (long i = 0; i < len && o + 1 < sizeof(r->oauth_error); i++)
		if (dec[i] >= ' ' && dec[i] <= '~')
			r->oauth_error[o++] = (char)dec[i];
	r->oauth_error[o] = '\0';
	relay_send_line(r, R_AUTH_OAUTH_ERR, r->cfg->command_timeout_usec, "%s",
		  r->cfg->relay_auth_mech == RELAY_AUTH_OAUTHBEARER ? "AQ==" : "");
}

static void oauth_reply(struct relay *r)
{
	const char *mailbox = oauth_mailbox(r);
	int code = r->reply.code;

	if (code == 235 && r->state == R_AUTH_OAUTH) {
		r->authenticated = true;
		relay_after_ehlo(r);
		return;
	}
	if (code == 334 && r->state == R_AUTH_OAUTH) {
		oauth_challenge(r);
		return;
	}
	if (code >= 500 && code < 600) {
		/* Revoked, expired early, or the wrong mailbox: fetch anew
		 * (once; the supervisor runs authrelay-token). */
		relay_token_invalidate(mailbox);
		relay_fail_auth(r, "the smarthost refused the OAuth2 token for "
				"%s: %d %s%s%s; a new token is requested",
				mailbox, code, r->reply.text,
				r->oauth_error[0] ? " " : "", r->oauth_error);
		return;
	}
	relay_fail_auth(r, "AUTH with the OAuth2 token for %s failed: %d %s",
			mailbox, code, r->reply.text);
}

void relay_auth_start(struct relay *r)
{
	enum relay_auth_mech m = r->cfg->relay_auth_mech;

	if (m == RELAY_AUTH_XOAUTH2 || m == RELAY_AUTH_OAUTHBEARER)
		send_auth_oauth(r);
	else if (m != RELAY_AUTH_LOGIN && r->caps.auth_plain)
		send_auth_plain(r);
	else if (m != RELAY_AUTH_PLAIN && r->caps.auth_login)
		relay_send_line(r, R_AUTH_LOGIN_USER, r->cfg->command_timeout_usec,
			  "AUTH LOGIN");
	else if (m == RELAY_AUTH_AUTO)
		relay_fail(r, "no AUTH PLAIN or LOGIN offered");
	else
		relay_fail(r, "AUTH %s not offered",
			   m == RELAY_AUTH_PLAIN ? "PLAIN" : "LOGIN");
}

/* A complete reply to one of our AUTH commands. */
void relay_auth_reply(struct relay *r)
{
	int code = r->reply.code;

	switch (r->state) {
	case R_AUTH_LOGIN_USER:
	case R_AUTH_LOGIN_PASS:
		if (code != 334) {
			relay_fail(r, "AUTH LOGIN refused: %d %s", code,
				   r->reply.text);
			return;
		}
		send_login_secret(r, r->state == R_AUTH_LOGIN_PASS);
		return;
	case R_AUTH_OAUTH:
	case R_AUTH_OAUTH_ERR:
		oauth_reply(r);
		return;
	case R_AUTH:
		if (code != 235) {
			relay_fail(r, "our credential was refused: %d %s", code,
				   r->reply.text);
			return;
		}
		r->authenticated = true;
		relay_after_ehlo(r);
		return;
	default:
		relay_fail(r, "unexpected reply %d", code);
		return;
	}
}
