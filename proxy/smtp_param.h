/* ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2), and the values
 * of those the relay passes on: SIZE (RFC 1870), NOTIFY and ORCPT
 * (RFC 3461), xtext. Used by smtp_cmd.c (and its header, for
 * SMTP_XTEXT_MAX). */
#ifndef AUTHRELAY_SMTP_PARAM_H
#define AUTHRELAY_SMTP_PARAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_XTEXT_MAX 512	/* ENVID, ORCPT values */

struct smtp_param {
	const char *key;
	size_t key_len;
	const char *value;	/* NULL when there is no "=" */
	size_t value_len;
};

/* The next esmtp-param at *pp, after its separating spaces (RFC 5321
 * §4.1.2). Returns 1, 0 at the end of the line, -1 on bad syntax. */
int smtp_param_next(const char **pp, struct smtp_param *prm);

/* Index of the parameter's keyword in names (upper case, NULL-ended),
 * or -1. */
int smtp_param_index(const struct smtp_param *prm, const char *const *names);

bool smtp_param_value_is(const struct smtp_param *prm, const char *upper);

/* RFC 3461 §4: xtext = *( xchar / hexchar ), xchar = "!".."~" except
 * "+" and "=", hexchar = "+" two upper-case hex digits. */
bool smtp_param_is_xtext(const char *s, size_t len);

/* Copies an xtext value of at most SMTP_XTEXT_MAX octets into out. */
bool smtp_param_copy_xtext(const struct smtp_param *prm, char *out);

/* RFC 1870: size-value = 1*20DIGIT, here also within uint64_t. */
bool smtp_param_size(const struct smtp_param *prm, uint64_t *size);

/* RFC 3461 §4.1: NOTIFY="NEVER" / 1#( "SUCCESS" / "FAILURE" /
 * "DELAY" ); stored upper case, in the client's order. */
bool smtp_param_notify(const struct smtp_param *prm, char *out, size_t size);

/* RFC 3461 §4.2: ORCPT=addr-type ";" xtext. */
bool smtp_param_orcpt(const struct smtp_param *prm, char *out);

#endif
