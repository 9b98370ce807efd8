/* nodelay_shim: LD_PRELOAD library that sets TCP_NODELAY on every TCP
 * socket a process accepts or connects. The benchmark (run.sh) uses it
 * only to show what the daemon's missing TCP_NODELAY costs: the same
 * daemon binary, with and without the shim. It is evidence, not a fix.
 *
 * gcc -O2 -shared -fPIC -o nodelay_shim.so nodelay_shim.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/socket.h>

static void nodelay(int fd)
{
	int one = 1;

	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one));
}

int accept4(int s, struct sockaddr *a, socklen_t *l, int flags)
{
	static int (*real)(int, struct sockaddr *, socklen_t *, int);
	int fd;

	if (real == NULL)
		real = (int (*)(int, struct sockaddr *, socklen_t *, int))
			dlsym(RTLD_NEXT, "accept4");
	fd = real(s, a, l, flags);
	nodelay(fd);
	return fd;
}

int accept(int s, struct sockaddr *a, socklen_t *l)
{
	static int (*real)(int, struct sockaddr *, socklen_t *);
	int fd;

	if (real == NULL)
		real = (int (*)(int, struct sockaddr *, socklen_t *))
			dlsym(RTLD_NEXT, "accept");
	fd = real(s, a, l);
	nodelay(fd);
	return fd;
}

int connect(int s, const struct sockaddr *a, socklen_t l)
{
	static int (*real)(int, const struct sockaddr *, socklen_t);

	if (real == NULL)
		real = (int (*)(int, const struct sockaddr *, socklen_t))
			dlsym(RTLD_NEXT, "connect");
	if (a != NULL && (a->sa_family == AF_INET || a->sa_family == AF_INET6))
		nodelay(s);
	return real(s, a, l);
}
