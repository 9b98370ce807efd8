/* Access tokens for the smarthost (AUTH XOAUTH2 / OAUTHBEARER), one per
 * mailbox. The network process never fetches a token and never sees a
 * client secret or private key: the privileged supervisor runs
 * authrelay-token and hands each access token over with relay_token_set;
 * the relay takes them with relay_token_lookup. A miss, and a token the
 * smarthost rejected (relay_token_invalidate), call the request hook so
 * the supervisor fetches one (again) for that mailbox. Thread-safe: every
 * serving thread looks up, the channel from the supervisor sets. */
#ifndef AUTHRELAY_RELAY_TOKEN_H
#define AUTHRELAY_RELAY_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define RELAY_TOKEN_MAX 8192		/* octets, as authrelay-token */
#define RELAY_TOKEN_MAILBOX_MAX 256
#define RELAY_TOKEN_SLOTS 1024		/* mailboxes held at once */
/* A token this close to its expiry is not handed out any more. */
#define RELAY_TOKEN_MARGIN_USEC (30 * 1000000ULL)

/* Store (or replace) mailbox's token, valid until expiry_usec
 * (CLOCK_MONOTONIC). When the table is full the entry nearest to expiry
 * makes room. Returns 0, or -1 for a malformed mailbox or token. */
int relay_token_set(const char *mailbox, const char *token,
		    uint64_t expiry_usec);
/* Copy mailbox's token into buf (size octets). Returns 0; or -1 when
 * there is none, it is about to expire or buf is too small: then the
 * request hook is called for mailbox (at most once per second for each
 * mailbox) and buf holds "". */
int relay_token_lookup(const char *mailbox, char *buf, size_t size);
/* The smarthost refused mailbox's token: drop it (wiped) and call the
 * request hook, so the next lookup finds a freshly fetched one. */
void relay_token_invalidate(const char *mailbox);
/* Who fetches: called, without the table's lock held, from whichever
 * thread looked up or invalidated. NULL: nobody (lookups just miss). */
typedef void relay_token_request_fn(const char *mailbox, void *ctx);
void relay_token_set_request_hook(relay_token_request_fn *fn, void *ctx);
/* Drop every token (wiped): at reload when the [relay] credential
 * changed, and at exit. */
void relay_token_clear(void);

#endif
