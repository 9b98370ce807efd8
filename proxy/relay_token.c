#include "autoconf.h"

#include "relay_token.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "xalloc.h"

/* One hook call per mailbox and second at most: a burst of sessions for
 * a mailbox without a token must not queue a burst of fetches. */
#define REQUEST_INTERVAL_USEC 1000000ULL

struct slot {
	char mailbox[RELAY_TOKEN_MAILBOX_MAX + 1];	/* "" = free */
	char *token;			/* NULL: requested, none yet */
	size_t token_len;
	uint64_t expiry;
	uint64_t requested;		/* when the hook was last called */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[RELAY_TOKEN_SLOTS];
static relay_token_request_fn *request_fn;
static void *request_ctx;

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static bool mailbox_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > RELAY_TOKEN_MAILBOX_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s > '~')
			return false;
	return true;
}

/* RFC 6750 §2.1 b64token, as authrelay-token checks it too: nothing
 * that could end or split the SMTP line it goes into. */
static bool token_ok(const char *s, size_t n)
{
	if (n == 0 || n > RELAY_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') ||
		      strchr("-._~+/=", s[i]) != NULL))
			return false;
	return true;
}

static void slot_drop_token(struct slot *s)
{
	free_secret(s->token, s->token_len + 1);
	s->token = NULL;
	s->token_len = 0;
	s->expiry = 0;
}

/* Addresses compare without case: the domain is case-insensitive, and a
 * mailbox is the same one however the user typed it. */
static struct slot *find(const char *mailbox)
{
	for (size_t i = 0; i < RELAY_TOKEN_SLOTS; i++)
		if (slots[i].mailbox[0] != '\0' &&
		    strcasecmp(slots[i].mailbox, mailbox) == 0)
			return &slots[i];
	return NULL;
}

/* A free slot, else the one nearest to expiry (a requested slot with no
 * token yet counts as expired). */
static struct slot *find_or_make(const char *mailbox)
{
	struct slot *s = find(mailbox), *victim = NULL;

	if (s != NULL)
		return s;
	for (size_t i = 0; i < RELAY_TOKEN_SLOTS; i++) {
		if (slots[i].mailbox[0] == '\0') {
			victim = &slots[i];
			break;
		}
		if (victim == NULL || slots[i].expiry < victim->expiry)
			victim = &slots[i];
	}
	slot_drop_token(victim);
	victim->requested = 0;
	strcpy(victim->mailbox, mailbox);
	return victim;
}

int relay_token_set(const char *mailbox, const char *token,
		    uint64_t expiry_usec)
{
	size_t n = strlen(token);
	struct slot *s;

	if (!mailbox_ok(mailbox) || !token_ok(token, n))
		return -1;
	pthread_mutex_lock(&lock);
	s = find_or_make(mailbox);
	slot_drop_token(s);
	s->token = xstrdup(token);
	s->token_len = n;
	s->expiry = expiry_usec;
	pthread_mutex_unlock(&lock);
	return 0;
}

static void request(const char *mailbox, bool force)
{
	relay_token_request_fn *fn;
	void *ctx;
	bool call = false;
	uint64_t now = now_usec();
	struct slot *s;

	pthread_mutex_lock(&lock);
	fn = request_fn;
	ctx = request_ctx;
	s = find_or_make(mailbox);
	if (force || s->requested == 0 ||
	    now - s->requested >= REQUEST_INTERVAL_USEC) {
		s->requested = now;
		call = fn != NULL;
	}
	pthread_mutex_unlock(&lock);
	if (call)
		fn(mailbox, ctx);
}

int relay_token_lookup(const char *mailbox, char *buf, size_t size)
{
	struct slot *s;
	int ret = -1;

	if (size > 0)
		buf[0] = '\0';
	if (!mailbox_ok(mailbox))
		return -1;
	pthread_mutex_lock(&lock);
	s = find(mailbox);
	if (s != NULL && s->token != NULL &&
	    s->expiry > now_usec() + RELAY_TOKEN_MARGIN_USEC &&
	    s->token_len < size) {
		memcpy(buf, s->token, s->token_len + 1);
		ret = 0;
	}
	pthread_mutex_unlock(&lock);
	if (ret < 0)
		request(mailbox, false);
	return ret;
}

void relay_token_invalidate(const char *mailbox)
{
	struct slot *s;

	if (!mailbox_ok(mailbox))
		return;
	bool had;

	pthread_mutex_lock(&lock);
	s = find(mailbox);
	had = s != NULL && s->token != NULL;
	if (had)
		slot_drop_token(s);
	pthread_mutex_unlock(&lock);
	/* Many sessions may be refused the same token at once: only the
	 * first forces a refetch, the others wait like any miss. */
	request(mailbox, had);
}

void relay_token_set_request_hook(relay_token_request_fn *fn, void *ctx)
{
	pthread_mutex_lock(&lock);
	request_fn = fn;
	request_ctx = ctx;
	pthread_mutex_unlock(&lock);
}

void relay_token_clear(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < RELAY_TOKEN_SLOTS; i++) {
		slot_drop_token(&slots[i]);
		slots[i].mailbox[0] = '\0';
		slots[i].requested = 0;
	}
	pthread_mutex_unlock(&lock);
}
