/* The configuration parser (common/config.c), reading the text from a
 * memfd as the daemon reads its private snapshot (config_load_fd).
 *
 * Invariants beyond the sanitizers:
 * - a config is returned exactly when no error is reported;
 * - every error is one line, "fuzz.conf:LINE: message" or
 *   "fuzz.conf: message", LINE a number within the text's line count;
 * - parsing is deterministic: the same text gives the same errors. */
#define _GNU_SOURCE
#include "autoconf.h"

#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

#define NAME "fuzz.conf"

static int memfd_with(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);

	FUZZ_CHECK(fd >= 0, "memfd_create failed");
	FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size,
		   "memfd write failed");
	return fd;
}

static void check_errors(const struct config_errors *e, size_t lines)
{
	for (size_t i = 0; i < e->n; i++) {
		const char *m = e->msg[i];
		char *end;
		unsigned long ln;

		FUZZ_CHECK(strncmp(m, NAME ":", strlen(NAME) + 1) == 0,
			   "error without the file name: \"%s\"", m);
		FUZZ_CHECK(strchr(m, '\n') == NULL, "multi-line error: \"%s\"",
			   m);
		m += strlen(NAME) + 1;
		if (*m == ' ')
			continue;
		ln = strtoul(m, &end, 10);
		FUZZ_CHECK(end != m && *end == ':' && ln >= 1 && ln <= lines,
			   "error with a bad line number (%lu of %zu): \"%s\"",
			   ln, lines, e->msg[i]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_errors e1 = { 0 }, e2 = { 0 };
	struct config *c1, *c2;
	size_t lines = 1;
	int fd;

	if (size > 16384)
		return 0;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	fd = memfd_with(data, size);
	c1 = config_load_fd(NAME, fd, false, &e1);
	c2 = config_load_fd(NAME, fd, false, &e2);
	close(fd);
	FUZZ_CHECK((c1 != NULL) == (e1.n == 0), "config %p with %zu errors",
		   (void *)c1, e1.n);
	FUZZ_CHECK((c1 != NULL) == (c2 != NULL) && e1.n == e2.n,
		   "not deterministic: %zu then %zu errors", e1.n, e2.n);
	for (size_t i = 0; i < e1.n; i++)
		FUZZ_CHECK(strcmp(e1.msg[i], e2.msg[i]) == 0,
			   "not deterministic: \"%s\" then \"%s\"", e1.msg[i],
			   e2.msg[i]);
	check_errors(&e1, lines);
	config_free(&c1);
	config_free(&c2);
	config_errors_clear(&e1);
	config_errors_clear(&e2);
	return 0;
}
