#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "header_scan.h"
#include "test.h"

/* Feed msg in chunks of `chunk` octets; return "F=value|S=value|M=value"
 * for the kept fields, "OVERFLOW" if marked. */
static void scan(const char *msg, size_t chunk, char *out, size_t size)
{
	struct header_scan hs;
	size_t len = strlen(msg), o = 0;

	header_scan_init(&hs);
	for (size_t i = 0; i < len; i += chunk)
		header_scan_feed(&hs, msg + i, len - i < chunk ? len - i : chunk);
	header_scan_finish(&hs);
	out[0] = '\0';
	for (size_t i = 0; i < hs.n; i++)
		o += (size_t)snprintf(out + o, size - o, "%c=%s|",
				      "FSM"[hs.v[i].field], hs.v[i].value);
	if (hs.overflow)
		snprintf(out + o, size - o, "OVERFLOW");
	header_scan_free(&hs);
}

int main(void)
{
	static const struct {
		const char *name, *msg, *want;
	} cases[] = {
		{ "simple", "From: a@b\r\nTo: c@d\r\n\r\nbody\r\n", "F= a@b|" },
		{ "our prepended fields are not kept",
		  "Received: from x\r\n\tby y\r\nX-Authenticated-User: u\r\n"
		  "From: a@b\r\n\r\n", "F= a@b|" },
		{ "folded From is unfolded",
		  "From: \"Doe, J\"\r\n <j@x>\r\n\r\n", "F= \"Doe, J\" <j@x>|" },
		{ "case and space before colon", "fROM : a@b\r\nSENDER:s@t\r\n\r\n",
		  "F= a@b|S=s@t|" },
		{ "two From fields both kept", "From: a@b\r\nFrom: c@d\r\n\r\n",
		  "F= a@b|F= c@d|" },
		{ "first Message-ID only",
		  "Message-ID: <1@x>\r\nMessage-Id: <2@x>\r\n\r\n", "M= <1@x>|" },
		{ "From in the body is not a header",
		  "Subject: x\r\n\r\nFrom: evil@x\r\n", "" },
		{ "From-Foo is another field", "From-Foo: a@b\r\nFromx: c\r\n\r\n", "" },
		{ "message ending inside headers", "From: a@b", "F= a@b|" },
		{ "no headers at all", "\r\nbody\r\n", "" },
	};
	char out[20000];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t chunk = 1; chunk <= strlen(cases[i].msg) + 1; chunk++) {
			scan(cases[i].msg, chunk, out, sizeof(out));
			CHECK(strcmp(out, cases[i].want) == 0,
			      "%s (chunk %zu): got \"%s\", want \"%s\"",
			      cases[i].name, chunk, out, cases[i].want);
		}
	}

	/* Bounds: an over-long From: or too many of them overflow; a long
	 * field we do not keep does not. */
	{
		size_t n = HEADER_SCAN_FIELD_MAX + 100;
		char *msg = malloc(n + 64);

		strcpy(msg, "From: ");
		memset(msg + 6, 'a', n);
		strcpy(msg + 6 + n, "@b\r\n\r\n");
		scan(msg, 4096, out, sizeof(out));
		CHECK_STR(out, "OVERFLOW", "over-long From");
		memcpy(msg, "X-Big:", 6);
		scan(msg, 4096, out, sizeof(out));
		CHECK_STR(out, "", "over-long other field");
		free(msg);
	}
	{
		char msg[2000] = "";

		for (int i = 0; i < HEADER_SCAN_FIELDS + 1; i++)
			strcat(msg, "From: a@b\r\n");
		strcat(msg, "\r\n");
		scan(msg, 7, out, sizeof(out));
		CHECK(strstr(out, "OVERFLOW") != NULL,
		      "too many From fields: got \"%s\"", out);
	}
	/* A NUL in a kept value: len counts every octet of the value and
	 * the copy holds them all, followed by a NUL (the copy used to stop
	 * at the NUL while len counted the whole value). The first input is
	 * the fuzz reproducer as found (its first octet is the harness's
	 * split choice: as a message, "\0From" is no From field). */
	{
		static const struct {
			const char *name;
			const char *msg;
			size_t msg_len;
			size_t n;		/* fields kept */
			const char *value;	/* the first one's octets */
			size_t len;
		} nul_cases[] = {
			{ "NUL before the name", "\0From: a\0bc\r\n\r\n", 16,
			  0, "", 0 },
			{ "NUL in the From value", "From: a\0bc\r\n\r\n", 15,
			  1, " a\0bc", 5 },
			{ "NUL in a folded Sender value",
			  "Sender: x\r\n \0y\0\r\n\r\n", 20, 1, " x \0y\0", 6 },
			{ "NUL ending the headers", "From: a\0", 8, 1, " a\0", 3 },
		};

		for (size_t i = 0; i < sizeof(nul_cases) / sizeof(nul_cases[0]);
		     i++) {
			for (size_t chunk = 1; chunk <= nul_cases[i].msg_len;
			     chunk++) {
				struct header_scan hs;
				const char *m = nul_cases[i].msg;
				size_t ml = nul_cases[i].msg_len;

				header_scan_init(&hs);
				for (size_t o = 0; o < ml; o += chunk)
					header_scan_feed(&hs, m + o, ml - o < chunk ?
							 ml - o : chunk);
				header_scan_finish(&hs);
				CHECK_INT(hs.n, nul_cases[i].n, nul_cases[i].name);
				if (hs.n > 0 && nul_cases[i].n > 0) {
					CHECK_INT(hs.v[0].len, nul_cases[i].len,
						  nul_cases[i].name);
					CHECK(hs.v[0].len == nul_cases[i].len &&
					      memcmp(hs.v[0].value, nul_cases[i].value,
						     nul_cases[i].len) == 0 &&
					      hs.v[0].value[hs.v[0].len] == '\0',
					      "%s (chunk %zu): value octets differ",
					      nul_cases[i].name, chunk);
				}
				header_scan_free(&hs);
			}
		}
	}
	return test_done("test_header_scan");
}
