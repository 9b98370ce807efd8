/* Allocation that never returns NULL: out of memory is fatal. */
#ifndef AUTHRELAY_XALLOC_H
#define AUTHRELAY_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
/* Resize an array to n elements of size, overflow-checked. */
void *xreallocarray(void *ptr, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wipe then free; for buffers that held secrets. */
void free_secret(void *ptr, size_t size);

#endif
