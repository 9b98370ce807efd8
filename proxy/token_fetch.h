/* OAuth2 access tokens on the privileged side (the supervisor).
 *
 * With [relay] auth_mechanism = xoauth2 or oauthbearer, the supervisor
 * runs authrelay-token (oauth2/token.c: the only program that links
 * libcurl, and the only one that reads the client secret or private key)
 * once per fetch, as a child process off the event loop, and hands each
 * access token to the network process over the control channel:
 *
 *   supervisor -> network   TOKEN <mailbox> <expires_in> <token>
 *   network -> supervisor   TOKEN-REQUEST <mailbox>   (a miss, or a token
 *                                                     the smarthost refused)
 *
 * The fixed mailbox ([relay] auth_user) is fetched at start and at every
 * reload, and again halfway through the token's usable life; with
 * auth_user = @sender each user's mailbox is fetched when the network
 * process asks. A failed fetch is logged with its reason and retried with
 * back-off (TEMPFAIL: 5 s doubling to 5 min; PERMFAIL: 5 min); fetches of
 * one mailbox are at least TOKEN_MIN_INTERVAL apart. */
#ifndef AUTHRELAY_TOKEN_FETCH_H
#define AUTHRELAY_TOKEN_FETCH_H

#include <stdbool.h>

#include <systemd/sd-event.h>

#include "config.h"

struct token_fetcher;

struct token_fetcher *token_fetcher_new(sd_event *event, int ctl);
void token_fetcher_free(struct token_fetcher **tf);
/* At start and at reload: cfg (kept until the next call) and a memfd
 * holding its text for authrelay-token (dup'ed). Does nothing unless an
 * OAuth2 mechanism is configured. */
void token_fetcher_configure(struct token_fetcher *tf, const struct config *cfg,
			     int config_fd);
/* "TOKEN-REQUEST <mailbox>" from the network process (untrusted). */
void token_fetcher_request(struct token_fetcher *tf, const char *mailbox);

/* A mailbox as the channel carries it: 1..256 printable ASCII octets
 * without space, with an '@'. */
bool token_mailbox_valid(const char *mailbox);

#endif
