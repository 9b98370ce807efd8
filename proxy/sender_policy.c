#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "header_addr.h"
#include "header_scan.h"
#include "sender_policy.h"

static bool owns_address(const struct sender_user *u, const char *addr)
{
	for (size_t i = 0; i < u->n_addrs; i++)
		if (header_addr_equal(addr, u->addrs[i], 1))
			return true;
	return false;
}

bool sender_policy_checks_envelope(const struct config *cfg)
{
	return cfg->sender_check == SENDER_CHECK_ENVELOPE ||
	       cfg->sender_check == SENDER_CHECK_BOTH;
}

bool sender_policy_checks_header(const struct config *cfg)
{
	return cfg->sender_check == SENDER_CHECK_HEADER ||
	       cfg->sender_check == SENDER_CHECK_BOTH;
}

/* "WHAT <address> is not yours". RFC 5321 §4.2.1: reply text is ASCII;
 * an address holding anything else (an RFC 6531 mailbox, which
 * SMTPUTF8 lets through) is not repeated in it. */
static const char *not_yours(char *buf, size_t size, const char *what,
			     const char *addr)
{
	bool ascii = true;

	for (const char *p = addr; *p != '\0'; p++)
		ascii = ascii && *p >= 0x20 && *p < 0x7f;
	if (ascii)
		snprintf(buf, size, "%s <%.200s> is not yours", what, addr);
	else
		snprintf(buf, size, "%s is not yours", what);
	return buf;
}

const char *sender_policy_envelope(const struct config *cfg,
				   const struct sender_user *u,
				   const char *path, char *buf, size_t size)
{
	if (!sender_policy_checks_envelope(cfg))
		return NULL;
	if (path[0] == '\0')
		return cfg->allow_null_sender ? NULL :
		       "Null sender not permitted for submission";
	if (owns_address(u, path))
		return NULL;
	return not_yours(buf, size, "Sender address", path);
}

const char *sender_policy_header(const struct header_scan *hs,
				 const struct sender_user *u, char *buf,
				 size_t size)
{
	unsigned n_from = 0;

	if (hs->overflow)
		return "Header section too unusual to check the sender";
	for (size_t i = 0; i < hs->n; i++) {
		const struct header_scan_value *v = &hs->v[i];
		const char *name = v->field == HS_FROM ? "From" : "Sender";
		/* not "= { 0 }": that clears every slot, 10,000 instructions
		 * per header field (RESULTS.md, B) */
		struct header_addrs a;

		a.n = 0;
		if (v->field == HS_MESSAGE_ID)
			continue;
		if (v->field == HS_FROM)
			n_from++;
		if (header_addr_parse(v->value, v->len, &a) < 0 || a.n == 0) {
			snprintf(buf, size, "Cannot parse the %s: header",
				 name);
			return buf;
		}
		/* RFC 5322 §3.6.2: Sender: is one mailbox. */
		if (v->field == HS_SENDER && a.n != 1)
			return "Sender: must name one mailbox";
		for (size_t j = 0; j < a.n; j++) {
			if (!owns_address(u, a.addr[j]))
				return not_yours(buf, size, v->field == HS_FROM ?
						 "From: address" :
						 "Sender: address", a.addr[j]);
		}
	}
	/* RFC 5322 §3.6: exactly one From:. Two would let a mail reader
	 * show the one nobody checked. */
	if (n_from == 0)
		return "Message has no From: header";
	if (n_from > 1)
		return "Message has more than one From: header";
	return NULL;
}

const struct config_rate *sender_policy_rate(const struct config *cfg,
					     const struct sender_user *u,
					     bool recipients)
{
	const struct config_group_rate *g = recipients ?
		cfg->group_recipient_rate : cfg->group_rate;
	size_t n = recipients ? cfg->n_group_recipient_rate : cfg->n_group_rate;

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < u->n_groups; j++)
			if (strcmp(g[i].group, u->groups[j]) == 0)
				return &g[i].rate;
	return recipients ? &cfg->user_recipient_rate : &cfg->user_rate;
}
