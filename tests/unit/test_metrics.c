/* proxy/metrics.c: each verb moves exactly its sample, histogram
 * observations land in the right cumulative buckets, label values are
 * escaped, unknown label values past the table's size share "other",
 * and a text that does not fit is an error, not a cut answer. */
#include "autoconf.h"

#include <stdlib.h>

#include "auth_proto.h"
#include "metrics.h"
#include "test.h"

static char text[512 * 1024];

static void render(void)
{
	struct strbuf sb;

	strbuf_init(&sb, text, sizeof(text));
	CHECK_INT(metrics_render(&sb), 0, "metrics_render");
}

/* The value of the sample line "key VALUE", or -1 when absent. */
static double value(const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; *p != '\0';) {
		const char *eol = strchr(p, '\n');

		if (strncmp(p, key, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	return -1;
}

static void test_auth_results(void)
{
	static const struct {
		enum auth_backend backend;
		const char *reason;	/* refused with this reason */
		const char *key;
	} cases[] = {
		{ AUTH_BACKEND_PAM, AUTH_REASON_NOT_IN_GROUP,
		  "authrelay_auth_total{backend=\"pam\",result=\"not_in_group\"}" },
		{ AUTH_BACKEND_LDAP, AUTH_REASON_NOT_IN_GROUP,
		  "authrelay_auth_total{backend=\"ldap\",result=\"not_in_group\"}" },
		{ AUTH_BACKEND_LDAP, "invalid credentials",
		  "authrelay_auth_total{backend=\"ldap\",result=\"bad_credentials\"}" },
		{ AUTH_BACKEND_PAM, "empty password",
		  "authrelay_auth_total{backend=\"pam\",result=\"bad_credentials\"}" },
		{ AUTH_BACKEND_PAM, NULL,
		  "authrelay_auth_total{backend=\"pam\",result=\"bad_credentials\"}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double before;

		render();
		before = value(cases[i].key);
		metrics_auth_refused(cases[i].backend, cases[i].reason);
		render();
		CHECK(value(cases[i].key) == before + 1,
		      "case %zu: %s: got %g, want %g", i, cases[i].key,
		      value(cases[i].key), before + 1);
	}
}

static void test_histogram(void)
{
	static const struct {
		uint64_t usec;
		const char *le;		/* the smallest bucket that counts it */
	} cases[] = {
		{ 0, "0.005000" },
		{ 5000, "0.005000" },		/* le: less or equal */
		{ 5001, "0.010000" },
		{ 999999, "1.000000" },
		{ 60000000, "60.000000" },
		{ 60000001, "+Inf" },
	};
	static const char *const all[] = {
		"0.005000", "0.010000", "0.025000", "0.050000", "0.100000",
		"0.250000", "0.500000", "1.000000", "2.500000", "5.000000",
		"10.000000", "30.000000", "60.000000", "+Inf",
	};
	char key[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double before[sizeof(all) / sizeof(all[0])], count;
		bool reached = false;

		render();
		for (size_t b = 0; b < sizeof(all) / sizeof(all[0]); b++) {
			snprintf(key, sizeof(key), "authrelay_relay_duration_"
				 "seconds_bucket{le=\"%s\"}", all[b]);
			before[b] = value(key);
		}
		count = value("authrelay_relay_duration_seconds_count");
		metrics_message_relayed(1, 10, cases[i].usec);
		render();
		for (size_t b = 0; b < sizeof(all) / sizeof(all[0]); b++) {
			reached = reached || strcmp(all[b], cases[i].le) == 0;
			snprintf(key, sizeof(key), "authrelay_relay_duration_"
				 "seconds_bucket{le=\"%s\"}", all[b]);
			CHECK(value(key) == before[b] + (reached ? 1 : 0),
			      "%llu usec: bucket le=%s: got %g, want %g",
			      (unsigned long long)cases[i].usec, all[b],
			      value(key), before[b] + (reached ? 1 : 0));
		}
		CHECK(value("authrelay_relay_duration_seconds_count") ==
		      count + 1, "%llu usec: _count moved by %g, want 1",
		      (unsigned long long)cases[i].usec,
		      value("authrelay_relay_duration_seconds_count") - count);
	}
}

static void test_label_escaping(void)
{
	metrics_smarthost("we\"ird\\host\nname:25", METRICS_SMARTHOST_CONNECT);
	render();
	CHECK(value("authrelay_smarthost_connections_total"
		    "{host=\"we\\\"ird\\\\host\\nname:25\"}") == 1,
	      "an escaped label value: not found in\n%s", text);
}

static void test_label_overflow(void)
{
	char name[64], key[128];
	unsigned named = 0;

	/* test_label_escaping took one slot; 99 more hosts, 2 events each. */
	for (int i = 0; i < 99; i++) {
		snprintf(name, sizeof(name), "host%d:25", i);
		metrics_smarthost(name, METRICS_SMARTHOST_FAILURE);
		metrics_smarthost(name, METRICS_SMARTHOST_FAILURE);
	}
	render();
	for (int i = 0; i < 99; i++) {
		snprintf(key, sizeof(key), "authrelay_smarthost_failures_total"
			 "{host=\"host%d:25\"}", i);
		if (value(key) == 2)
			named++;
		else
			CHECK(value(key) == -1, "%s: got %g, want 2 or absent",
			      key, value(key));
	}
	/* 64 slots: the escaped one, 62 hosts, and "other" */
	CHECK_INT(named, 62, "hosts with a slot of their own");
	CHECK(value("authrelay_smarthost_failures_total{host=\"other\"}") ==
	      2 * (99 - 62), "other: got %g, want %d",
	      value("authrelay_smarthost_failures_total{host=\"other\"}"),
	      2 * (99 - 62));
}

static void test_too_small(void)
{
	char small[256];
	struct strbuf sb;

	strbuf_init(&sb, small, sizeof(small));
	CHECK_INT(metrics_render(&sb), -1, "metrics_render into 256 octets");
}

int main(void)
{
	test_auth_results();
	test_histogram();
	test_label_escaping();
	test_label_overflow();
	test_too_small();
	return test_done("test_metrics");
}
