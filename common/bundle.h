/* A bundle: a config text and the contents of the files it names, read
 * by the privileged side and handed to unprivileged processes in memory
 * (one sealed memfd), so that they never open a key or a secret.
 *
 * Layout of the memfd (integers big-endian):
 *   "ARBUNDLE1\n"
 *   then entries until the end: u32 name length, name, u32 data length,
 *   data. Names are the paths as the config spells them; the entry named
 *   BUNDLE_CONFIG holds the config text. At most BUNDLE_MAX_ENTRIES
 *   entries and BUNDLE_MAX_SIZE octets in all; a name holds no NUL.
 *
 * Who owns what: a bundle owns copies of everything added; bundle_free()
 * wipes them (they may be private keys). */
#ifndef AUTHRELAY_BUNDLE_H
#define AUTHRELAY_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>

#define BUNDLE_CONFIG "(config)"
#define BUNDLE_CONFIG_PATH "(config path)"	/* for messages */
#define BUNDLE_MAX_ENTRIES 64
#define BUNDLE_MAX_SIZE (16 * 1024 * 1024)
#define BUNDLE_FILE_MAX (4 * 1024 * 1024)	/* one file */

struct bundle;

struct bundle *bundle_new(void);
void bundle_free(struct bundle **b);

/* Add a copy of data under name; an entry of the same name is replaced.
 * Returns -1 (error_r set) past the limits above. */
int bundle_add(struct bundle *b, const char *name, const void *data,
	       size_t len, const char **error_r);
/* Add the content of the file at path (at most BUNDLE_FILE_MAX octets)
 * under its path. -1 with error_r (a static string or strerror) on
 * failure. Adding a path already there does nothing. */
int bundle_add_file(struct bundle *b, const char *path,
		    const char **error_r);
/* The entry named name, or false. The data stays owned by the bundle and
 * is followed by a NUL octet that len does not count. */
bool bundle_get(const struct bundle *b, const char *name,
		const unsigned char **data_r, size_t *len_r);

/* A sealed, close-on-exec memfd holding the bundle, positioned at 0;
 * -1 with error_r on failure. */
int bundle_to_memfd(const struct bundle *b, const char **error_r);
/* Parse what bundle_to_memfd() wrote, read from fd (from its start).
 * NULL with error_r when fd does not hold a well-formed bundle. */
struct bundle *bundle_from_fd(int fd, const char **error_r);
/* The same from memory (for tests and fuzzing). */
struct bundle *bundle_from_mem(const unsigned char *buf, size_t len,
			       const char **error_r);

#endif
