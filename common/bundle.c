#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "xalloc.h"

#define MAGIC "ARBUNDLE1\n"
#define MAGIC_LEN (sizeof(MAGIC) - 1)
#define NAME_MAX_LEN 4096

struct bundle_entry {
	char *name;
	unsigned char *data;	/* len octets and a NUL */
	size_t len;
};

struct bundle {
	struct bundle_entry e[BUNDLE_MAX_ENTRIES];
	size_t n;
	size_t size;		/* encoded size */
};

struct bundle *bundle_new(void)
{
	struct bundle *b = xcalloc(1, sizeof(*b));

	b->size = MAGIC_LEN;
	return b;
}

static void entry_clear(struct bundle_entry *e)
{
	free(e->name);
	free_secret(e->data, e->len + 1);
	memset(e, 0, sizeof(*e));
}

void bundle_free(struct bundle **bp)
{
	struct bundle *b = *bp;

	if (b == NULL)
		return;
	*bp = NULL;
	for (size_t i = 0; i < b->n; i++)
		entry_clear(&b->e[i]);
	free(b);
}

static struct bundle_entry *find(const struct bundle *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->e[i].name, name) == 0)
			return (struct bundle_entry *)&b->e[i];
	return NULL;
}

int bundle_add(struct bundle *b, const char *name, const void *data,
	       size_t len, const char **error_r)
{
	struct bundle_entry *e = find(b, name);
	size_t nlen = strlen(name), size = b->size;

	if (nlen == 0 || nlen > NAME_MAX_LEN) {
		*error_r = "invalid name";
		return -1;
	}
	if (e != NULL)
		size -= 8 + nlen + e->len;
	else if (b->n >= BUNDLE_MAX_ENTRIES) {
		*error_r = "too many files";
		return -1;
	}
	if (len > BUNDLE_FILE_MAX || size + 8 + nlen + len > BUNDLE_MAX_SIZE) {
		*error_r = "too large";
		return -1;
	}
	if (e != NULL)
		entry_clear(e);
	else
		e = &b->e[b->n++];
	e->name = xstrdup(name);
	e->data = xmalloc(len + 1);
	memcpy(e->data, data, len);
	e->data[len] = '\0';
	e->len = len;
	b->size = size + 8 + nlen + len;
	return 0;
}

int bundle_add_file(struct bundle *b, const char *path, const char **error_r)
{
	unsigned char *buf;
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd, r;

	if (find(b, path) != NULL)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = "not a regular file";
		close(fd);
		return -1;
	}
	buf = xmalloc(BUNDLE_FILE_MAX + 1);
	while (len <= BUNDLE_FILE_MAX) {
		n = read(fd, buf + len, BUNDLE_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (n < 0 || len > BUNDLE_FILE_MAX) {
		*error_r = n < 0 ? strerror(errno) : "too large";
		free_secret(buf, BUNDLE_FILE_MAX + 1);
		return -1;
	}
	r = bundle_add(b, path, buf, len, error_r);
	free_secret(buf, BUNDLE_FILE_MAX + 1);
	return r;
}

bool bundle_get(const struct bundle *b, const char *name,
		const unsigned char **data_r, size_t *len_r)
{
	const struct bundle_entry *e = find(b, name);

	if (e == NULL)
		return false;
	*data_r = e->data;
	*len_r = e->len;
	return true;
}

static unsigned char *put32(unsigned char *p, size_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return p + 4;
}

static size_t get32(const unsigned char *p)
{
	return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 |
	       (size_t)p[3];
}

int bundle_to_memfd(const struct bundle *b, const char **error_r)
{
	unsigned char *buf = xmalloc(b->size), *p = buf;
	size_t off = 0;
	int fd;

	memcpy(p, MAGIC, MAGIC_LEN);
	p += MAGIC_LEN;
	for (size_t i = 0; i < b->n; i++) {
		size_t nlen = strlen(b->e[i].name);

		p = put32(p, nlen);
		memcpy(p, b->e[i].name, nlen);
		p = put32(p + nlen, b->e[i].len);
		memcpy(p, b->e[i].data, b->e[i].len);
		p += b->e[i].len;
	}
	fd = memfd_create("authrelay-bundle", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		*error_r = strerror(errno);
		free_secret(buf, b->size);
		return -1;
	}
	while (off < b->size) {
		ssize_t n = write(fd, buf + off, b->size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = n < 0 ? strerror(errno) : "short write";
			free_secret(buf, b->size);
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	free_secret(buf, b->size);
	/* The receiver cannot change what other receivers will read. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK |
		  F_SEAL_GROW | F_SEAL_WRITE) < 0 ||
	    lseek(fd, 0, SEEK_SET) < 0) {
		*error_r = strerror(errno);
		close(fd);
		return -1;
	}
	return fd;
}

struct bundle *bundle_from_mem(const unsigned char *buf, size_t len,
			       const char **error_r)
{
	struct bundle *b;
	size_t off = MAGIC_LEN;

	if (len < MAGIC_LEN || memcmp(buf, MAGIC, MAGIC_LEN) != 0) {
		*error_r = "not a bundle";
		return NULL;
	}
	b = bundle_new();
	while (off < len) {
		size_t nlen, dlen;
		char *name;
		int r;

		if (len - off < 4 || (nlen = get32(buf + off)) == 0 ||
		    nlen > NAME_MAX_LEN || len - off - 4 < nlen + 4) {
			*error_r = "truncated entry name";
			goto fail;
		}
		dlen = get32(buf + off + 4 + nlen);
		if (len - off - 8 - nlen < dlen) {
			*error_r = "truncated entry data";
			goto fail;
		}
		if (memchr(buf + off + 4, '\0', nlen) != NULL) {
			*error_r = "NUL in an entry name";
			goto fail;
		}
		name = xstrndup((const char *)buf + off + 4, nlen);
		if (find(b, name) != NULL) {
			free(name);
			*error_r = "repeated entry";
			goto fail;
		}
		r = bundle_add(b, name, buf + off + 8 + nlen, dlen, error_r);
		free(name);
		if (r < 0)
			goto fail;
		off += 8 + nlen + dlen;
	}
	return b;
fail:
	bundle_free(&b);
	return NULL;
}

struct bundle *bundle_from_fd(int fd, const char **error_r)
{
	struct bundle *b;
	unsigned char *buf;
	struct stat st;
	size_t len = 0;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
	    (uint64_t)st.st_size > BUNDLE_MAX_SIZE) {
		*error_r = "not a bundle file";
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + len, (size_t)st.st_size - len,
				  (off_t)len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = n < 0 ? strerror(errno) : "short read";
			free_secret(buf, (size_t)st.st_size + 1);
			return NULL;
		}
		len += (size_t)n;
	}
	b = bundle_from_mem(buf, len, error_r);
	free_secret(buf, (size_t)st.st_size + 1);
	return b;
}
