/*
 * pam_slot.so: preloaded before pam_wrapper by the integration tests.
 *
 * pam_wrapper (1.1.4, Debian 12) keeps each process's copy of the PAM
 * service files in /tmp/pam.C, C one character, chosen by lstat() and
 * then mkdir(). Two processes starting at the same moment (auth workers
 * spawned together) can both see C free, both use it, and the first to
 * end removes the other's service files: its next pam_start() fails with
 * "no default config other". Here lstat() of such a path claims it with
 * mkdir(): only the process that created it sees it free, and that
 * process's own mkdir() of it then succeeds. Nothing else changes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

int lstat(const char *path, struct stat *st);
int mkdir(const char *path, mode_t mode);

static char claimed[sizeof("/tmp/pam.X")];
static pid_t claimed_by;

static int is_slot(const char *path)
{
	return strncmp(path, "/tmp/pam.", 9) == 0 && path[9] != '\0' &&
	       path[10] == '\0';
}

static int real_mkdir(const char *path, mode_t mode)
{
	static int (*fn)(const char *, mode_t);

	if (fn == NULL)
		*(void **)&fn = dlsym(RTLD_NEXT, "mkdir");
	return fn(path, mode);
}

int lstat(const char *path, struct stat *st)
{
	static int (*fn)(const char *, struct stat *);

	if (fn == NULL)
		*(void **)&fn = dlsym(RTLD_NEXT, "lstat");
	/* One claim per process; a forked child makes its own. */
	if (is_slot(path) && claimed_by != getpid()) {
		if (real_mkdir(path, 0755) == 0) {
			memcpy(claimed, path, sizeof(claimed));
			claimed_by = getpid();
			errno = ENOENT;
			return -1;
		}
	}
	return fn(path, st);
}

int mkdir(const char *path, mode_t mode)
{
	if (claimed_by == getpid() && strcmp(path, claimed) == 0)
		return 0;
	return real_mkdir(path, mode);
}
