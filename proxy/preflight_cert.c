#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "check_line.h"
#include "preflight_cert.h"
#include "tls.h"

/* A certificate with fewer days left than this is a warning. */
#define CERT_WARN_DAYS 21
#define CERT_CHAIN_MAX 16
#define NAMES_MAX 8

/* --- [tls] certificates --- */

/* "DNS:a, DNS:b, IP:..." of the subjectAltName, or the subject CN. */
static void cert_names(X509 *x, char *buf, size_t size)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
					       NULL);
	size_t o = 0;
	int n = sans != NULL ? sk_GENERAL_NAME_num(sans) : 0;

	buf[0] = '\0';
	for (int i = 0; i < n && i < NAMES_MAX && o + 1 < size; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

		if (g->type == GEN_DNS)
			o += (size_t)snprintf(buf + o, size - o, "%s%.*s",
				o > 0 ? ", " : "",
				ASN1_STRING_length(g->d.dNSName),
				(const char *)ASN1_STRING_get0_data(
					g->d.dNSName));
	}
	GENERAL_NAMES_free(sans);
	if (o == 0)
		X509_NAME_oneline(X509_get_subject_name(x), buf, (int)size);
	else if (n > NAMES_MAX && o + 6 < size)
		snprintf(buf + o, size - o, ", ...");
}

static void subject(X509 *x, char *buf, size_t size)
{
	X509_NAME_oneline(X509_get_subject_name(x), buf, (int)size);
}

/* The leaf up to a root: first with this system's trust store and the
 * file's other certificates as intermediates; failing that, with a
 * self-signed root the file itself holds (a private CA: complete, but
 * only for clients that trust it). Time is checked apart. */
static void check_chain(const char *what, X509 *leaf, STACK_OF(X509) *rest)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vc = X509_STORE_CTX_new();
	X509 *root = NULL;
	char name[256];
	int err = X509_V_OK;

	if (store == NULL || vc == NULL) {
		check_line(CHECK_FAIL, "%s: chain: out of memory", what);
		goto out;
	}
	X509_STORE_set_default_paths(store);
	X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME);
	if (X509_STORE_CTX_init(vc, store, leaf, rest) == 1 &&
	    X509_verify_cert(vc) == 1) {
		STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(vc);

		subject(sk_X509_value(chain, sk_X509_num(chain) - 1), name,
			sizeof(name));
		check_line(CHECK_OK, "%s: chain complete, verified up to %s "
			   "in the system trust store", what, name);
		goto out;
	}
	err = X509_STORE_CTX_get_error(vc);
	X509_STORE_CTX_cleanup(vc);
	for (int i = 0; i < sk_X509_num(rest); i++) {
		X509 *c = sk_X509_value(rest, i);

		if (X509_check_issued(c, c) == X509_V_OK)
			root = c;
	}
	if (root != NULL) {
		X509_STORE *own = X509_STORE_new();

		X509_STORE_add_cert(own, root);
		X509_STORE_set_flags(own, X509_V_FLAG_NO_CHECK_TIME);
		if (X509_STORE_CTX_init(vc, own, leaf, rest) == 1 &&
		    X509_verify_cert(vc) == 1) {
			subject(root, name, sizeof(name));
			check_line(CHECK_OK, "%s: chain complete up to the root "
				   "%s that the file holds (not in this system's "
				   "trust store: clients must trust it)", what,
				   name);
			X509_STORE_free(own);
			goto out;
		}
		err = X509_STORE_CTX_get_error(vc);
		X509_STORE_free(own);
	}
	check_line(CHECK_FAIL, "%s: chain does not verify: %s (the file "
		   "must hold the leaf and every intermediate up to a trusted "
		   "root)", what, X509_verify_cert_error_string(err));
out:
	X509_STORE_CTX_free(vc);
	X509_STORE_free(store);
	ERR_clear_error();
}

static void check_dates(const char *what, X509 *leaf)
{
	const ASN1_TIME *after = X509_get0_notAfter(leaf);
	const ASN1_TIME *before = X509_get0_notBefore(leaf);
	int days = 0, secs = 0;
	char until[64] = "?";
	BIO *b = BIO_new(BIO_s_mem());

	if (b != NULL && ASN1_TIME_print(b, after) == 1) {
		int n = BIO_read(b, until, sizeof(until) - 1);

		until[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	if (X509_cmp_current_time(before) > 0) {
		check_line(CHECK_FAIL, "%s: not valid yet", what);
		return;
	}
	if (X509_cmp_current_time(after) <= 0) {
		check_line(CHECK_FAIL, "%s: expired on %s", what, until);
		return;
	}
	ASN1_TIME_diff(&days, &secs, NULL, after);
	check_line(days < CERT_WARN_DAYS ? CHECK_WARN : CHECK_OK,
		   "%s: valid until %s (%d day%s left)", what, until, days,
		   days == 1 ? "" : "s");
}

void preflight_check_certificate(const struct config *cfg,
			      const struct bundle *b,
			      const struct config_tls_pair *p)
{
	STACK_OF(X509) *rest = sk_X509_new_null();
	char what[600], names[512];
	BIO *bio = tls_bundle_bio(b, p->cert);
	X509 *leaf = NULL, *x;

	snprintf(what, sizeof(what), "certificate %s", p->cert);
	if (bio != NULL)
		leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	while (leaf != NULL && sk_X509_num(rest) < CERT_CHAIN_MAX &&
	       (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		sk_X509_push(rest, x);
	BIO_free(bio);
	ERR_clear_error();
	if (leaf == NULL) {
		check_line(CHECK_FAIL, "%s: cannot be read", what);
		sk_X509_pop_free(rest, X509_free);
		return;
	}
	/* tls_server_ctx_new() loaded the pair and checked the key. */
	check_line(CHECK_OK, "%s: loads, key %s matches", what, p->key);
	check_chain(what, leaf, rest);
	check_dates(what, leaf);
	cert_names(leaf, names, sizeof(names));
	if (X509_check_host(leaf, cfg->hostname, 0, 0, NULL) == 1)
		check_line(CHECK_OK, "%s: covers [server] hostname %s", what,
			   cfg->hostname);
	else
		check_line(CHECK_FAIL, "%s: does not cover [server] hostname "
			   "%s (it names %s)", what, cfg->hostname, names);
	X509_free(leaf);
	sk_X509_pop_free(rest, X509_free);
}
