/* Whose mail a user may send ([policy] sender_check) and at what rate
 * ([policy] user_rate, group_rate and their recipient forms). The user
 * is what authentication gave: its addresses and its groups. */
#ifndef AUTHRELAY_SENDER_POLICY_H
#define AUTHRELAY_SENDER_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct header_scan;

struct sender_user {
	char *const *addrs;
	size_t n_addrs;
	char *const *groups;
	size_t n_groups;
};

bool sender_policy_checks_envelope(const struct config *cfg);
bool sender_policy_checks_header(const struct config *cfg);

/* NULL if the MAIL FROM path (empty: the null sender) is the user's to
 * use, else the text of the 553 5.7.1 (in buf, or static). */
const char *sender_policy_envelope(const struct config *cfg,
				   const struct sender_user *u,
				   const char *path, char *buf, size_t size);
/* NULL if the From: and Sender: fields the scan kept are all the
 * user's and there is exactly one From:, else the text of the 553
 * 5.7.1 (in buf, or static). */
const char *sender_policy_header(const struct header_scan *hs,
				 const struct sender_user *u, char *buf,
				 size_t size);

/* The user's limit: the first group_rate (or group_recipient_rate)
 * entry whose group the user is in, else user_rate
 * (user_recipient_rate). */
const struct config_rate *sender_policy_rate(const struct config *cfg,
					     const struct sender_user *u,
					     bool recipients);

#endif
