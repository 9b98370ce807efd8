#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "relay_targets.h"
#include "settings.h"
#include "shared_state.h"
#include "xalloc.h"

struct stats stats;

static pthread_mutex_t settings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct settings *current_settings;

struct settings *settings_get(void)
{
	struct settings *st;

	pthread_mutex_lock(&settings_lock);
	st = current_settings;
	if (st != NULL)
		atomic_fetch_add(&st->refs, 1);
	pthread_mutex_unlock(&settings_lock);
	return st;
}

void settings_put(struct settings **stp)
{
	struct settings *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	if (atomic_fetch_sub(&st->refs, 1) == 1) {
		SSL_CTX_free(st->ssl_ctx);
		SSL_CTX_free(st->relay_ssl_ctx);
		relay_targets_free(&st->relay_targets);
		shared_params_free(&st->shared);
		if (st->relay_secret != NULL)
			free_secret(st->relay_secret,
				    strlen(st->relay_secret) + 1);
		config_free(&st->cfg);
		free(st);
	}
}

void settings_publish(struct settings *st)
{
	struct settings *old;

	pthread_mutex_lock(&settings_lock);
	old = current_settings;
	current_settings = st;
	pthread_mutex_unlock(&settings_lock);
	settings_put(&old);
}
