#include "autoconf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "line_reader.h"
#include "test.h"

/* Feed input in chunks of `chunk` octets and collect what comes out:
 * lines as "L:<text>" and over-long lines as "TOO_LONG", joined by '|'. */
static bool release_between;	/* line_reader_release after each batch */

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
		if (release_between)
			line_reader_release(&lr);
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

	/* Every split of the input must give the same lines, whether the
	 * buffer is released whenever it is empty (an idle connection) or
	 * kept. */
	for (size_t i = 0; i < 2 * sizeof(cases) / sizeof(cases[0]); i++) {
		size_t c = i % (sizeof(cases) / sizeof(cases[0]));

		release_between = i >= sizeof(cases) / sizeof(cases[0]);
		for (size_t chunk = 1; chunk <= strlen(cases[c].input);
		     chunk++) {
			run(cases[c].input, strlen(cases[c].input), chunk,
			    cases[c].max_line + 8, cases[c].max_line, out,
			    sizeof(out));
			CHECK(strcmp(out, cases[c].want) == 0,
			      "%s (chunk %zu, release %d): got \"%s\", want \"%s\"",
			      cases[c].name, chunk, release_between, out, cases[c].want);
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
	/* Idle: released, nothing held; the next input allocates again.
	 * DATA: a bigger buffer keeps what is buffered; going back to the
	 * command size waits for the buffer to empty. */
	{
		struct line_reader lr;
		size_t avail;
		char *line, *p;
		size_t n;

		line_reader_init(&lr, 64, 32);
		CHECK(lr.buf == NULL, "a new reader holds no buffer");
		CHECK_INT(line_reader_room(&lr), 64, "room before any input");
		p = line_reader_space(&lr, &avail);
		CHECK_INT(avail, 64, "space when first asked");
		memcpy(p, "NOOP\r\nDATA\r\nSubj", 16);
		line_reader_commit(&lr, 16);
		CHECK_INT(line_reader_next(&lr, &line, &n), LINE_OK, "NOOP");
		line_reader_release(&lr);
		CHECK(lr.buf != NULL, "released while holding input");
		line_reader_set_size(&lr, 4096);
		CHECK_INT(lr.cap, 4096, "grown at once");
		CHECK_INT(line_reader_next(&lr, &line, &n), LINE_OK, "DATA");
		CHECK_STR(line, "DATA", "the line after growing");
		CHECK_INT(line_reader_pending(&lr), 4, "octets kept on growing");
		line_reader_set_size(&lr, 64);
		CHECK_INT(lr.cap, 4096, "shrinking waits for a release");
		line_reader_consume(&lr, 4);
		line_reader_release(&lr);
		CHECK(lr.buf == NULL, "released once empty");
		CHECK_INT(line_reader_room(&lr), 64, "shrunk on release");
		CHECK_INT(line_reader_next(&lr, &line, &n), LINE_NONE,
			  "no line from a released reader");
		line_reader_free(&lr);
	}
	return test_done("test_line_reader");
}
