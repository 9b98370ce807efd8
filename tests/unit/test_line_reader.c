#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "line_reader.h"
#include "test.h"

/* Feed input in chunks of `chunk` octets and collect what comes out:
 * lines as "L:<text>" and over-long lines as "TOO_LONG", joined by '|'. */
static void run(const char *input, size_t len, size_t chunk, size_t cap,
		size_t max_line, char *out, size_t outsize)
{
	struct line_reader lr;
	size_t off = 0;

	out[0] = '\0';
	line_reader_init(&lr, cap, max_line);
	for (int guard = 0; guard < 100000; guard++) {
		enum line_status st;
		char *line;
		size_t n;

		while ((st = line_reader_next(&lr, &line, &n)) != LINE_NONE) {
			size_t used = strlen(out);

			if (st == LINE_TOO_LONG)
				snprintf(out + used, outsize - used, "TOO_LONG|");
			else
				snprintf(out + used, outsize - used, "L:%.*s|",
					 (int)n, line);
		}
		if (off >= len)
			break;
		size_t avail;
		char *p = line_reader_space(&lr, &avail);
		size_t take = len - off < chunk ? len - off : chunk;
		if (take > avail)
			take = avail;
		CHECK(avail > 0, "no space with %zu octets left to feed",
		      len - off);
		if (avail == 0)
			break;
		memcpy(p, input + off, take);
		line_reader_commit(&lr, take);
		off += take;
	}
	line_reader_free(&lr);
}

int main(void)
{
	static const struct {
		const char *name;
		const char *input;
		size_t max_line;
		const char *want;
	} cases[] = {
		{ "one CRLF line", "EHLO x\r\n", 20, "L:EHLO x|" },
		{ "bare LF ends a command line", "NOOP\nQUIT\r\n", 20,
		  "L:NOOP|L:QUIT|" },
		{ "partial line stays", "NOOP\r\nQU", 20, "L:NOOP|" },
		{ "empty line", "\r\n", 20, "L:|" },
		{ "exactly max", "0123456789\r\n", 10, "L:0123456789|" },
		{ "max + 1", "01234567890\r\nNOOP\r\n", 10,
		  "TOO_LONG|L:NOOP|" },
		{ "long without CRLF then line", "0123456789012345678901234\r\nNOOP\r\n",
		  10, "TOO_LONG|L:NOOP|" },
		{ "CR inside is kept", "A\rB\r\n", 20, "L:A\rB|" },
		{ "two long lines", "aaaaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nok\n",
		  10, "TOO_LONG|TOO_LONG|L:ok|" },
	};
	char out[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Every split of the input must give the same lines. */
		for (size_t chunk = 1; chunk <= strlen(cases[i].input);
		     chunk++) {
			run(cases[i].input, strlen(cases[i].input), chunk,
			    cases[i].max_line + 8, cases[i].max_line, out,
			    sizeof(out));
			CHECK(strcmp(out, cases[i].want) == 0,
			      "%s (chunk %zu): got \"%s\", want \"%s\"",
			      cases[i].name, chunk, out, cases[i].want);
		}
	}

	/* A 1 MiB line through a 1 KiB buffer: one TOO_LONG, then the next
	 * command; memory stays the buffer's. */
	{
		size_t big = 1 << 20;
		char *in = malloc(big + 16);

		memset(in, 'x', big);
		memcpy(in + big, "\r\nNOOP\r\n", 8);
		run(in, big + 8, 4096, 1024, 1000, out, sizeof(out));
		CHECK_STR(out, "TOO_LONG|L:NOOP|", "1 MiB line");
		free(in);
	}

	/* 1000-octet limit as the session uses it: 998 content + CRLF. */
	{
		char in[1100];

		memset(in, 'a', 998);
		memcpy(in + 998, "\r\n", 2);
		run(in, 1000, 7, 1100, 998, out, sizeof(out));
		CHECK(strncmp(out, "L:aaa", 5) == 0 && strlen(out) == 998 + 3,
		      "998-octet line: got %zu octets of output", strlen(out));
		memset(in, 'a', 999);
		memcpy(in + 999, "\r\n", 2);
		run(in, 1001, 7, 1100, 998, out, sizeof(out));
		CHECK_STR(out, "TOO_LONG|", "999-octet line");
	}

	/* STARTTLS: clear drops everything pipelined. */
	{
		struct line_reader lr;
		size_t avail;
		char *line, *p;
		size_t n;

		line_reader_init(&lr, 64, 32);
		p = line_reader_space(&lr, &avail);
		memcpy(p, "STARTTLS\r\nEHLO evil\r\n", 21);
		line_reader_commit(&lr, 21);
		CHECK_INT(line_reader_next(&lr, &line, &n), LINE_OK, "first line");
		line_reader_clear(&lr);
		CHECK_INT(line_reader_next(&lr, &line, &n), LINE_NONE,
			  "after clear");
		CHECK_INT(line_reader_pending(&lr), 0, "pending after clear");
		line_reader_free(&lr);
	}
	return test_done("test_line_reader");
}
