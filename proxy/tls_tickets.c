#include "autoconf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tls_tickets.h"
#include "xalloc.h"

#define TICKET_NAME_LEN 16
#define TICKET_KEY_LEN 32

struct ticket_key {
	bool valid;
	uint64_t created;		/* CLOCK_MONOTONIC, usec */
	unsigned char name[TICKET_NAME_LEN];
	unsigned char aes[TICKET_KEY_LEN];	/* AES-256-CBC */
	unsigned char hmac[TICKET_KEY_LEN];	/* HMAC-SHA256 */
};

struct tls_tickets {
	pthread_mutex_t lock;
	uint64_t lifetime;
	struct ticket_key cur, prev;
};

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void tickets_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
			 int idx, long argl, void *argp)
{
	struct tls_tickets *t = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	explicit_bzero(t, sizeof(*t));
	free(t);
}

static void ex_init(void)
{
	ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tickets_free);
}

static int key_new(struct ticket_key *k, uint64_t now)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 ||
	    RAND_priv_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_priv_bytes(k->hmac, sizeof(k->hmac)) != 1) {
		explicit_bzero(k, sizeof(*k));
		return -1;
	}
	k->created = now;
	k->valid = true;
	return 0;
}

/* The current key encrypts for one lifetime, then opens tickets for one
 * more as the previous key; older keys are wiped. */
static void rotate(struct tls_tickets *t, uint64_t now)
{
	struct ticket_key fresh;

	if (t->prev.valid && now - t->prev.created >= 2 * t->lifetime)
		explicit_bzero(&t->prev, sizeof(t->prev));
	if (t->cur.valid && now - t->cur.created < t->lifetime)
		return;
	if (key_new(&fresh, now) < 0)
		return;		/* keep what we have; tried again next time */
	if (t->cur.valid && now - t->cur.created < 2 * t->lifetime)
		t->prev = t->cur;
	else
		explicit_bzero(&t->prev, sizeof(t->prev));
	t->cur = fresh;
	explicit_bzero(&fresh, sizeof(fresh));
}

/* SSL_CTX_set_tlsext_ticket_key_evp_cb: enc 1, a new ticket (fill the
 * name and IV); enc 0, open one: 2 good and renew it (with the current
 * key), 0 unknown key (a full handshake follows), -1 error. */
static int ticket_cb(SSL *ssl, unsigned char name[TICKET_NAME_LEN],
		     unsigned char *iv, EVP_CIPHER_CTX *cctx,
		     EVP_MAC_CTX *hctx, int enc)
{
	struct tls_tickets *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
						    ex_index);
	struct ticket_key k = { 0 };
	OSSL_PARAM params[3];
	int ret = 0;

	if (t == NULL)
		return enc ? -1 : 0;
	pthread_mutex_lock(&t->lock);
	rotate(t, now_usec());
	if (enc) {
		if (t->cur.valid) {
			k = t->cur;
			ret = 1;
		}
	} else if (t->cur.valid &&
		   memcmp(name, t->cur.name, TICKET_NAME_LEN) == 0) {
		/* Renewed all the same: a TLS 1.3 client uses a ticket
		 * once (RFC 8446 §C.4), so a resumed session that got no
		 * new one would be followed by a full handshake. */
		k = t->cur;
		ret = 2;
	} else if (t->prev.valid &&
		   memcmp(name, t->prev.name, TICKET_NAME_LEN) == 0) {
		k = t->prev;
		ret = 2;
	}
	pthread_mutex_unlock(&t->lock);
	if (ret == 0) {
		explicit_bzero(&k, sizeof(k));
		return enc ? -1 : 0;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
						      k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		memcpy(name, k.name, TICKET_NAME_LEN);
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc()))
		    != 1 ||
		    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes,
				       iv) != 1)
			ret = -1;
	} else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes,
				      iv) != 1) {
		ret = -1;
	}
	if (ret > 0 && EVP_MAC_CTX_set_params(hctx, params) != 1)
		ret = -1;
	explicit_bzero(&k, sizeof(k));
	return ret;
}

int tls_tickets_setup(SSL_CTX *ctx, uint64_t lifetime_usec)
{
	struct tls_tickets *t;

	if (lifetime_usec == 0) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		return 0;
	}
	pthread_once(&ex_once, ex_init);
	if (ex_index < 0)
		return -1;
	t = xcalloc(1, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->lifetime = lifetime_usec;
	rotate(t, now_usec());
	if (!t->cur.valid || SSL_CTX_set_ex_data(ctx, ex_index, t) != 1) {
		tickets_free(NULL, t, NULL, 0, 0, NULL);
		return -1;
	}
	/* Stateless only: no server-side session store to fill (memory,
	 * and a lock every thread would take). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* A resumed session is good for one lifetime, as its ticket. */
	SSL_CTX_set_timeout(ctx, (long)((lifetime_usec + 999999) / 1000000));
	/* RFC 8446 §4.6.1: one ticket per handshake is enough for a mail
	 * client that reconnects; each costs an encryption and a record. */
	SSL_CTX_set_num_tickets(ctx, 1);
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1)
		return -1;
	return 0;
}
